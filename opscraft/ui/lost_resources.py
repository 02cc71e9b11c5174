"""A page that lost one of its own scripts or stylesheets while loading loads itself again.

A NiceGUI page loads about twenty files from this server; a browser opens six connections to one
host (HTTP/1.1) and queues the rest. Chromium fails every queued request with
`net::ERR_NETWORK_CHANGED` when an address of the machine changes (crbug.com/41465264), which
happens here whenever a run with network access starts a container (its veth gets an IPv6
link-local address): a page opened at that moment lost a script and never connected. The page
then reloads itself, as webpack applications do on a `ChunkLoadError`.

Only before the page's socket has shaken hands (`window.did_handshake`), so nothing typed is ever
reloaded away, and at most `MAX_RELOADS` times per `WINDOW_SECONDS` in a tab (counted in
`sessionStorage`), so a file that can never load shows the broken page instead of a loop. A load
that lost several files reloads once and counts once: each lost file used to count, so one network
change that failed three queued scripts spent every reload, and the next load, which lost a file
to the next change, stayed broken.

Not seen: a stylesheet NiceGUI's first `<style>` imports (`@import`), which fails before this
script, placed after it, runs; the page then works, unstyled, until it is loaded again.

After the handshake nothing is reloaded: a component NiceGUI imports then (its socket's
`load_js_components` message, for the elements a page draws once connected or a dialog opens) is
imported again instead (`IMPORT_AGAIN_JS`): NiceGUI imports a message's components together and
registers none when one failed, so one lost file left every element of those kinds undrawn (a
script's Overview without its parameters table, a CI run's page). Chromium fetches a module again
when an import of it failed (its module map keeps no failure).
"""

from __future__ import annotations

MAX_RELOADS = 3
WINDOW_SECONDS = 60
# Waits before each further import of a component that failed (milliseconds): five tries in about
# four seconds, longer than a network change's burst of failures, shorter than a person's patience.
IMPORT_WAITS_MS = (250, 500, 1000, 2000)

RELOAD_JS = f"""<script>
(() => {{
  const key = "opscraft-lost-resource-reloads";
  let reloading = false;
  window.addEventListener("error", (event) => {{
    const lost = event.target;
    if (window.did_handshake || reloading) return;
    if (!(lost instanceof HTMLScriptElement || lost instanceof HTMLLinkElement)) return;
    const url = lost.src || lost.href || "";  // "": an inline module whose import failed
    if (url && new URL(url, location.href).origin !== location.origin) return;
    const now = Date.now();
    let recent = [];
    try {{
      const stored = JSON.parse(sessionStorage.getItem(key) || "[]");
      recent = stored.filter((t) => now - t < {WINDOW_SECONDS * 1000});
    }} catch (error) {{}}
    if (recent.length >= {MAX_RELOADS}) return;
    try {{
      sessionStorage.setItem(key, JSON.stringify([...recent, now]));
    }} catch (error) {{
      return;  // no storage to count in: never a loop
    }}
    console.warn(`OpsCraft: ${{url || "a module of the page"}} did not load; loading the page again`);
    reloading = true;
    location.reload();
  }}, true);
}})();
</script>"""

# Every socket `io()` makes (socket.io's UMD bundle sets `window.io`, after this head script) hands
# NiceGUI's listeners their events in the order they came; a `load_js_components` message's
# modules are imported first, each tried again after `IMPORT_WAITS_MS`, and the events that came
# after it wait for it, so NiceGUI's own import finds every module loaded. The modules' address is
# NiceGUI's (`<nicegui.js's folder>/../components/<key>`); a module still lost after its last try
# is left to NiceGUI, which logs the error as before. `once` listeners (`.fn`) are not wrapped.
IMPORT_AGAIN_JS = rf"""<script>
(() => {{
  const waits = {list(IMPORT_WAITS_MS)};
  const importing = new Map();  // url -> its import under way: messages naming it share it
  const importTried = async (url) => {{
    for (let tried = 0; ; tried++) {{
      try {{
        return await import(url);
      }} catch (error) {{
        if (tried >= waits.length) return null;
        console.warn(`OpsCraft: ${{url}} did not load; importing it again`);
        await new Promise((resolve) => setTimeout(resolve, waits[tried]));
      }}
    }}
  }};
  const imported = (url) => {{
    if (!importing.has(url)) {{
      importing.set(url, importTried(url).finally(() => importing.delete(url)));
    }}
    return importing.get(url);
  }};
  const components = () => {{
    const nicegui = document.querySelector('script[src$="/static/nicegui.js"]');
    return nicegui && nicegui.src.replace(/static\/nicegui\.js$/, "components/");
  }};
  const inOrder = (socket) => {{
    const on = socket.on.bind(socket);
    let queue = null;
    const after = (step) => {{
      const mine = (queue || Promise.resolve()).then(step).catch((error) => console.error(error));
      queue = mine;
      mine.then(() => {{ if (queue === mine) queue = null; }});
    }};
    socket.on = (event, listener) => on(event, listener.fn ? listener : (...args) => {{
      const base = event === "load_js_components" && components();
      if (base) {{
        const loaded = Promise.all((args[0].components || []).map((c) => imported(base + c.key)));
        after(() => loaded.then(() => {{ listener(...args); }}));
      }} else if (queue) {{
        after(() => {{ listener(...args); }});
      }} else {{
        listener(...args);
      }}
    }});
    return socket;
  }};
  let io;
  Object.defineProperty(window, "io", {{
    configurable: true,
    get: () => io,
    set: (made) => {{
      io = typeof made === "function" ? Object.assign((...args) => inOrder(made(...args)), made) : made;
    }},
  }});
}})();
</script>"""
