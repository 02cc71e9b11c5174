"""The UI names no environment variable or documentation file in a service's message
(`ui.plain_words`): the editor said "split the script or raise OPSCRAFT_MAX_SCRIPT_BYTES" to a
person who sets no such thing. Every message written in the services and the execution engine
is read from their source and said without one."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from opscraft.ui.layout import sentence
from opscraft.ui.plain_words import COMMAND, VARIABLE, without_internal_names
from tests.conftest import ROOT

# Where the messages a page may show are written (a refusal, a run's error, a delivery's error).
SOURCES = ("opscraft/services", "opscraft/execution", "opscraft/security")
# Modules whose texts no page shows: shell code run in a container (its variables are its own),
# and what a worker or a server says on its console at start (its operator sets the variables).
NOT_SHOWN = {
    "container_job.py",
    "installation.py",
    "store.py",
    "signing_key.py",
    "local_runner.py",
    "param_env.py",
}
# What a formatted value of an f-string reads as here.
PLACEHOLDER = "1"


def _text(node: ast.AST) -> str | None:
    """A string literal's text, an f-string's with `PLACEHOLDER` for each value; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else PLACEHOLDER for part in node.values)
    return None


def _messages() -> Iterator[tuple[str, str]]:
    """(module:line, text) of every string literal of `SOURCES` naming a variable or a docs file,
    docstrings left out (they are for the code's readers)."""
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in NOT_SHOWN:
                continue
            tree = ast.parse(path.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
            }
            parts = {
                id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
            }
            # An API field's description (OpenAPI), which no page shows.
            parts |= {
                id(node.value)
                for node in ast.walk(tree)
                if isinstance(node, ast.keyword) and node.arg == "description"
            }
            for node in ast.walk(tree):
                text = _text(node)
                if text is None or id(node) in docstrings or id(node) in parts:
                    continue
                if (VARIABLE.search(text) or COMMAND.search(text) or "docs/" in text) and " " in text:
                    yield f"{Path(path).relative_to(ROOT)}:{node.lineno}", text


MESSAGES = list(_messages())


def test_the_messages_naming_a_variable_are_found() -> None:
    """The scan reads what it is meant to: the messages of the content limit and the timeout."""
    said = " ".join(text for _, text in MESSAGES)
    assert "raise OPSCRAFT_MAX_SCRIPT_BYTES" in said
    assert "(OPSCRAFT_MAX_TIMEOUT_SECONDS)" in said


@pytest.mark.parametrize(("where", "message"), MESSAGES, ids=[where for where, _ in MESSAGES])
def test_a_service_message_names_no_variable_nor_file_in_the_ui(where: str, message: str) -> None:
    said = sentence(message)
    assert VARIABLE.search(said) is None and COMMAND.search(said) is None, said
    assert "docs/" not in said and ".md" not in said, said
    assert "a setting of the server" not in said, f"no rule of plain_words reads it: {said}"


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (
            "content is 300000 bytes, larger than the limit of 256 KiB: split the script or raise "
            "OPSCRAFT_MAX_SCRIPT_BYTES",
            "Content is 300000 bytes, larger than the limit of 256 KiB: split the script or ask the "
            "server's administrator to raise that limit",
        ),
        (
            "must be at most 86400 (OPSCRAFT_MAX_TIMEOUT_SECONDS), not 1000000",
            "Must be at most 86400, not 1000000",
        ),
        (
            "the local runner is off (OPSCRAFT_LOCAL_RUNNER=true, or an admin enables it under Settings)",
            "The local runner is off (an admin enables it under Settings)",
        ),
        ("choose another (see docs/scripts.md)", "Choose another (see the documentation's scripts page)"),
        (
            "no live worker offers the local runner: start `opscraft serve` or an execution worker",
            "No live worker offers the local runner: start the server or an execution worker",
        ),
    ],
)
def test_a_message_says_the_limit_and_what_to_do_in_words(message: str, said: str) -> None:
    assert sentence(message) == said
    assert without_internal_names(said) == said  # said once more, nothing changes
