"""Syntax checks per script type, a lint for dangerous patterns, and the field's linters.

The lint is a safety net for honest mistakes, not a sandbox: it reads lines, so a determined
author can always hide a command from it. The container is the security boundary.
"""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from opscraft.db.models.scripts import ScriptType
from opscraft.execution import python_source, yaml_keys
from opscraft.services import line_endings, linters, password_variables, vault_files
from opscraft.services.line_endings import Notice
from opscraft.services.linters import LintReport

BASH_TIMEOUT_SECONDS = 10
EXCERPT_CHARS = 120
MAX_ARGS_CHARS = 500
CRITICAL_DIRS = r"(?:bin|boot|dev|etc|home|lib|lib32|lib64|media|mnt|opt|proc|root|run|sbin|srv|sys|usr|var)"
DISK_DEVICE = r"/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|md\d|dm-\d|mapper/|loop\d)"
COMMAND_START = r"(?:^|[;&|({`]\s*|\$\(\s*|\bsudo\s+(?:-\S+\s+)*|\bexec\s+)"
_QUOTES = "\"'`),;"
# The compiler's warnings about a user's script ('"is" with a literal') are the linters' job,
# not lines in the server's log.
PYTHON_FILENAME = "<opscraft-script>"
warnings.filterwarnings("ignore", category=SyntaxWarning, module=re.escape(PYTHON_FILENAME))


@dataclass(frozen=True)
class SyntaxProblem:
    """A syntax error at 1-based `line`: it refuses the save."""

    line: int
    message: str


@dataclass(frozen=True)
class Finding:
    """A dangerous pattern (`rule` is one of `RULES`) at 1-based `line`, with the line's text."""

    rule: str
    line: int
    excerpt: str
    message: str

    def as_dict(self) -> dict[str, object]:
        """The finding as a JSON object, as the API shows it."""
        return asdict(self)


@dataclass(frozen=True)
class Checks:
    """Everything a save checks, on the normalised `content` (see `line_endings`):

    - `notices`: what the normalisation changed;
    - `problems`: syntax errors, which refuse the save;
    - `findings`: dangerous patterns, which need an acknowledgement;
    - `lint`: the field's linters' findings (warnings) and which linters ran.
    """

    content: str
    notices: list[Notice]
    problems: list[SyntaxProblem]
    findings: list[Finding]
    lint: LintReport


# --- syntax -------------------------------------------------------------------------------


async def check(script_type: ScriptType, content: str) -> Checks:
    """Normalise line endings and a BOM, then run the syntax check, the dangerous-pattern lint
    and the linters concurrently; CPU-heavy parsing runs off the event loop."""
    content, notices = line_endings.normalize(content, script_type.value)
    problems, findings, report = await asyncio.gather(
        syntax_errors(script_type, content),
        asyncio.to_thread(lint, script_type, content),
        linters.run(script_type, content),
    )
    # What the syntax check refuses is said once, as the refusal: the linters' own readings of
    # a syntax error (ShellCheck's SC1xxx, ansible-playbook's) would repeat it as findings.
    if problems:
        report = report.without_parse_errors()
    # A linter's parse errors are syntax errors too (terraform's own parser), once per line.
    seen = {p.line for p in problems}
    problems += [SyntaxProblem(line, message) for line, message in report.syntax if line not in seen]
    return Checks(content, notices, sorted(problems, key=lambda p: p.line), findings, report)


def stored_problems(script_type: object, content: str, inventory: str | None) -> list[str]:
    """Why a run of an Ansible script as stored (`content`, its own `inventory`) fails before any
    task, said where its page shows the text: a key written twice in one mapping, in a text saved
    before saves refused that (`yaml_keys.stored_refusal`, the claim's own words). [] when
    nothing, and for other script types."""
    if script_type != ScriptType.ansible:
        return []
    return yaml_keys.run_refusals(content, inventory, shared=False)


async def syntax_errors(script_type: ScriptType, content: str) -> list[SyntaxProblem]:
    """Problems that stop the script from parsing, each with its line number."""
    if script_type is ScriptType.bash:
        return await _bash(content)
    check = {
        ScriptType.python: _python,
        ScriptType.ansible: _ansible,
        ScriptType.terraform: _terraform,
    }[script_type]
    # Parsing 256 KiB of HCL or YAML takes a while: keep it off the event loop.
    return await asyncio.to_thread(check, content)


async def _bash(content: str) -> list[SyntaxProblem]:
    bash = shutil.which("bash")
    if bash is None:
        return [SyntaxProblem(1, "bash is not installed on the server, so the syntax cannot be checked")]
    # A real file, not /dev/stdin: under uvloop the child's stdin is a socket bash cannot open.
    with tempfile.TemporaryDirectory(prefix="opscraft-check-") as folder:
        path = Path(folder) / "script.sh"
        path.write_text(content, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            bash,
            "--norc",
            "-n",
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        )
        try:
            async with asyncio.timeout(BASH_TIMEOUT_SECONDS):
                _, stderr = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return [SyntaxProblem(1, f"bash -n did not finish within {BASH_TIMEOUT_SECONDS} s")]
    if proc.returncode == 0:
        return []
    # bash prints "<file>: line N: message", then echoes the offending code in backquotes.
    problems = [
        SyntaxProblem(int(match.group(1)), match.group(2))
        for match in re.finditer(r"^.*?script\.sh: line (\d+): (.*)$", stderr.decode(errors="replace"), re.M)
        if not match.group(2).startswith("`")
    ]
    return problems or [SyntaxProblem(1, "bash -n reported a syntax error")]


def _python(content: str) -> list[SyntaxProblem]:
    # compile, not ast.parse: it also refuses what only the compiler checks ('return' outside a
    # function, 'break' outside a loop, nonlocal at module level). It never runs the code. The
    # bytes a run's file holds, so an encoding line (PEP 263) is read as the run reads it.
    try:
        compile(python_source.encoded(content), PYTHON_FILENAME, "exec", dont_inherit=True)
    except python_source.SourceError as exc:
        return [SyntaxProblem(exc.line, exc.message)]
    except SyntaxError as exc:
        return [SyntaxProblem(exc.lineno or 1, exc.msg)]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [SyntaxProblem(1, f"cannot be parsed: {type(exc).__name__}")]
    return []


def _ansible(content: str) -> list[SyntaxProblem]:
    if vault_files.whole_file(content):
        return [SyntaxProblem(1, vault_files.problem("playbook"))]
    try:
        root = yaml.compose(content, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return [SyntaxProblem(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return [SyntaxProblem(1, f"invalid YAML: {type(exc).__name__}")]
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        line = root.start_mark.line + 1 if root is not None else 1
        return [SyntaxProblem(line, "a playbook must be a non-empty YAML list of plays")]
    problems = []
    for play in root.value:
        line = play.start_mark.line + 1
        if not isinstance(play, yaml.MappingNode):
            problems.append(SyntaxProblem(line, "each play must be a mapping with at least 'hosts'"))
            continue
        keys = {key.value for key, _ in play.value if isinstance(key, yaml.ScalarNode)}
        if not keys & {"hosts", "import_playbook", "ansible.builtin.import_playbook"}:
            problems.append(SyntaxProblem(line, "play has no 'hosts' (or 'import_playbook')"))
    problems += [SyntaxProblem(line, message) for line, message in password_variables.in_playbook(root)]
    problems += [SyntaxProblem(line, message) for line, message in yaml_keys.repeated(root)]
    return problems


@functools.lru_cache(maxsize=4)
def hcl_document(content: str) -> dict[str, Any]:
    """The Terraform configuration `content` as python-hcl2 reads it (blocks as lists of dicts;
    treat it as read-only: it is shared), parsed once for the syntax check and the checks of a
    save that read it after (`terraform_variables`; 320 lines take about 30 ms). Raises lark's
    errors, ValueError or RecursionError for text that is no HCL (never cached)."""
    import hcl2  # here, not at import: its grammar loads slowly and start-up does not need it

    return hcl2.loads(content)


def _terraform(content: str) -> list[SyntaxProblem]:
    import lark

    try:
        hcl_document(content)
    except lark.exceptions.UnexpectedEOF:
        return [SyntaxProblem(content.count("\n") + 1, "invalid HCL: unexpected end of file")]
    except lark.exceptions.UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        what = "end of file" if token is not None and token.type == "$END" else "input"
        return [SyntaxProblem(exc.line or 1, f"invalid HCL: unexpected {what} at column {exc.column}")]
    except (lark.exceptions.LarkError, ValueError, RecursionError) as exc:
        return [SyntaxProblem(1, f"invalid HCL: {type(exc).__name__}")]
    return []


# --- dangerous-pattern lint ---------------------------------------------------------------


def _unquote(token: str) -> str:
    return token.replace('"', "").replace("'", "").strip(_QUOTES)


def _is_critical_path(token: str) -> bool:
    path = _unquote(token)
    if path in {"/", "/*", "/.", "~", "~/", "~/*", "$HOME", "${HOME}", "$HOME/", "${HOME}/", "$HOME/*"}:
        return True
    bare = path.rstrip("*").rstrip("/")
    return re.fullmatch(f"/{CRITICAL_DIRS}", bare) is not None


def _empty_var_root(token: str) -> bool:
    """`$DIR/` or `$DIR/*`: becomes `/` when DIR is empty (use `${DIR:?}`)."""
    return re.fullmatch(r"\$\{?\w+\}?/\*?", _unquote(token)) is not None


def _command_args(line: str, command: str) -> list[list[str]]:
    """The argument lists of each `command` invocation on the line (rough, quote-tolerant)."""
    pattern = rf"(?:^|[\s;&|(`\"'=])(?:/usr)?(?:/s?bin/)?{command}\s+([^;&|)`\n]{{0,{MAX_ARGS_CHARS}}})"
    return [[t.strip(_QUOTES) for t in m.group(1).split()] for m in re.finditer(pattern, line)]


def _recursive(args: list[str]) -> bool:
    return any(
        a in ("--recursive", "-R") or (a.startswith("-") and not a.startswith("--") and "r" in a.lower())
        for a in args
    )


def _rm_root(line: str) -> bool:
    for args in _command_args(line, "rm"):
        if "--no-preserve-root" in args:
            return True
        targets = [a for a in args if not a.startswith("-")]
        if _recursive(args) and any(_is_critical_path(t) for t in targets):
            return True
    return False


def _rm_empty_var(line: str) -> bool:
    return any(
        _recursive(args) and any(_empty_var_root(a) for a in args) for args in _command_args(line, "rm")
    )


def _chmod_root(line: str) -> bool:
    return any(
        _recursive(args) and any(_is_critical_path(a) for a in args if not a.startswith("-"))
        for command in ("chmod", "chown", "chgrp")
        for args in _command_args(line, command)
    )


def _run_after(start: str, chars: str) -> str:
    """A pattern: `start`, then a run of `chars` that passes no other `start` (a match is read
    from the last `start` before what follows it: the same lines match). Unbounded, a run read
    from every `start` of a long line to its end: a 64 KiB line of `dd ` took a minute to lint."""
    return rf"{start}(?:(?!{start}){chars})*"


def _regex(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda line: compiled.search(line) is not None


@dataclass(frozen=True)
class Rule:
    """One dangerous-pattern rule: its id, the message shown, and the predicate applied to each line."""

    id: str
    message: str
    matches: Callable[[str], bool]


# One command's characters: not a line's end nor what ends a command (`;`, `|`, `&`).
_IN_COMMAND = r"[^\n;|&]"
# A download command and the rest of its pipeline up to the last `|` (the `pipe-to-shell` rule).
_DOWNLOAD = _run_after(r"\b(?:curl|wget)\b", r"[^\n;&]")
_DD = _run_after(r"\bdd\b", _IN_COMMAND)
_COPY = _run_after(r"\b(?:tee|cp|cat|shred)\b", _IN_COMMAND)
_IPTABLES = _run_after(rf"{COMMAND_START}ip6?tables\b", _IN_COMMAND)

RULES: tuple[Rule, ...] = (
    Rule("rm-rf-root", "recursive delete of / , $HOME or a system directory", _rm_root),
    Rule(
        "rm-rf-empty-var",
        "recursive delete of $VAR/: if VAR is empty this deletes / (use ${VAR:?})",
        _rm_empty_var,
    ),
    Rule(
        "python-rmtree-root",
        "shutil.rmtree of / , ~ or a system directory",
        _regex(rf"shutil\.rmtree\(\s*[\"'](?:/|~/?|/{CRITICAL_DIRS}/?)[\"']\s*[,)]"),
    ),
    Rule("dd-to-device", "dd writing to a disk device", _regex(rf"{_DD}\bof={DISK_DEVICE}")),
    Rule(
        "raw-device-write",
        "output redirected or copied onto a disk device",
        _regex(rf"(?:>\s*|{_COPY}\s){DISK_DEVICE}"),
    ),
    Rule(
        "make-filesystem",
        "creates or wipes a filesystem (mkfs, mke2fs, wipefs)",
        _regex(rf"(?:{COMMAND_START}|[\"'])(?:mkfs(?:\.\w+)?|mke2fs|mkswap|wipefs)\b"),
    ),
    Rule(
        "fork-bomb",
        "fork bomb: a function that spawns itself twice in the background",
        _regex(
            r"(?<![\w:.-])([\w:.-]{1,64})\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}|while\s+(?:True|1)\s*:\s*os\.fork\(\)"
        ),
    ),
    Rule(
        "pipe-to-shell",
        "downloads code and runs it unseen (curl | sh, wget | bash, sh <(curl ...))",
        _regex(
            rf"{_DOWNLOAD}\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?(?:ba|da|z|k|fi)?sh\b"
            rf"|{_DOWNLOAD}\|\s*(?:sudo\s+)?(?:python[\d.]*|perl|ruby)\b"
            r"|\b(?:ba|da|z|k)?sh\s+(?:-c\s+)?[\"']?(?:<\(|\$\()\s*(?:curl|wget)\b"
        ),
    ),
    Rule(
        "chmod-recursive-root",
        "recursive chmod/chown of / or a system directory",
        _chmod_root,
    ),
    Rule(
        "system-shutdown",
        "shuts down or reboots the machine",
        _regex(rf"{COMMAND_START}(?:shutdown|reboot|halt|poweroff)\b|{COMMAND_START}init\s+[06]\b"),
    ),
    Rule(
        "firewall-flush",
        "flushes every firewall rule",
        _regex(rf"{_IPTABLES}\s(?:-F|--flush)\b|{COMMAND_START}nft\s+flush\s+ruleset\b"),
    ),
)


def _is_comment(line: str, script_type: ScriptType) -> bool:
    text = line.lstrip()
    if text.startswith("#"):
        return True
    return script_type is ScriptType.terraform and text.startswith("//")


def lint(script_type: ScriptType, content: str) -> list[Finding]:
    """Dangerous patterns, one finding per rule per line; comment lines are ignored."""
    findings = []
    # Lines end at "\n" only, as in the editor and the tools (splitlines would also split at
    # form feeds and Unicode separators, and shift every later line number).
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip() or _is_comment(line, script_type):
            continue
        excerpt = line.strip()[:EXCERPT_CHARS]
        findings.extend(
            Finding(rule.id, number, excerpt, rule.message) for rule in RULES if rule.matches(line)
        )
    return findings
