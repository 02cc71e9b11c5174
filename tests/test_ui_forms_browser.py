"""Forms: multi-line secret values byte-exact, errors under their fields, refusals said where asked."""

from __future__ import annotations

import codecs
import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    create_script,
    journey_server,
    journey_tokens,
    signed_in,
    start_run,
    wait_run,
)

pytestmark = pytest.mark.browser

SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDx8Gz0x  two  spaces and\ta tab\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
KUBECONFIG = b"apiVersion: v1\r\nclusters:\r\n- cluster:\r\n    server: https://k8s.example:6443\r\n"
PRINT_HASH = 'printf %s "$SSH_KEY" | sha256sum\nprintf %s "$KUBECONFIG" | sha256sum\n'


server = journey_server("forms-ui")
tokens = journey_tokens()


def test_multiline_secret_values_are_stored_byte_exact(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, tmp_path: Path
) -> None:
    signed_in(page, server, "operator", then="/secrets")
    # A pasted SSH private key: several lines, a tab, a final newline.
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("SSH_KEY")
    page.get_by_test_id("create-value").fill(SSH_KEY)
    page.get_by_test_id("create-submit").click()
    page.get_by_test_id("secret-SSH_KEY").wait_for()
    # A kubeconfig with CRLF line ends, read from a file a Windows editor saved with a byte order
    # mark: the mark is no part of the value (the script got an invisible U+FEFF in front).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(codecs.BOM_UTF8 + KUBECONFIG)
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("KUBECONFIG")
    chooser = page.get_by_test_id("create-value-file").locator("input[type=file]")
    # A file over the value's limit and one that is no text are refused, saying so; the next
    # file chosen is read.
    (tmp_path / "big.pem").write_bytes(b"x" * (64 * 1024 + 1))
    chooser.set_input_files(str(tmp_path / "big.pem"))
    note_box = page.get_by_test_id("create-value-file-note")
    note_box.get_by_text("big.pem is larger than 64 KiB").wait_for()
    (tmp_path / "key.der").write_bytes(b"\x30\x82\xff\xfe")
    chooser.set_input_files(str(tmp_path / "key.der"))
    note_box.get_by_text("key.der is not UTF-8 text").wait_for()
    chooser.set_input_files(str(kubeconfig))
    note = f"{len(KUBECONFIG) + 3} bytes, its leading byte order mark dropped"
    page.get_by_test_id("create-value-file-note").get_by_text(note).wait_for()
    page.get_by_test_id("create-submit").click()
    page.get_by_test_id("secret-KUBECONFIG").wait_for()

    # A run receives both values exactly as entered.
    script = create_script(server, tokens["admin"], "print-hashes", PRINT_HASH, status="active")
    listed = httpx.get(f"{server.url}/api/v1/secrets", headers=tokens["admin"]).json()["items"]
    for secret in listed:
        url = f"{server.url}/api/v1/scripts/{script['id']}/secrets/{secret['id']}"
        assert httpx.post(url, headers=tokens["admin"]).status_code == 201
    run = wait_run(server, tokens["admin"], start_run(server, tokens["admin"], script["id"]))
    assert run["status"] == "success", run
    hashes = [line.split()[0] for line in run["output"].splitlines()]
    assert hashes == [hashlib.sha256(SSH_KEY.encode()).hexdigest(), hashlib.sha256(KUBECONFIG).hexdigest()]


def test_field_errors_show_under_their_fields_and_clear(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("create-username").fill("ab")
    page.get_by_test_id("create-email").fill("ab@example.com")
    page.get_by_test_id("create-password").fill("Long-Enough-Pass-1")
    page.get_by_test_id("create-submit").click()
    field = page.locator(".q-field", has=page.get_by_test_id("create-username"))
    field.get_by_text("must be at least 3 characters, not 2").wait_for()
    assert page.locator(".q-notification").count() == 0  # no toast, no raw "username:" path
    page.get_by_test_id("create-username").fill("abby")
    field.locator(".q-field__messages").get_by_text("at least 3").wait_for(state="detached")
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification", has_text="User created").wait_for()
    # A taken username is said under the username field.
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("create-username").fill("abby")
    page.get_by_test_id("create-email").fill("other@example.com")
    page.get_by_test_id("create-password").fill("Long-Enough-Pass-1")
    page.get_by_test_id("create-submit").click()
    field.get_by_text("Already taken").wait_for()


def test_rollback_to_a_version_with_findings_asks_to_acknowledge(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    risky = "#!/bin/bash\nrm -rf /\n"
    script = create_script(server, admin, "risky-cleanup", risky, acknowledge_risks=True)
    body = {"content": "#!/bin/bash\necho safe\n", "base_version": 1}
    response = httpx.put(f"{server.url}/api/v1/scripts/{script['id']}", json=body, headers=admin)
    assert response.status_code == 200, response.text

    signed_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=versions")
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-confirm").click()
    dialog = page.get_by_test_id("risk-dialog")
    dialog.wait_for()
    dialog.get_by_test_id("finding-rm-rf-root").wait_for()
    page.get_by_test_id("risk-confirm").click()
    # The page reloads on the versions tab (its toast may go with the reload): version 3 is listed.
    page.get_by_test_id("versions-table").get_by_text("rollback to version 1").wait_for()
    current = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=admin).json()
    assert current["current_version"] == 3 and current["content"] == risky

    # The versions tab compares side by side too, with added/removed/changed colours.
    page.goto(f"{server.url}/scripts/{script['id']}?tab=versions")
    page.get_by_test_id("diff-mode").get_by_text("Side by side").click()
    split = page.get_by_test_id("diff-split")
    split.locator("table.diff").wait_for()
    assert split.locator(".diff_chg, .diff_add, .diff_sub").count() >= 1
    shown = split.inner_text()
    assert "rm -rf /" in shown and "echo safe" in shown


def test_out_of_range_numbers_are_refused_under_their_fields_never_clamped(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A number typed outside its range reaches the service as typed: NiceGUI's `min`/`precision`
    used to clamp it when the field lost focus (racing Save), saving a value nobody typed."""
    admin = tokens["admin"]
    script = create_script(server, admin, "bounded", "#!/bin/bash\necho bounded\n")
    signed_in(page, server, "admin", then=f"/scripts/{script['id']}/edit")
    page.get_by_test_id("memory").fill("8")  # below 16 MiB
    page.get_by_test_id("timeout").fill("0")  # below 1 s
    page.get_by_test_id("save-script").click()
    for testid, bound in (("memory", 16), ("timeout", 1)):
        field = page.locator(".q-field", has=page.get_by_test_id(testid))
        field.get_by_text(f"must be at least {bound}").wait_for()
    assert page.get_by_test_id("memory").input_value() == "8"
    current = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=admin, timeout=60).json()
    assert (current["memory_mb"], current["timeout_seconds"], current["current_version"]) == (512, 3600, 1)
    # Whole numbers typed in these boxes save (the box hands 256.0: sent as the integer 256), and
    # a fraction is refused under its field, not rounded.
    page.get_by_test_id("memory").fill("256.5")
    page.get_by_test_id("timeout").fill("60")
    page.get_by_test_id("save-script").click()
    page.locator(".q-field", has=page.get_by_test_id("memory")).get_by_text("whole number").wait_for()
    page.get_by_test_id("memory").fill("256")
    page.get_by_test_id("save-script").click()
    page.wait_for_url(f"{server.url}/scripts/{script['id']}")
    current = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=admin, timeout=60).json()
    assert (current["memory_mb"], current["timeout_seconds"], current["current_version"]) == (256, 60, 2)


def test_a_refused_search_is_said_under_its_box_and_lists_nothing(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The search boxes call the services, which refuse a control character or an over-long search
    (as the API does): the message is under the box, the table holds no rows of an earlier search,
    and a plain search lists again. Before, `web<U+0001>` was a silent empty list (a NUL a red
    toast naming `query`)."""
    create_script(server, tokens["admin"], "web-restart", "#!/bin/bash\necho restart\n")
    cases = [
        ("/scripts", "script-search", "scripts-summary", "web\x01", "control characters (U+0001)"),
        ("/scripts", "script-search", "scripts-summary", "w" * 201, "at most 200 characters"),
        ("/users", "user-search", "users-summary", "adm\x1b[31m", "control characters (U+001B)"),
        # a NUL in the words the API says it (`db.text.NUL_MESSAGE`)
        ("/secrets", "secret-search", "secrets-summary", "\x00", "NUL characters (U+0000)"),
        ("/audit", "audit-target-id", "audit-summary", "1\x7f", "control characters (U+007F)"),
    ]
    signed_in(page, server, "admin", then=cases[0][0])  # the first case's page, no dashboard first
    for number, (path, box, summary, bad, said) in enumerate(cases):
        if number:
            page.goto(f"{server.url}{path}")
        page.get_by_test_id(summary).get_by_text(re.compile(r"^\d+ ")).wait_for()
        page.get_by_test_id(box).fill(bad)
        if path == "/audit":
            page.get_by_test_id("audit-apply").click()
        field = page.locator(".q-field", has=page.get_by_test_id(box))
        field.get_by_text(said).wait_for()
        page.get_by_test_id(summary).get_by_text("Nothing listed").wait_for()
        assert page.locator(".q-notification").count() == 0, path  # said at the box, not in a toast
        page.get_by_test_id(box).fill("web" if path == "/scripts" else "")
        if path == "/audit":
            page.get_by_test_id("audit-apply").click()
        field.get_by_text(said).wait_for(state="detached")
        page.get_by_test_id(summary).get_by_text(re.compile(r"^\d+ ")).wait_for()


def test_enter_in_an_audit_filter_box_filters(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Typing a username and pressing Enter did nothing: only the Filter button applied it."""
    signed_in(page, server, "admin", then="/audit")
    summary = page.get_by_test_id("audit-summary")
    summary.get_by_text(re.compile(r"^\d+ ")).wait_for()
    page.get_by_test_id("audit-actor").fill("nobody-did-anything")
    page.get_by_test_id("audit-actor").press("Enter")
    summary.get_by_text("0 events").wait_for()
    page.get_by_test_id("audit-actor").fill("")
    page.get_by_test_id("audit-actor").press("Enter")
    summary.get_by_text(re.compile(r"^[1-9]\d* events?$")).wait_for()
    page.get_by_test_id("audit-target-id").fill("999999")
    page.get_by_test_id("audit-target-id").press("Enter")
    summary.get_by_text("0 events").wait_for()
