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
"""

from __future__ import annotations

MAX_RELOADS = 3
WINDOW_SECONDS = 60

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
