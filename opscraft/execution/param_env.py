"""How parameter values reach a program, and which parameter names a program would interpret.

A parameter's name is chosen by the script's author, its value by whoever starts the run (a
viewer may). Values therefore travel only as data: environment variables for bash and Python,
`TF_VAR_<name>` for Terraform, and an extra-vars file whose strings are marked unsafe for
Ansible (Ansible templates every other extra-var string: `{{ lookup('pipe', 'id') }}` would run).

Some names make a program do something with the value instead of handing it to the script
(`BASH_ENV` is expanded and sourced by bash, `LD_PRELOAD` loads a library, `PYTHONWARNINGS`
imports a module, `TF_CLI_ARGS` adds command line arguments, `ansible_python_interpreter` picks
the interpreter): `interpreted_name` tells which, and parameters may not take such names. The
list and its sources are in docs/scripts.md ("Names a parameter may not take").
"""

from __future__ import annotations

import json
from typing import Any

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
        (
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "AWS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "SSLKEYLOGFILE",
            "CURL_HOME",
            "WGETRC",
        ),
        "it changes which TLS certificates a tool trusts (OpenSSL, Go, requests, curl, botocore, "
        "Node) or where TLS keys are written",
    ),
    **dict.fromkeys(
        (
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "SSH_AUTH_SOCK",
            "GIT_EXEC_PATH",
            "GIT_PROXY_COMMAND",
            "GIT_EXTERNAL_DIFF",
            "GIT_PAGER",
            "GIT_EDITOR",
            "GIT_SEQUENCE_EDITOR",
            "GIT_TEMPLATE_DIR",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "NODE_OPTIONS",
            "NODE_PATH",
            "PERLLIB",
            "RUBYOPT",
            "RUBYLIB",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "KUBECONFIG",
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "DOCKER_CONTEXT",
            "DOCKER_CERT_PATH",
            "DOCKER_TLS_VERIFY",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ),
        "a tool the script calls (git, ssh, Node, Perl, Ruby, Java, kubectl, docker, the AWS "
        "SDKs) runs a command, loads code or picks credentials or a daemon by it",
    ),
    **dict.fromkeys(
        (
            "TAR_OPTIONS",
            "ZIPOPT",
            "LESSOPEN",
            "LESSCLOSE",
            "RSYNC_RSH",
            "RSYNC_CONNECT_PROG",
            "SUDO_ASKPASS",
            "SSH_ASKPASS_REQUIRE",
            "EDITOR",
            "VISUAL",
        ),
        "a common tool runs a command it names (GNU tar's --checkpoint-action=exec and "
        "--to-command, which the Docker runner's own unpacking runs too; zip -TT; less; rsync; "
        "sudo -A; ssh; the editor git commit without -m, crontab -e and visudo start, also "
        "without a terminal)",
    ),
    **dict.fromkeys(
        (
            "GIT_COMMON_DIR",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_INDEX_FILE",
            "GIT_CEILING_DIRECTORIES",
            "GIT_ALLOW_PROTOCOL",
            "GIT_PROTOCOL_FROM_USER",
        ),
        "git takes the repository (its hooks and configuration, which run commands) or the "
        "transports it allows (ext:: runs a command) from it",
    ),
    **dict.fromkeys(
        (
            "NETRC",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "KRB5CCNAME",
            "KRB5_CONFIG",
            "PGPASSFILE",
            "PGSERVICEFILE",
            "GNUPGHOME",
        ),
        "a tool or library picks the credentials or the keys it trusts by it (requests and curl's "
        "netrc, Google's SDKs, Kerberos, libpq, GnuPG)",
    ),
    "MUSL_LOCPATH": "the C library of Alpine images (musl) reads locale files from it",
}
# Prefixes of whole families of such names (see `INTERPRETED_NAMES` for the single ones).
INTERPRETED_PREFIXES.update(
    {
        "GIT_CONFIG": "git reads configuration (core.sshCommand, ...) from GIT_CONFIG_*",
        "GIT_SSL_": "git trusts TLS certificates by GIT_SSL_CAINFO, GIT_SSL_NO_VERIFY, ...",
        "PERL5": "Perl loads code by PERL5LIB, PERL5OPT, PERL5DB",
        "PIP_": "pip reads every option (PIP_INDEX_URL, PIP_CERT, ...) from PIP_*",
    }
)

# Proxies: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY (Go's net/http in Terraform, Python,
# Ansible, curl, git, pip) and any other `<scheme>_proxy`, in any case: Python's urllib
# (`getproxies_environment`, which requests uses) and curl read one per URL scheme
# (`SOCKS_PROXY`, `WSS_PROXY`, `FTP_PROXY`), rsync reads `RSYNC_PROXY`.
PROXY_SUFFIX = "_PROXY"
PROXY_REASON = (
    "it routes the run's network connections through another host (Terraform, Python, Ansible, "
    "curl, git, pip read HTTP_PROXY and the like; Python's urllib and curl a <scheme>_proxy for "
    "every scheme, rsync RSYNC_PROXY)"
)

# Ansible's own variable names, compared as written (Ansible's variables are case-sensitive, so
# a parameter `ENVIRONMENT` stays allowed while `environment` is refused). The union of, in
# ansible-core: `ansible.vars.reserved.get_reserved_names()` (play keywords and Jinja2 globals:
# `omit`, `vars`, `environment`, `lookup`, ...), `ansible.constants.INTERNAL_STATIC_VARS` (magic
# variables: `hostvars`, `groups`, `inventory_hostname`, `playbook_dir`, ...),
# `COMMON_CONNECTION_VARS` and `MAGIC_VARIABLE_MAPPING` (`ansible_*`, refused by the
# `ANSIBLE_` prefix already). tests/test_parameters.py checks it against the installed Ansible.
ANSIBLE_RESERVED = frozenset(
    {
        *("action", "always", "any_errors_fatal", "args", "async", "async_val", "become"),
        *("become_exe", "become_flags", "become_method", "become_user", "block", "changed_when"),
        *("check_mode", "collections", "connection", "cycler", "debugger", "delay"),
        *("delegate_facts", "delegate_to", "dict", "diff", "environment", "fact_path"),
        *("failed_when", "force_handlers", "gather_facts", "gather_timeout", "handlers", "hosts"),
        *("ignore_errors", "ignore_unreachable", "joiner", "lipsum", "local_action", "lookup"),
        *("loop", "loop_control", "loop_with", "max_fail_percentage", "module_defaults", "name"),
        *("namespace", "no_log", "notify", "now", "omit", "order", "poll", "port", "post_tasks"),
        *("pre_tasks", "q", "query", "range", "register", "remote_user", "rescue", "retries"),
        *("roles", "run_once", "serial", "strategy", "tags", "tasks", "throttle", "timeout"),
        *("undef", "until", "vars", "vars_files", "vars_prompt", "when", "with_"),
        *("inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short"),
        *("groups", "group_names", "hostvars", "playbook_dir", "play_hosts", "role_name"),
        *("role_names", "role_path", "role_uuid"),
    }
)
ANSIBLE_RESERVED_PREFIX = "with_"
# Keys Ansible's JSON reader takes as markers (`__ansible_unsafe`, `__ansible_vault`): a
# parameter so named would turn the whole extra-vars file (`ansible_extra_vars`) into one value.
ANSIBLE_JSON_MARKER_PREFIX = "__ansible_"


def runtime_name(name: str) -> bool:
    """True when the runtime sets `name` itself (PATH, HOME, ..., the OPSCRAFT_ prefix)."""
    upper = name.upper()
    return upper in RUNTIME_NAMES or upper.startswith(RUNTIME_PREFIX)


def interpreted_name(name: str, script_type: str | None = None) -> str | None:
    """Why `name` cannot be a parameter (a program would interpret it), or None when it can.

    Compared in upper case, so `ansible_python_interpreter` is refused with `ANSIBLE_*`; the
    prefixes also after one leading underscore, which tools give their internal variables
    (ansible-core's `_ANSIBLE_CONNECTION_PATH` names the program to run, Python's sysconfig
    imports the module `_PYTHON_SYSCONFIGDATA_NAME` names); any name ending in `_PROXY` too. For an
    Ansible script (`script_type == "ansible"`), Ansible's reserved and magic variable names
    (`ANSIBLE_RESERVED`, and loop keywords `with_*`) are refused too, compared as written.
    """
    upper = name.upper()
    if runtime_name(name):
        return f"the runtime sets it (PATH, HOME, ... and the {RUNTIME_PREFIX} prefix)"
    if upper in INTERPRETED_NAMES:
        return INTERPRETED_NAMES[upper]
    bare = upper.removeprefix("_")  # `_ANSIBLE_CONNECTION_PATH`, `_PYTHON_SYSCONFIGDATA_NAME`
    for prefix, reason in INTERPRETED_PREFIXES.items():
        if bare.startswith(prefix):
            return reason
    if upper.endswith(PROXY_SUFFIX):
        return PROXY_REASON
    if script_type == "ansible" and (name in ANSIBLE_RESERVED or name.startswith(ANSIBLE_RESERVED_PREFIX)):
        return (
            "Ansible reserves it (a play keyword, a Jinja2 global or a magic variable such as "
            "omit, hostvars, groups, inventory_hostname, environment, vars)"
        )
    if script_type == "ansible" and name.startswith(ANSIBLE_JSON_MARKER_PREFIX):
        return "Ansible reads __ansible_unsafe and __ansible_vault in extra vars as markers, not names"
    return None


def env_names(name: str, script_type: str | None) -> set[str]:
    """The environment variable names under which parameter `name` reaches a run of `script_type`
    (and so could meet a secret's variable): its own name and, for Terraform, `TF_VAR_<name>`
    (how `commands` hands Terraform its variables)."""
    return {name, f"TF_VAR_{name}"} if script_type == "terraform" else {name}


def to_env(resolved: dict[str, Any]) -> dict[str, str]:
    """Environment variables for resolved values: booleans as "true"/"false", numbers via `str`."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in resolved.items()
    }


def ansible_extra_vars(resolved: dict[str, Any]) -> bytes:
    """An extra-vars file for `ansible-playbook -e @file`: JSON (which Ansible reads first, and
    YAML would too) where every string is `{"__ansible_unsafe": "..."}`.

    Ansible's JSON reader (`AnsibleJSONDecoder`; ansible-core 2.19's legacy profile) turns that
    object into the string, marked unsafe: it is handed to tasks literally instead of templated,
    and it stays a string. A YAML `!unsafe "1.10"` did not with ansible-core 2.19, which resolves
    a `!unsafe` scalar's type again from its text (`1.10` became the float 1.1, `no` false,
    `01234` the octal 668, `2026-01-01` a date). Integers, numbers and booleans keep their types.
    """
    data = {
        name: {"__ansible_unsafe": value} if isinstance(value, str) else value
        for name, value in resolved.items()
    }
    return json.dumps(data, ensure_ascii=False, allow_nan=False).encode()
