"""`bench.bench_exec_hops` and its probe (`bench/hops_probe/sitecustomize.py`): every hop it
wraps still names a function of OpsCraft (a renamed one would silently drop out of the table),
the wrapper marks entry and exit without changing what it wraps, and the table takes each hop's
first occurrence per sample."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench.bench_exec_hops import POST_SENT, PROBE, hop_table, read_hops


def _probe(monkeypatch: pytest.MonkeyPatch, hops: Path | None = None) -> ModuleType:
    """The probe module, loaded under another name (it installs its import hook only when the
    environment names a file; with `hops`, its writes go there)."""
    monkeypatch.delenv("OPSCRAFT_BENCH_HOPS", raising=False)
    spec = importlib.util.spec_from_file_location("hops_probe_under_test", PROBE / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hops is not None:
        fd = os.open(hops, os.O_WRONLY | os.O_CREAT, 0o600)
        monkeypatch.setattr(module, "_fd", fd)
    return module


def test_every_hop_names_a_function_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = _probe(monkeypatch)
    for module_name, path, label in probe.HOPS:
        owner: Any = importlib.import_module(module_name)
        for part in path.split("."):
            owner = getattr(owner, part)
        assert callable(owner), (module_name, path, label)
    assert set(probe.EXITS) <= {label for _, _, label in probe.HOPS}


def test_the_wrapper_marks_entry_and_exit_and_returns_what_it_wraps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hops = tmp_path / "hops"
    probe = _probe(monkeypatch, hops)

    def add(a: int, b: int) -> int:
        return a + b

    async def double(a: int) -> int:
        return 2 * a

    exited = next(iter(probe.EXITS))
    assert probe._wrapped(add, exited)(2, 3) == 5
    wrapped_double = probe._wrapped(double, "entry only")
    assert inspect.iscoroutinefunction(wrapped_double)
    assert asyncio.run(wrapped_double(4)) == 8
    assert [label for _, label in read_hops(hops)] == [f"{exited}>", f"{exited}<", "entry only>"]


def test_the_table_takes_each_hops_first_occurrence_per_sample() -> None:
    ms = 1_000_000
    events = [
        (0, POST_SENT),
        (2 * ms, "b"),
        (1 * ms, "a"),
        (3 * ms, "a"),  # a second occurrence in the same sample: not counted
        (100 * ms, POST_SENT),
        (104 * ms, "a"),
        (106 * ms, "b"),
        (200 * ms, POST_SENT),
        (202 * ms, "a"),
        (203 * ms, "rare"),  # in one sample of three: left out
    ]
    assert hop_table(events) == [(0.0, POST_SENT, 3), (2.0, "a", 3), (4.0, "b", 2)]
