"""Names whose rule takes ASCII letters only say so: the rules said "letters", and `józef`,
`déploiement` or `сервер` (letters by any reader's measure) were refused by a message that
seemed to allow them (a new team's first hour, session 50: the username). Each such rule now
says "ASCII letters"; the rules that take letters of any script (Ansible tags, a host's name)
are not of this kind."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from opscraft.cli.worker import worker_name
from opscraft.services import parameters, terraform_state
from opscraft.services.errors import Invalid
from opscraft.services.scripts import ScriptCreate
from opscraft.services.secrets import SecretCreate
from opscraft.services.shared_inventories import InventoryIn
from opscraft.services.users import UserCreate

SCRIPT = {"name": "deploy", "script_type": "bash", "content": "echo hi\n"}
USER = {"username": "jozef", "email": "jozef@example.com", "password": "Correct-Horse-9"}


def _refusal(make: Callable[[], Any]) -> str:
    """The message of what `make` raises (pydantic's ValidationError, Invalid or argparse's)."""
    with pytest.raises((ValidationError, Invalid, argparse.ArgumentTypeError)) as refused:
        make()
    return str(refused.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: UserCreate(**{**USER, "username": "józef"}), id="username"),
        pytest.param(lambda: ScriptCreate(**{**SCRIPT, "name": "déploiement"}), id="script name"),
        pytest.param(lambda: ScriptCreate(**{**SCRIPT, "version": "1.0-β"}), id="script version"),
        pytest.param(lambda: ScriptCreate(**{**SCRIPT, "ssh_user": "józef"}), id="ssh user"),
        pytest.param(lambda: parameters.normalize([{"name": "ÉTAPE"}], "bash"), id="parameter name"),
        pytest.param(lambda: SecretCreate(name="CLÉ", value="v"), id="secret name"),
        pytest.param(lambda: InventoryIn(name="сервер", content="all:\n"), id="inventory name"),
        pytest.param(lambda: terraform_state._workspace("préprod"), id="state workspace"),
        pytest.param(lambda: worker_name("ouvrier-é"), id="worker name"),
    ],
)
def test_a_rule_of_ascii_letters_says_so(make: Callable[[], Any]) -> None:
    assert "ASCII letters" in _refusal(make)
