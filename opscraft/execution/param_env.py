"""How parameter values reach a program, and which parameter names a program would interpret.

A parameter's name is chosen by the script's author, its value by whoever starts the run (a
viewer may). Values therefore travel only as data: environment variables for bash and Python,
`TF_VAR_<name>` for Terraform, and an extra-vars file whose strings are tagged `!unsafe` for
Ansible (Ansible templates every other extra-var string: `{{ lookup('pipe', 'id') }}` would run).

Some names make a program do something with the value instead of handing it to the script
(`BASH_ENV` is expanded and sourced by bash, `LD_PRELOAD` loads a library, `PYTHONWARNINGS`
imports a module, `TF_CLI_ARGS` adds command line arguments, `ansible_python_interpreter` picks
the interpreter): `interpreted_name` tells which, and parameters may not take such names. The
list and its sources are in docs/scripts.md ("Names a parameter may not take").
"""

from __future__ import annotations

from typing import Any

import yaml

# Names the runtime sets itself, for every run (also refused for secrets).
RUNTIME_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "HOSTNAME",
        "PWD",
        "OLDPWD",
        "SHELL",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "IFS",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
    }
)
RUNTIME_PREFIX = "OPSCRAFT_"

# Names (compared in upper case) a program run by OpsCraft interprets, each with who does.
# Sources: bash(1) "Shell Variables" and "INVOCATION"; python(1) "ENVIRONMENT VARIABLES";
# glibc's list of unsafe environment variables (elf/unsecvars.h) and ld.so(8); Ansible's
# configuration settings (`ansible-config list`) and connection variables; Terraform's
# "Environment Variables" and "CLI Configuration File" pages; Go's runtime and net/http.
INTERPRETED_PREFIXES: dict[str, str] = {
    "BASH": "bash reads BASH_ENV, BASHOPTS, BASH_FUNC_*, BASH_XTRACEFD, BASH_LOADABLES_PATH, ...",
    "PYTHON": "Python reads PYTHONPATH, PYTHONHOME, PYTHONWARNINGS, PYTHONBREAKPOINT, ...",
    "ANSIBLE_": "Ansible reads ANSIBLE_* settings and ansible_* connection variables",
    "TF_": "Terraform reads TF_CLI_ARGS*, TF_CLI_CONFIG_FILE, TF_DATA_DIR, TF_VAR_*, ...",
    "LD_": "the dynamic loader reads LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, ...",
    "MALLOC_": "the C library reads MALLOC_TRACE and other MALLOC_* settings",
    "LC_": "the C library reads the locale settings the runtime sets",
    "OPENSSL_": "OpenSSL reads OPENSSL_CONF, OPENSSL_ENGINES, OPENSSL_MODULES (loadable code)",
}
INTERPRETED_NAMES: dict[str, str] = {
    **dict.fromkeys(
        (
            "SHELLOPTS",
            "PS0",
            "PS1",
            "PS2",
            "PS3",
            "PS4",
            "PROMPT_COMMAND",
            "CDPATH",
            "GLOBIGNORE",
            "EXECIGNORE",
            "FUNCNEST",
            "TMOUT",
            "POSIXLY_CORRECT",
            "INPUTRC",
            "HISTFILE",
        ),
        "the shell interprets it",
    ),
    **dict.fromkeys(
        (
            "GCONV_PATH",
            "GETCONF_DIR",
            "GLIBC_TUNABLES",
            "HOSTALIASES",
            "LOCALDOMAIN",
            "LOCPATH",
            "NIS_PATH",
            "NLSPATH",
            "RESOLV_HOST_CONF",
            "RES_OPTIONS",
            "TZDIR",
        ),
        "the C library or the dynamic loader interprets it",
    ),
    **dict.fromkeys(("TERRAFORM_CONFIG", "CHECKPOINT_DISABLE"), "Terraform interprets it"),
    **dict.fromkeys(
        ("GODEBUG", "GOTRACEBACK", "GOMAXPROCS", "GOGC", "GOMEMLIMIT"),
        "Go (Terraform) interprets it",
    ),
    **dict.fromkeys(
        ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"),
        "Terraform, Python and Ansible route or trust network connections by it",
    ),
}


def runtime_name(name: str) -> bool:
    """True when the runtime sets `name` itself (PATH, HOME, ..., the OPSCRAFT_ prefix)."""
    upper = name.upper()
    return upper in RUNTIME_NAMES or upper.startswith(RUNTIME_PREFIX)


def interpreted_name(name: str) -> str | None:
    """Why `name` cannot be a parameter (a program would interpret it), or None when it can.

    Compared in upper case, so `ansible_python_interpreter` is refused with `ANSIBLE_*`.
    """
    upper = name.upper()
    if runtime_name(name):
        return f"the runtime sets it (PATH, HOME, ... and the {RUNTIME_PREFIX} prefix)"
    if upper in INTERPRETED_NAMES:
        return INTERPRETED_NAMES[upper]
    for prefix, reason in INTERPRETED_PREFIXES.items():
        if upper.startswith(prefix):
            return reason
    return None


def to_env(resolved: dict[str, Any]) -> dict[str, str]:
    """Environment variables for resolved values: booleans as "true"/"false", numbers via `str`."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in resolved.items()
    }


class _Unsafe(str):
    """A string Ansible must not template (YAML tag `!unsafe`, ansible-core 2.0+)."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


_ExtraVarsDumper.add_representer(
    _Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style='"')
)


def ansible_extra_vars(resolved: dict[str, Any]) -> bytes:
    """A YAML extra-vars file for `ansible-playbook -e @file`: strings tagged `!unsafe`.

    Integers, numbers and booleans keep their YAML types; every string (string and choice
    parameters) is `!unsafe`, so Ansible hands it to tasks literally instead of templating it.
    """
    data = {name: _Unsafe(value) if isinstance(value, str) else value for name, value in resolved.items()}
    return yaml.dump(data, Dumper=_ExtraVarsDumper, allow_unicode=True, sort_keys=False, width=2**31).encode()
