"""Ansible inventories of scripts: INI or YAML text, checked at save with `ansible-inventory --list`.

An inventory source can run code on the machine that reads it: an executable file is run as an
inventory script, and a YAML file with a `plugin:` key loads an inventory plugin (`constructed`
templates values, cloud plugins call out, `script` runs commands). So only data is accepted:
the check runs `ansible-inventory` with the `yaml` and `ini` plugins only
(`ANSIBLE_INVENTORY_ENABLED`, which the runs use too), on a non-executable file, with a minimal
environment and no configuration file, and a YAML document with a `plugin` key is refused
before any tool sees it. `ansible-inventory --list` does not template variables (a value such
as `{{ lookup('pipe', 'id') }}` is listed as that text); templating happens in the run, like
the playbook's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opscraft.db.text import NUL_MESSAGE
from opscraft.execution import line_breaks, yaml_keys
from opscraft.execution.commands import INVENTORY_FILE, INVENTORY_PLUGINS, UNPARSED_INVENTORY_FAILS
from opscraft.services import (
    input_words,
    inventory_errors,
    inventory_forks,
    inventory_listing,
    inventory_ranges,
    line_endings,
    password_variables,
    vault_files,
)
from opscraft.services.errors import Invalid
from opscraft.services.linters import find_tool

MAX_INVENTORY_BYTES = 64 * 1024
# Values once YAML aliases are expanded: 64 KiB written out hold a few tens of thousands; an
# "alias bomb" of a few hundred bytes holds millions, and `ansible-inventory --list` copied them
# out on the server (1.4 GB of memory within its 60 s for 455 bytes).
MAX_EXPANDED_VALUES = 100_000
# Hosts once host ranges are written out: `ansible-inventory --list` took 24 s for 20,000
# (`h[0:19999]`) and 700 MB and its whole timeout for a million (`h[0:99][0:99][0:99]`).
MAX_HOSTS = 10_000
# Characters of a host name a refusal repeats (a YAML key may be most of the 64 KiB text).
MAX_NAME_SHOWN = 80
TIMEOUT_SECONDS = 60.0
CHECK_TIMEOUT_MESSAGE = "could not be checked in time: try again"
FIELD = "inventory"
# What an empty or blank inventory is told to do. Only a shared inventory's reaches it (a
# script's own blank text is read as none: localhost), so it says nothing of leaving the
# inventory out, which the shared-inventory dialog said of a box that cannot be left out.
WRITE_HOSTS = "write the hosts"
#: What a line break the text does not show does, after where it is (`line_breaks.hidden`).
HIDDEN_BREAK_EFFECT = (
    "which Ansible reads as a line break while the text shows one line (a host after it would be "
    "targeted unseen): write a line break instead"
)
#: The `ansible_connection` that runs a host's tasks in the run itself (no network).
LOCAL_CONNECTION = "local"
#: How many inventory texts `ansible-inventory`'s answer is kept for (by SHA-256), a few MB at most.
CHECKS_KEPT = 128
_checks: OrderedDict[str, _Checked | str] = OrderedDict()


def without_bom(text: str) -> str:
    """The inventory `text` without a leading byte order mark, which a Windows editor writes:
    Ansible's INI parser reads it as part of the first line (`[web]` became a host pattern:
    "host range must be begin:end or begin:end:step"). Scripts drop it too (line_endings)."""
    return line_endings.strip_boms(text)[0]


def _invalid(message: str, field: str = FIELD) -> Invalid:
    return Invalid.at(field, message)


def _expanded_size(data: object, limit: int) -> int:
    """How many values (mappings, lists, keys and scalars) `data` holds once every YAML alias is
    written out, counting up to just past `limit`: an alias is one shared object in `data`,
    counted again wherever it is used (memoized by identity, so this costs one visit per node)."""
    sizes: dict[int, int] = {}

    def size(node: object) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1  # no cycles: BaseLoader refuses a node that holds itself (`&a [*a]`)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if isinstance(children, list):
            for child in children:
                total += size(child)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    return size(data)


def _refuse_what_ansible_must_not_read(text: str, field: str) -> None:
    """`Invalid` for YAML that is an inventory plugin configuration or an alias bomb or writes a
    key twice in one mapping (`yaml_keys`: Ansible uses the last, the page shows both), and for
    host ranges that expand to more than `MAX_HOSTS` hosts (INI or YAML)."""
    try:  # every scalar as text: safe_load's dates raised ValueError on `0000-01-01` (a 500)
        data = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds only str, list, dict)
    except (yaml.YAMLError, RecursionError):
        data = None  # not YAML: INI, checked by ansible-inventory
    if data is not None and _expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise _invalid(
            f"its YAML aliases (*name) expand to more than {MAX_EXPANDED_VALUES:,} values, which "
            "Ansible would copy out in full: write the values out, or share them as group vars",
            field,
        )
    if isinstance(data, dict):
        repeated = yaml_keys.repeated(yaml.compose(text, Loader=yaml.SafeLoader))
        if repeated:
            raise _invalid(f"line {repeated[0][0]}: {repeated[0][1]}", field)
    if isinstance(data, dict) and "plugin" in data:
        raise _invalid(
            "inventory plugin configurations (a 'plugin:' key) are not accepted, they can run code "
            "on the server: write the hosts and groups as YAML or INI data",
            field,
        )
    if isinstance(data, dict):
        names = list(inventory_ranges.yaml_host_names(data))
    else:
        names = list(inventory_ranges.ini_host_names(text))
    hosts = min(sum(inventory_ranges.host_count(name) for name in names), inventory_ranges.COUNT_CAP)
    if hosts > MAX_HOSTS:
        # The name of the most hosts is named: among many lines, "use smaller ranges" left the
        # operator to count each range.
        largest = max(names, key=inventory_ranges.host_count)
        shown = largest if len(largest) <= MAX_NAME_SHOWN else largest[: MAX_NAME_SHOWN - 1] + "…"
        alone = inventory_ranges.said(inventory_ranges.host_count(largest))
        raise _invalid(
            f"names {inventory_ranges.said(hosts)} hosts once its host ranges (web[01:50]) are written "
            f"out, more than {MAX_HOSTS:,} ({shown} alone is {alone}): use "
            "smaller ranges",
            field,
        )


async def validate(text: str, field: str = FIELD) -> list[str]:
    """The host names of the inventory `text`, sorted; `Invalid` (naming `field`: `inventory` of
    a script, `content` of a shared inventory) saying what to fix when it is too large, empty or blank
    (`input_words.blank_problem`), holds NUL or a line break the text does not show
    (`line_breaks.hidden`),
    has YAML aliases expanding to more than `MAX_EXPANDED_VALUES` values or host ranges to more
    than `MAX_HOSTS` hosts, is a plugin configuration or does not parse as an INI or YAML
    inventory. Without `ansible-inventory` on this machine, only those first checks are made and
    the result is empty."""
    checked = await _check(text, field)
    return list(checked.hosts) if checked is not None else []


async def reaches_network(text: str) -> bool:
    """Whether a run with the inventory `text` reaches hosts over the network: True when a host's
    `ansible_connection` (its own, or its groups' or `all`'s, merged as Ansible merges them) is
    anything but `local`, or when that cannot be told (no `ansible-inventory` here, or a text it
    refuses). Hosts that all use `ansible_connection=local` run in the run itself."""
    try:
        checked = await _check(text, FIELD)
    except Invalid:
        return True
    return checked is None or checked.reaches_network


@dataclass(frozen=True)
class _Checked:
    """What `ansible-inventory --list` told of an inventory: its hosts (sorted) and whether any
    of them is reached over the network."""

    hosts: tuple[str, ...]
    reaches_network: bool
    #: The first host whose name or `ansible_host` starts with `-` (`_option_like`), or None.
    option_like: str | None = None
    #: The first host whose address is encrypted with Ansible Vault (`_vaulted`), or None.
    vaulted: str | None = None
    #: Where a password variable is first written in clear (`_clear_password`: "host db1
    #: (ansible_become_pass)", "group dbs (...)"), or None.
    clear_password: str | None = None


async def _check(text: str, field: str) -> _Checked | None:
    """`text` checked as `validate` says, or None without `ansible-inventory`. The tool's answer
    (or the reason it refused the text) is kept by content, `CHECKS_KEPT` of them: it starts a
    Python of its own, about a second of CPU, and the run form and every save of a script ask
    again for the same text. A check that ran out of time is not kept."""
    if "\x00" in text:
        raise _invalid(NUL_MESSAGE, field)
    size = len(text.encode())
    if size > MAX_INVENTORY_BYTES:
        raise _invalid(f"must be at most {MAX_INVENTORY_BYTES // 1024} KiB, not {size} bytes", field)
    blank = input_words.blank_problem(text, WRITE_HOSTS)
    if blank:
        raise _invalid(blank, field)
    hidden = line_breaks.hidden(text)
    if hidden is not None:
        raise _invalid(f"{hidden}, {HIDDEN_BREAK_EFFECT}", field)
    if vault_files.whole_file(text):
        raise _invalid(vault_files.problem("inventory"), field)
    _refuse_what_ansible_must_not_read(text, field)
    tool = find_tool("ansible-inventory")
    if tool is None:
        return None
    key = hashlib.sha256(text.encode()).hexdigest()
    kept = _checks.get(key)
    if kept is None:
        kept = await _listing(tool, text, field)
    _checks[key] = kept
    _checks.move_to_end(key)
    while len(_checks) > CHECKS_KEPT:
        _checks.popitem(last=False)
    if isinstance(kept, str):
        raise _invalid(f"is not a valid INI or YAML inventory: {kept}", field)
    if kept.option_like is not None:
        raise _invalid(
            f"host {kept.option_like} starts with '-', which ssh would read as one of its options "
            "(-oProxyCommand=... runs a command): write the host's name or address",
            field,
        )
    if kept.vaulted is not None:
        raise _invalid(
            f"host {kept.vaulted} is encrypted with Ansible Vault: a run has no vault password to "
            "read it, and an address no check can see could be an ssh option (-oProxyCommand=... "
            "runs a command): write the address, or read it from a secret with "
            "\"{{ lookup('env', 'NAME') }}\" (each run refuses one starting with '-')",
            field,
        )
    if kept.clear_password is not None:
        raise _invalid(
            f"{kept.clear_password} holds a password in clear, and an inventory is stored and "
            f"shown as written to everyone who may see it: {password_variables.INSTEAD}",
            field,
        )
    return kept


async def _listing(tool: str, text: str, field: str) -> _Checked | str:
    """`ansible-inventory --list` of `text`: its hosts, or the reason it refused the text;
    `Invalid` naming `field` when it did not answer within `TIMEOUT_SECONDS`. The `--export`
    listing keeps each variable where it is written (a host's own, a group's `vars`, a group
    without hosts too), which `--list` merges into the hosts' variables and drops for a group
    with no host: the password check reads that one."""
    with tempfile.TemporaryDirectory(prefix="opscraft-inventory-") as scratch:
        folder = Path(scratch)
        (folder / INVENTORY_FILE).write_text(text, encoding="utf-8")
        (folder / INVENTORY_FILE).chmod(0o600)
        refusal, listed, exported = await _listings(tool, folder, field)
    if refusal is not None:
        return inventory_errors.explain(text, refusal, str(folder))
    hosts = _host_vars(listed)
    return _Checked(
        hosts=tuple(sorted(hosts)),
        reaches_network=any(v.get("ansible_connection") != LOCAL_CONNECTION for v in hosts.values()),
        option_like=_option_like(hosts),
        vaulted=_vaulted(hosts),
        clear_password=_clear_password(exported),
    )


async def _listings(tool: str, folder: Path, field: str) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(None, the `--list` listing, the `--export` listing) of the inventory file in `folder`,
    or (the tool's stderr, {}, {}) when it refused the file. One child of the tool's Python,
    forked from the process's fork server holding ansible-core's imports, prints both
    (`inventory_forks`, `inventory_listing`: a Python start, about 0.45 s of CPU, was two, then
    one); a tool that is no Python script is run twice, side by side."""
    python = inventory_listing.python_of(tool)
    if python is not None:
        code, out, err = await _forked(tool, python, folder, field)
        if code != 0:
            return err, {}, {}
        listings = json.loads(out)
        return None, listings["list"], listings["export"]
    listed = [tool, "-i", INVENTORY_FILE, "--list"]
    (code, out, err), (_, exported, _) = await asyncio.gather(
        _run(listed, folder, field), _run([*listed, "--export"], folder, field)
    )
    if code != 0:
        return err, {}, {}
    return None, json.loads(out), json.loads(exported)


# The variables ansible-core's ssh connection reads a host's address from (its `host` option).
ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")


def _option_like(hosts: dict[str, dict[str, Any]]) -> str | None:
    """The first host (sorted; "name (ansible_host X)" when it is the address) that Ansible's ssh
    connection would hand to `ssh` as an argument starting with `-`, or None. The address (its
    `ansible_host`, else its name) is put on ssh's command line with no `--` before it
    (ansible-core's plugins/connection/ssh.py), so ssh reads `-oProxyCommand=...` as an option.
    Both variables of that plugin's `host` option count (`ansible_ssh_host`, the old name, wins
    over `ansible_host`), and a number is text there (`ansible_host=-1` is the int -1)."""
    for name in sorted(hosts):
        given = {key: hosts[name][key] for key in ADDRESS_VARS if key in hosts[name]}
        for key, address in given.items():
            if not isinstance(address, bool) and str(address).startswith("-"):
                return f"{name} ({key} {address})"
        if not given and name.startswith("-"):
            return name
    return None


def _vaulted(hosts: dict[str, dict[str, Any]]) -> str | None:
    """The first host (sorted) whose address variable (`ADDRESS_VARS`) is an Ansible Vault value
    (`!vault |`, listed as `{"__ansible_vault": ...}`), as "name (ansible_host)", or None."""
    for name in sorted(hosts):
        for key in ADDRESS_VARS:
            if isinstance(hosts[name].get(key), dict) and "__ansible_vault" in hosts[name][key]:
                return f"{name} ({key})"
    return None


def _clear_password(exported: dict[str, Any]) -> str | None:
    """Where the `ansible-inventory --list --export` listing `exported` first has a password
    variable (`password_variables.PASSWORD_VAR_RE`) holding a value written out
    (`password_variables.written_out`), as "host db1 (variable)" or "group dbs (variable)"
    (hosts' own variables, then groups' `vars`, each sorted; a group with no host counts, its
    text is stored as well), or None. A template may read no variable written out anywhere in
    the inventory (`password_variables.clear_names`). The value is never named."""
    places = [("host", name, v) for name, v in exported.get("_meta", {}).get("hostvars", {}).items()]
    places += [
        ("group", name, group.get("vars", {}))
        for name, group in exported.items()
        if name != "_meta" and isinstance(group, dict)
    ]
    clear = password_variables.clear_names(pair for *_, v in places for pair in v.items())
    for kind, name, variables in sorted(places, key=lambda place: place[:2]):
        for key in sorted(variables):
            value = variables[key]
            if password_variables.PASSWORD_VAR_RE.fullmatch(key) and password_variables.written_out(
                value, clear
            ):
                return f"{kind} {name} ({key})"
    return None


def _host_vars(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every host of an `ansible-inventory --list` listing with its merged variables: hosts
    without any variable are only in their groups' `hosts`, not in `_meta.hostvars`."""
    hostvars = dict(listing.get("_meta", {}).get("hostvars", {}))
    for name, group in listing.items():
        if name != "_meta" and isinstance(group, dict):
            for host in group.get("hosts", []):
                hostvars.setdefault(host, {})
    return hostvars


def _environment(program: str) -> dict[str, str]:
    """The environment of a check by `program` (a path) but its folder's paths (`_run`; the
    fork server sets its own: `inventory_forks.FORK_SERVER_CODE`)."""
    return {
        "PATH": f"{Path(program).parent}:/usr/local/bin:/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_ENABLED": INVENTORY_PLUGINS,
        **UNPARSED_INVENTORY_FAILS,
    }


async def _forked(tool: str, python: list[str], folder: Path, field: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of both listings of the inventory file in `folder` by a
    child of the fork server of `python` (the interpreter of `tool`: `inventory_forks`);
    `Invalid` naming `field` past `TIMEOUT_SECONDS`. When no fork server can take the check, the
    tool's Python runs it (`inventory_listing.command`)."""
    server = inventory_forks.server(python, INVENTORY_FILE, _environment(python[0]))
    try:
        checked = await server.check(folder, TIMEOUT_SECONDS)
    except inventory_forks.CheckTimeout:
        raise _invalid(CHECK_TIMEOUT_MESSAGE, field) from None
    except OSError:
        both = inventory_listing.command(tool, INVENTORY_FILE)
        assert both is not None  # `python` is its interpreter
        return await _run(both, folder, field)
    return checked.code, checked.out, checked.err


async def _run(argv: list[str], folder: Path, field: str) -> tuple[int, str, str]:
    env = {
        **_environment(argv[0]),
        "HOME": str(folder),
        "ANSIBLE_CONFIG": str(folder / "ansible.cfg"),  # absent: no configuration file is read
        "ANSIBLE_HOME": str(folder / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(folder / ".ansible" / "tmp"),
    }
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=folder,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            out, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise _invalid(CHECK_TIMEOUT_MESSAGE, field) from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
