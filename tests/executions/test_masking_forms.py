"""Secrets printed quoted or escaped by the tools themselves are masked in stored output (real runs)."""

from __future__ import annotations

import base64

import httpx
import pytest

from opscraft.execution.masking import MASK
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)


@pytest.fixture
def backend() -> str:
    """Masking does not depend on the database: SQLite."""
    return "sqlite"


async def run_with_secret(
    client: httpx.AsyncClient, operator: LoggedIn, value: str, content: str, runner: str, **fields: str | int
) -> tuple[dict[str, object], str]:
    r = await client.post("/api/v1/secrets", json={"name": "S", "value": value}, headers=operator.headers)
    assert r.status_code == 201, r.text
    script_id = await make_script(client, operator, content, **fields)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    execution = await start(client, operator, script_id, runner)
    final = await wait_for(client, operator, execution["id"], timeout=180)
    return final, await output(client, operator, execution["id"])


@RUNNERS
async def test_bash_xtrace_and_printf_q_are_masked(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    value = "pa'ss word-42"
    script = 'set -x\necho "$S"\nprintf "%q\\n" "$S"\necho "${S@Q}"\n'
    final, text = await run_with_secret(client, operator, value, script, runner_name)
    assert final["status"] == "success", (final, text)
    # `set -x` quotes `${S@Q}` once more: the outer quotes stay, the value does not.
    assert "+ echo '***'\n" in text and "+ echo ''\\''***'\\'''\n" in text, text
    assert "ss word" not in text and "-42" not in text and "pa" not in text
    assert text.count("***") == 6, text  # each line traced and printed


@RUNNERS
async def test_ansible_debug_json_escaping_is_masked(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    value = 'quote"back\\slash-123'
    playbook = (
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - debug:\n"
        "        msg: \"{{ lookup('env', 'S') }}\"\n"
        "    - debug:\n"
        "        msg: \"{{ lookup('env', 'S') | to_json }}\"\n"
        "    - debug:\n"
        "        var: x\n"
        "      vars:\n"
        "        x: \"{{ {'a': lookup('env', 'S')} | to_json }}\"\n"
    )
    final, text = await run_with_secret(client, operator, value, playbook, runner_name, script_type="ansible")
    assert final["status"] == "success", (final, text)
    assert '"msg": "***"' in text and '"msg": "\\"***\\""' in text, text
    assert '"x": "{\\"a\\": \\"***\\"}"' in text, text  # JSON inside JSON
    assert "back" not in text and "slash-123" not in text


@RUNNERS
async def test_base64_wrapped_by_the_base64_tool_is_masked(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """`base64` breaks its output every 76 characters: the value's stretch of a longer blob
    (a credentials file encoded) was left in clear whenever a line break fell inside it."""
    value = "Tr0ub4dor-and-3-horses"
    raw = value.encode()
    # 40 to 55 bytes before it: the line break after 57 bytes falls inside the value.
    script = 'for n in $(seq 40 55); do printf "%${n}s%s\\n" "" "$S" | base64; echo; done\n'
    final, text = await run_with_secret(client, operator, value, script, runner_name)
    assert final["status"] == "success", (final, text)
    blobs = text.split("\n\n")[:-1]
    assert len(blobs) == 16 and all(MASK in blob for blob in blobs), text
    flat = text.replace("\n", "")
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()[4 if shift else 0 : -4]
        stretches = {encoded[at : at + 8] for at in range(len(encoded) - 7)}
        assert not [stretch for stretch in stretches if stretch in flat], text


@RUNNERS
async def test_a_value_being_printed_when_the_run_is_killed_is_not_shown_in_part(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """The script prints the first half of the value and is killed by its timeout before the
    rest: what the masker held back (the beginning of a value) was released in clear when the
    output ended; a killed run's output is cut short, as at the output cap: it becomes `***`."""
    value = "first-HALF-second-HALF"
    script = 'echo started; printf "token: %s" "${S:0:11}"; sleep 60; printf "%s\\n" "${S:11}"\n'
    # 5 s: the timeout counts from the run's start, a cold container's creation included (over
    # 2 s at load 20: the run ended before its script printed).
    final, text = await run_with_secret(client, operator, value, script, runner_name, timeout_seconds=5)
    assert final["status"] == "timed_out", (final, text)
    assert text == f"started\ntoken: {MASK}", text


@RUNNERS
async def test_a_value_grep_colours_a_part_of_is_masked_in_stored_and_downloaded_output(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """`grep --color=always` colours the host inside a connection URL: the terminal, the log
    download (which drops escape sequences) and a notification's excerpt showed it whole, and
    the stored output held its password in clear between the sequences."""
    value = "postgres://app:Pw-77x@db.internal:5432/app"
    script = 'printf "DATABASE_URL=%s\\n" "$S" > app.env\ngrep --color=always db.internal app.env\n'
    final, text = await run_with_secret(client, operator, value, script, runner_name)
    assert final["status"] == "success", (final, text)
    assert text == f"DATABASE_URL={MASK}\n", text
    r = await client.get(f"/api/v1/executions/{final['id']}/output.log", headers=operator.headers)
    assert r.status_code == 200 and r.text == f"DATABASE_URL={MASK}\n", r.text
