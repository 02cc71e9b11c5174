"""Ansible run options (`--limit`, `--tags`, `--skip-tags`, `--check`, `--diff`) as argv items,
and what `ansible-playbook`'s exit codes mean (`exit_message`).

Whoever starts a run (a viewer may) picks these, so each value is checked against the form
Ansible documents for it and handed over as one `--option=value` argv item: no shell sees it,
and a value can never become another option. Sources: `ansible-playbook --help` and Ansible's
"Patterns: targeting hosts and groups" (host patterns: names, groups, `all`, `*` and `?`
wildcards, `[1:3]` ranges, `:`/`,` unions, `:&` intersections, `:!` exclusions, `~regex`).
A limit starting with `@` would make Ansible read a file of host names, one starting with `-`
looks like an option: both are refused.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from opscraft.execution import ansible_recap

MAX_LIMIT = 512
MAX_TAGS = 50
MAX_TAG = 64
# A host pattern: no white space, no quote, no shell or template syntax; '@' and '-' not first.
# Letters and digits of any script (`\w`: an inventory may name hosts `主机-1`), never a
# format, control or space character.
LIMIT_RE = re.compile(r"[\w.*?~\[\]:!&,^$|()+\\/=%-]+")
# A tag: letters and digits of any script, `_`, `.`, `:` and `-` (playbooks tag tasks `déploiement`
# or `role:nginx`, which Ansible selects as written), starting with a letter, digit or `_`; never
# ',' (Ansible's separator), a space, a quote or template syntax.
TAG_RE = re.compile(r"\w[\w.:-]*")
# How Ansible cuts a limit without ',' into patterns (`ansible.inventory.manager.split_host_pattern`,
# ansible-core 2.14-2.19): at every ':' outside a `[...]` range, unless the whole limit is one
# address. `web:!fe80::1` became `web`, `!fe80`, `1`: the address was never excluded.
ANSIBLE_PIECE_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
BRACKETED_RE = re.compile(r"\[[^\]]*\]")
# An IPv6 address written in full (eight groups), which needs no '::'.
FULL_IPV6_RE = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])")
FLAGS = ("check", "diff")
KEYS = ("limit", "tags", "skip_tags", *FLAGS)


class OptionError(ValueError):
    """An option is not valid: `field` names it (e.g. `run_options.limit`), the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalize(options: dict[str, Any] | None) -> dict[str, Any]:
    """The options in canonical form: `{"limit": str, "tags": [str], "skip_tags": [str],
    "check": bool, "diff": bool}`, unset ones left out. Raises `OptionError` for the first bad one."""
    if not options:
        return {}
    if not isinstance(options, dict):
        raise OptionError("run_options", "must be an object")
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise OptionError(f"run_options.{unknown[0]}", f"unknown option: use one of {', '.join(KEYS)}")
    found: dict[str, Any] = {}
    limit = options.get("limit")
    if limit not in (None, ""):
        found["limit"] = _limit(limit)
    for key in ("tags", "skip_tags"):
        value = options.get(key)
        if value not in (None, "", []):
            found[key] = _tags(key, value)
    for key in FLAGS:
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise OptionError(f"run_options.{key}", "must be true or false")
        if value:
            found[key] = True
    return found


def _limit(value: Any) -> str:
    field = "run_options.limit"
    if not isinstance(value, str):
        raise OptionError(field, "must be a host pattern (text)")
    if len(value) > MAX_LIMIT:
        raise OptionError(field, f"must be at most {MAX_LIMIT} characters")
    if value[0] in "-@":
        raise OptionError(field, "must not start with '-' or '@' (an option, or a file of host names)")
    if not LIMIT_RE.fullmatch(value):  # match's `$` let a trailing newline through
        raise OptionError(
            field,
            "must be an Ansible host pattern: names, groups, wildcards, ':', ',', '&', '!', '~' "
            "(no spaces, quotes or '{')",
        )
    _check_pieces(value)
    return value


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _one_address(value: str) -> bool:
    """Whether Ansible reads the whole limit as one IPv6 address (`fe80::1`, `fe80::[1:3]`,
    `[fe80::1]:22`), which it does not cut at its colons."""
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::\d+)?", value)
    if bracketed:
        value = bracketed.group(1)
    return _is_ipv6(BRACKETED_RE.sub("0", value))


def _check_pieces(value: str) -> None:
    """Refuse a limit Ansible would cut into other patterns than written: an IPv6 address in a
    ':'-separated limit (`web:!fe80::1` ran on fe80::1, `web:!::1` ended in a traceback), or a
    '!' or '&' with nothing after it (`web,!`: a traceback)."""
    field = "run_options.limit"
    if "," in value:
        pieces = value.split(",")
    elif _one_address(value):
        pieces = [value]
    else:
        masked = BRACKETED_RE.sub("0", value)
        if "::" in masked or FULL_IPV6_RE.search(masked):
            raise OptionError(
                field,
                "holds an IPv6 address: separate the patterns with ',' (web,!fe80::1; alone: "
                "all,!fe80::1), as Ansible cuts ':'-separated patterns at every ':' of the address",
            )
        pieces = ANSIBLE_PIECE_RE.findall(value)
    if any(piece.strip() and not piece.strip().lstrip("!&") for piece in pieces):
        raise OptionError(field, "each '!' or '&' must be followed by a host or group (web,!db)")


def _tags(key: str, value: Any) -> list[str]:
    field = f"run_options.{key}"
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise OptionError(field, "must be a list of tag names (or one comma-separated text)")
    if isinstance(value, list) and not all(item.strip() for item in items):
        # A comma-separated text may end in ',' as typed; a list's blank item is no tag at all.
        raise OptionError(field, "each tag must be a name: remove the blank item")
    tags = [item.strip() for item in items if item.strip()]
    if len(tags) > MAX_TAGS:
        raise OptionError(field, f"at most {MAX_TAGS} tags")
    for tag in tags:
        if len(tag) > MAX_TAG or not TAG_RE.fullmatch(tag):
            raise OptionError(
                field,
                f"each tag must be 1-{MAX_TAG} letters, digits, '_', '.', ':' or '-', "
                "starting with a letter, digit or '_'",
            )
    return list(dict.fromkeys(tags))


def argv(options: dict[str, Any]) -> list[str]:
    """`ansible-playbook` arguments for already normalized options, one item per option."""
    checked = normalize(options)
    items = []
    if "limit" in checked:
        items.append(f"--limit={checked['limit']}")
    if "tags" in checked:
        items.append(f"--tags={','.join(checked['tags'])}")
    if "skip_tags" in checked:
        items.append(f"--skip-tags={','.join(checked['skip_tags'])}")
    items += [f"--{key}" for key in FLAGS if checked.get(key)]
    return items


# What an exit code of `ansible-playbook` means (ansible-core's `ansible.errors.ExitCode` and
# `TaskQueueManager.RUN_*`): 4 is both "a host unreachable" and "a file did not parse" there.
EXIT_MEANINGS = {
    1: "ansible-playbook stopped on an error (ERROR! in the output)",
    2: "a task failed on at least one host (the PLAY RECAP says which)",
    4: "a host was unreachable, or a file did not parse (UNREACHABLE! or ERROR! in the output)",
    5: "ansible-playbook refused its options (the output says which)",
    250: "ansible-playbook ended on an unexpected error (its traceback is in the output)",
}


# ansible-playbook's error line on stderr: `ERROR! ...` (ansible-core up to 2.18), `[ERROR]: ...` (2.19).
# Its text is taken to the line's end and stripped after (`terraform_errors._ERROR`).
_ERROR_LINE = re.compile(r"(?:ERROR!|\[ERROR\]:)\s*(?P<text>\S.*)")
MAX_ERROR = 200


def last_error(stderr: str) -> str | None:
    """The last error line ansible-playbook printed on `stderr` (ANSI colours removed), without
    its `ERROR!` / `[ERROR]:` prefix, cut to `MAX_ERROR` characters: for exit code 1 the error it
    stopped on ("the role 'common' was not found in ..."). None when there is none."""
    found = None
    for line in ansible_recap.without_colours(stderr).splitlines():
        match = _ERROR_LINE.match(line)
        if match:
            found = match.group("text").rstrip()
    if found is None:
        return None
    return found if len(found) <= MAX_ERROR else found[: MAX_ERROR - 3] + "..."


SECRET_HINTS: dict[tuple[str, ...], str] = {
    # ansible-core 2.14-2.19, VaultLib.decrypt: no password given, and a password that fits no value.
    ("Attempting to decrypt but no vault secrets found",): (
        "the playbook or inventory has !vault values and the run has no vault password: attach a "
        "file secret named ANSIBLE_VAULT_PASSWORD_FILE holding it to the script (docs/executions.md, "
        "Ansible against real hosts)"
    ),
    ("no vault secrets were found that could decrypt",): (
        "the password in the secret ANSIBLE_VAULT_PASSWORD_FILE does not decrypt the !vault values: "
        "store the one they were encrypted with"
    ),
    # The ssh connection's "Missing %s password" / "Incorrect %s password" (the become method's name).
    ("Missing sudo password", "Missing su password"): (
        "the host asks for a password to become another user and the run has none: attach a file "
        "secret named ANSIBLE_BECOME_PASSWORD_FILE holding it to the script (docs/executions.md, "
        "Ansible against real hosts)"
    ),
    ("Incorrect sudo password", "Incorrect su password"): (
        "the password in the secret ANSIBLE_BECOME_PASSWORD_FILE is not the one the host asks for "
        "(sudo: the login user's; su: the user's it becomes)"
    ),
}
"""What to do about an error Ansible printed (in a task's failure on stdout, or its ERROR! on
stderr) whose fix is a secret attached to the script: Ansible's words name no OpsCraft secret,
and such a run's message said only "a task failed on web1"."""

INVENTORY_HINTS: dict[tuple[str, ...], str] = {
    # ansible-core 2.14-2.19, InventoryManager.parse_source with ANSIBLE_INVENTORY_UNPARSED_FAILED
    # (commands.UNPARSED_INVENTORY_FAILS): every enabled plugin refused the file.
    ("Completely failed to parse inventory source",): (
        "the run's Ansible could not parse the inventory (the warnings above give each plugin's "
        "reason): open the script's or the shared inventory and save it again, which checks it and "
        "names the line at fault"
    ),
}
"""What to do about an inventory the run's Ansible refused: its words name a file of the run."""


def exit_message(exit_code: int, stdout: str = "", stderr: str = "") -> str:
    """Why a playbook's run failed, for its `error_message`: "the script exited with code 4: a host
    was unreachable, ..." (`EXIT_MEANINGS`); other codes as any script's. With the end of the
    run's stdout, codes 2 and 4 name the hosts its PLAY RECAP says failed or were unreachable
    instead: "the script exited with code 2: a task failed on db1 (1 of 4 hosts)". Otherwise
    the last error line of its stderr follows a documented meaning: "the script exited with
    code 1: ansible-playbook stopped on an error: the role 'common' was not found in ..." (2.19
    prints `[ERROR]:` where older versions printed `ERROR!`)."""
    meaning = EXIT_MEANINGS.get(exit_code)
    hosts = ansible_recap.failed_hosts(stdout) if exit_code in (2, 4) else None
    if hosts:
        meaning = hosts
    elif meaning and (error := last_error(stderr)):
        meaning = f"{meaning.split(' (')[0]}: {error}"
    known = {**SECRET_HINTS, **INVENTORY_HINTS}.items()
    hints = [hint for says, hint in known if any(s in stdout or s in stderr for s in says)]
    message = f"the script exited with code {exit_code}" + (f": {meaning}" if meaning else "")
    return message + "".join(f"; {hint}" for hint in hints)
