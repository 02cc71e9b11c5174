"""Saved Terraform plans at rest (sealed by the vault, re-sealed by a key rotation) and the
summary read from `terraform show -json` (counted as Terraform's own "Plan:" line counts)."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import pytest
from sqlmodel import select

from opscraft import runtime
from opscraft.db.models import Execution, TerraformPlan
from opscraft.db.models.executions import ExecutionStatus
from opscraft.security.vault import DecryptError, generate_key_text, parse_key
from opscraft.services import keyring, terraform_plans
from opscraft.services.terraform_plans import VaultPlanStore
from opscraft.ui import terraform_panel
from tests.conftest import LoggedIn
from tests.linear_time import assert_linear, ordinary_text


def _plan_file(serial: int, lineage: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tfplan", b"Plan-Marker-5d1e")
        archive.writestr("tfstate", json.dumps({"version": 4, "serial": serial, "lineage": lineage}))
    return buffer.getvalue()


SHOWN = {
    "resource_changes": [
        {"address": "a.new", "mode": "managed", "change": {"actions": ["create"]}},
        {"address": "a.edit", "mode": "managed", "change": {"actions": ["update"]}},
        {"address": "a.gone", "mode": "managed", "change": {"actions": ["delete"]}},
        {"address": "a.swap", "mode": "managed", "change": {"actions": ["delete", "create"]}},
        {"address": "a.swap2", "mode": "managed", "change": {"actions": ["create", "delete"]}},
        {"address": "a.same", "mode": "managed", "change": {"actions": ["no-op"]}},
        {"address": "data.x.y", "mode": "data", "change": {"actions": ["read"]}},
    ],
    "output_changes": {"kept": {"actions": ["no-op"]}, "url": {"actions": ["update"]}},
}


def test_summary_counts_as_terraform_does() -> None:
    summary = terraform_plans.summarize(SHOWN)
    # Terraform: "Plan: 3 to add, 1 to change, 3 to destroy." (a replacement adds and destroys)
    assert (summary.to_add, summary.to_change, summary.to_destroy) == (3, 1, 3)
    assert [r["address"] for r in summary.detail["resources"]] == [
        "a.new",
        "a.edit",
        "a.gone",
        "a.swap",
        "a.swap2",
    ]
    assert summary.detail["outputs"] == [{"name": "url", "actions": ["update"]}]
    assert terraform_plans.summarize({}).detail == {"resources": [], "outputs": [], "truncated": False}


# Terraform 1.11's `terraform show -json` of a plan with an `import` block (one changing the
# imported resource, one not) and a `moved` block: all three resources' own actions may be no-op.
ADOPTING = {
    "resource_changes": [
        {
            "address": "a.adopted",
            "mode": "managed",
            "change": {"actions": ["no-op"], "importing": {"id": "i-1"}},
        },
        {
            "address": "a.fixed",
            "mode": "managed",
            "change": {"actions": ["update"], "importing": {"id": "i-2"}},
        },
        {
            "address": "a.new",
            "previous_address": "a.old",
            "mode": "managed",
            "change": {"actions": ["no-op"]},
        },
        {
            "address": "a.same",
            "previous_address": "a.same",
            "mode": "managed",
            "change": {"actions": ["no-op"]},
        },
    ],
}


def test_imports_are_counted_and_imports_and_moves_listed_as_terraform_shows_them() -> None:
    """Terraform: "Plan: 2 to import, 0 to add, 1 to change, 0 to destroy." and "a.old has moved
    to a.new"; the summary counted and listed only a.fixed's update. The import IDs are not kept."""
    for summary in (
        terraform_plans.summarize(ADOPTING),
        terraform_plans.summarize_shown(json.dumps(ADOPTING).encode()),
    ):
        assert (summary.to_import, summary.to_add, summary.to_change, summary.to_destroy) == (2, 0, 1, 0)
        assert summary.detail["resources"] == [
            {"address": "a.adopted", "actions": ["no-op"], "importing": True},
            {"address": "a.fixed", "actions": ["update"], "importing": True},
            {"address": "a.new", "actions": ["no-op"], "previous_address": "a.old"},
        ]
        assert "i-1" not in json.dumps(summary.detail)
    plan = TerraformPlan(to_import=2, to_add=0, to_change=1, to_destroy=0, summary={})
    assert terraform_panel.summary_line(plan) == "Plan: 2 to import, 0 to add, 1 to change, 0 to destroy."
    plan.to_import = 0
    assert terraform_panel.summary_line(plan) == "Plan: 0 to add, 1 to change, 0 to destroy."
    listed = [terraform_panel._resource_actions(r) for r in summary.detail["resources"]]
    assert listed == ["import", "import, ~ update", "moved from a.old"]


def test_the_shown_plan_is_summarized_piece_by_piece_as_a_whole() -> None:
    """`summarize_shown` reads the JSON text without parsing what it skips: brackets, quotes and
    escapes inside strings, nesting and odd spacing must not throw its counting off."""
    tricky = {
        "format_version": "1.2",
        "prior_state": {"values": {"outputs": {"s": {"value": 'a "]}{[" b \\" \\\\'}}}},
        "planned_values": [["}", {"]": "{"}], [], {}, None, True, 1.5e3, "\u2028"],
        **SHOWN,
        "configuration": {"root_module": {"outputs": {"url": {"expression": {"references": ["x]"]}}}}},
    }
    for text in (json.dumps(tricky), json.dumps(tricky, indent=3), json.dumps(tricky, separators=(",", ":"))):
        shown = terraform_plans.summarize_shown(text.encode())
        whole = terraform_plans.summarize(tricky)
        assert shown == whole and (shown.to_add, shown.to_change, shown.to_destroy) == (3, 1, 3), text
    assert terraform_plans.summarize_shown(b"{}") == terraform_plans.summarize({})
    for bad in (b"[]", b'{"resource_changes": [1, ', b'{"a" 1}', b"", b'{"output_changes": {"a": }}'):
        with pytest.raises(ValueError):
            terraform_plans.summarize_shown(bad)


# A shown plan of 1 MiB (the file is written in the run's work directory, up to
# `terraform_plan.MAX_JSON_BYTES`) shaped against the pattern skipping strings: an open string's
# every escaped quote started another string read to the end (17 s for 64 KiB).
PLAN_CHARS = 1024 * 1024
PLAN_SHAPES = {
    "escaped quotes in an open string": '{"prior_state": ["' + '\\"' * (PLAN_CHARS // 2),
}


@pytest.mark.parametrize("shape", list(PLAN_SHAPES))
def test_a_largest_shown_plan_of_any_shape_is_read_in_linear_time(shape: str) -> None:
    def read(text: str) -> None:
        with pytest.raises(ValueError):
            terraform_plans.summarize_shown(text.encode())

    assert_linear(read, PLAN_SHAPES[shape], '{"prior_state": [' + json.dumps(ordinary_text(PLAN_CHARS)))


def test_prior_state_is_read_from_the_plan_file() -> None:
    assert terraform_plans.prior_state(_plan_file(7, "lin-1")) == (7, "lin-1")
    assert terraform_plans.prior_state(_plan_file(0, "")) == (0, "")
    with pytest.raises(ValueError, match="not a Terraform plan file"):
        terraform_plans.prior_state(b"not a zip")


async def test_plans_are_sealed_and_follow_a_key_rotation(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    body = {"name": "tf-plan-at-rest", "script_type": "terraform", "content": "locals {}\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).json()["id"]
    db = runtime.current().db
    async with db.session() as session:
        run = Execution(
            script_id=script_id,
            script_version=1,
            script_name="p",
            script_type="terraform",
            terraform_action="plan",
            status=ExecutionStatus.success,
        )
        session.add(run)
        await session.commit()
        assert run.id is not None
        run_id = run.id
    data = _plan_file(0, "")  # made with no state, as the script has none: current when applied
    store = VaultPlanStore(keyring.current_vault())
    await store.keep(db, run_id, {"opscraft.tfplan": data, "opscraft-plan.json": json.dumps(SHOWN).encode()})
    async with db.session() as session:
        plan = (await session.exec(select(TerraformPlan))).one()
        assert b"Plan-Marker" not in plan.ciphertext and b"PK" not in plan.ciphertext[:4]
        assert (plan.prior_serial, plan.prior_lineage, plan.to_add, plan.to_destroy) == (0, "", 3, 3)
        plan.apply_execution_id = run_id  # as `executions.create` links an apply run
        await session.commit()
    assert await store.plan_file(db, run_id) == data
    old = keyring.current_vault()
    async with db.session() as session:
        new, _ = await keyring.rotate(session, old, parse_key(generate_key_text(), "test"))
    async with db.session() as session:
        stored = (await session.exec(select(TerraformPlan))).one()
        assert stored.key_version == new.key_version and keyring.reveal_plan(new, stored) == data
        with pytest.raises(DecryptError):
            keyring.reveal_plan(old, stored)
