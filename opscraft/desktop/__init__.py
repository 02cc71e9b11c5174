"""`opscraft desktop`: the app in a native window (NiceGUI native mode on pywebview with Qt WebEngine).

`toolkit` checks the display and GUI toolkit (one line when missing), `window_state` remembers
the window size, `sign_in` exchanges the launch's one-time secret for a session, and
`launch.run` wires them around `opscraft.app.serve`. See docs/desktop.md.
"""
