"""Drive a running OpsCraft process from outside, as a user would: REST calls for the first admin,
a script and its run, and the desktop window's page through Qt WebEngine's DevTools endpoint.

`QTWEBENGINE_REMOTE_DEBUGGING=127.0.0.1:PORT` is a Qt WebEngine switch the tests set on the
process they start (OpsCraft never sets it): it lets the test read the real window's page.
Playwright cannot attach to Qt WebEngine (no browser-context management), so the few DevTools
calls needed here go over its WebSocket directly.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import connect

from tests import ports

FINAL = {"success", "failed", "cancelled", "timed_out", "error"}
ADMIN = {"username": "admin", "email": "admin@example.com", "password": "SecurePass123", "full_name": "A"}


def wait_healthy(url: str, deadline: float, process: Any) -> float:
    """Seconds until `GET /api/v1/health` answers 200, from `process` (`tests.ports.listens_on`:
    not another test's server on a port taken meanwhile); RuntimeError if `process` ends first."""
    start = time.monotonic()
    port = urlsplit(url).port
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process ended (exit {process.returncode}) before it was healthy")
        try:
            answered = httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
            if answered and ports.listens_on(process.pid, port):
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("not healthy before the deadline")


def log_in(url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def start_script(url: str, headers: dict[str, str], content: str, runner: str = "docker") -> int:
    """Create an active bash script and run it; returns the execution id."""
    body = {
        "name": f"journey-{time.monotonic_ns()}",
        "script_type": "bash",
        "content": content,
        "status": "active",
        "acknowledge_risks": True,
    }
    r = httpx.post(f"{url}/api/v1/scripts", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{url}/api/v1/executions",
        json={"script_id": r.json()["id"], "runner": runner},
        headers=headers,
        timeout=30,
    )
    assert r.status_code in (200, 201, 202), r.text
    return int(r.json()["id"])


def wait_execution(
    url: str, headers: dict[str, str], execution_id: int, until: set[str], timeout: float
) -> dict:
    """The execution once its status is in `until` (AssertionError after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{url}/api/v1/executions/{execution_id}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        if r.json()["status"] in until or time.monotonic() > deadline:
            assert r.json()["status"] in until, r.json()
            return dict(r.json())
        time.sleep(0.2)


def output(url: str, headers: dict[str, str], execution_id: int) -> str:
    r = httpx.get(f"{url}/api/v1/executions/{execution_id}/logs", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return "".join(chunk["content"] for chunk in r.json()["items"])


class WindowPage:
    """The page shown in the desktop window, through Qt WebEngine's DevTools endpoint."""

    def __init__(self, devtools_port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{devtools_port}"
        self._ids = itertools.count(1)

    def _target(self, deadline: float) -> str:
        while True:
            try:
                pages = [
                    t
                    for t in httpx.get(f"{self.endpoint}/json/list", timeout=2).json()
                    if t["type"] == "page"
                ]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the window's page never appeared on the DevTools endpoint")
            time.sleep(0.2)

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The JSON value of a JavaScript expression evaluated in the window's page."""
        with connect(self._target(time.monotonic() + timeout), max_size=None, open_timeout=timeout) as ws:
            call_id = next(self._ids)
            ws.send(
                json.dumps(
                    {
                        "id": call_id,
                        "method": "Runtime.evaluate",
                        "params": {"expression": expression, "returnByValue": True, "awaitPromise": True},
                    }
                )
            )
            while True:
                message = json.loads(ws.recv(timeout=timeout))
                if message.get("id") == call_id:
                    return message["result"]["result"].get("value")

    def wait_for_text(self, text: str, timeout: float = 60, selector: str = "body") -> str:
        """The visible text of the first `selector` match once it contains `text`, after the
        browser painted it (AssertionError with the text seen at the deadline)."""
        deadline = time.monotonic() + timeout
        seen = ""
        query = f"document.querySelector({json.dumps(selector)})"
        while time.monotonic() < deadline:
            try:
                seen = self.evaluate(f"{query} ? {query}.innerText : ''", timeout=10) or ""
            except (OSError, RuntimeError, TimeoutError):
                seen = ""
            if text in seen:
                self.next_frame()
                return seen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not shown in the window; it shows:\n{seen[:2000]}")

    def next_frame(self) -> None:
        """Return once the page has painted two more frames (what it shows is on screen)."""
        self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")

    def go(self, path: str) -> None:
        self.evaluate(f"window.location.assign({json.dumps(path)})")
