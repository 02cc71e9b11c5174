from __future__ import annotations
from typing import Any
import httpx, pytest, time
from tests.conftest import LiveServer
from tests.ui_journey import create_script, journey_server, journey_tokens, log_in, wait_connected
pytestmark = pytest.mark.browser
server = journey_server("tmp-nul")
tokens = journey_tokens()

def _messages(page, testid):
    return page.locator(".q-field", has=page.get_by_test_id(testid)).locator(".q-field__messages")

@pytest.mark.parametrize("i", range(12))
def test_nul(server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, i: int) -> None:
    part = "default"
    parameters = [{"name": "TARGET", "type": "string", "default": "web"}]
    script = create_script(server, tokens["admin"], f"nul-{part}-{i}", "echo $TARGET\n", parameters=parameters)
    log_in(page, server, "operator")
    frames = []
    def on_ws(ws):
        ws.on("framesent", lambda payload: frames.append(("S", time.monotonic(), str(payload)[:300])))
        ws.on("framereceived", lambda payload: frames.append(("R", time.monotonic(), str(payload)[:300])))
    page.on("websocket", on_ws)
    page.goto(f"{server.url}/scripts/{script['id']}/edit")
    wait_connected(page)
    field = page.get_by_test_id(f"param-{part}-0")
    frames.append(("FILL", time.monotonic(), ""))
    field.fill("a\x00b")
    field.press("Control+s")
    try:
        _messages(page, f"param-{part}-0").get_by_text(f"{part} must not contain NUL characters").wait_for(timeout=15000)
    except Exception:
        for f in frames:
            print("FRAME", f)
        print("URL", page.url)
        print("BODY", page.locator("body").inner_text()[:3000])
        stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"]).json()
        print("STORED", stored["current_version"], stored["parameters"])
        raise
