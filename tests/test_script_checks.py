"""Syntax checks (real bash, compile, PyYAML, python-hcl2), every lint rule, each both ways, line
endings and byte order marks, and the real linters (ShellCheck, ruff, ansible-playbook, terraform)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from opscraft.config import load_settings
from opscraft.db.models.scripts import ScriptType
from opscraft.services import line_endings, linters
from opscraft.services.script_checks import RULES, check, lint, syntax_errors
from tests.conftest import require_service
from tests.linear_time import assert_linear

pytestmark = pytest.mark.usefixtures("patient_linters")

GOOD = {
    ScriptType.bash: '#!/bin/bash\nset -euo pipefail\nfor i in 1 2; do echo "$i"; done\n',
    ScriptType.python: "import os\n\n\ndef main() -> None:\n    print(os.getcwd())\n",
    ScriptType.ansible: "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n",
    ScriptType.terraform: 'variable "region" {\n  default = "eu"\n}\n\n'
    'output "r" {\n  value = var.region\n}\n',
}

BAD = [
    (ScriptType.bash, "echo ok\nif true; then\n  echo x\n", 4, "unexpected end of file"),
    (ScriptType.bash, "echo ok\nfi\n", 2, "unexpected token"),
    (ScriptType.python, "x = 1\nprint(x\n", 2, "was never closed"),
    (ScriptType.python, "def f():\nreturn 1\n", 2, "indented block"),
    (ScriptType.ansible, "- hosts: all\n  tasks: [\n", 3, "invalid YAML"),
    (ScriptType.ansible, "hosts: all\ntasks: []\n", 1, "list of plays"),
    (ScriptType.ansible, "- hosts: all\n- just a string\n", 2, "must be a mapping"),
    (ScriptType.ansible, "- name: no hosts\n  tasks: []\n", 1, "no 'hosts'"),
    (ScriptType.ansible, "[]\n", 1, "non-empty"),
    # Ansible keeps the last `hosts`: the play ran on all hosts, its top line says webs.
    (ScriptType.ansible, "- hosts: webs\n  tasks: []\n  hosts: all\n", 3, "'hosts' is written twice"),
    (ScriptType.ansible, "- hosts: all\n  vars: {port: 80, port: 8080}\n", 2, "'port' is written twice"),
    (ScriptType.terraform, 'resource "a" "b" {\n  x = \n}\n', 2, "invalid HCL"),
    (ScriptType.terraform, 'variable "x" {\n  default = 1\n', 3, "end of file"),
]


@pytest.mark.parametrize("script_type", list(ScriptType))
async def test_valid_content_passes(script_type: ScriptType) -> None:
    assert await syntax_errors(script_type, GOOD[script_type]) == []


async def test_a_key_a_yaml_merge_brings_in_may_be_overridden_in_a_playbook() -> None:
    """`<<: *base` then `a: 2` is YAML's way to override a merged key, not a key written twice:
    accepted (Ansible's DUPLICATE_YAML_DICT_KEY=error would refuse it, hence no such setting)."""
    playbook = (
        "- hosts: all\n  vars:\n    base: &base\n      a: 1\n      b: 2\n"
        "    over:\n      <<: *base\n      a: 3\n  tasks: []\n"
    )
    assert await syntax_errors(ScriptType.ansible, playbook) == []


@pytest.mark.parametrize(("script_type", "content", "line", "text"), BAD)
async def test_syntax_errors_carry_line_numbers(
    script_type: ScriptType, content: str, line: int, text: str
) -> None:
    problems = await syntax_errors(script_type, content)
    assert problems, "expected a syntax error"
    assert problems[0].line == line
    assert text in problems[0].message


async def test_bash_check_does_not_execute_the_script(tmp_path) -> None:
    marker = tmp_path / "ran"
    assert await syntax_errors(ScriptType.bash, f"touch {marker}\n") == []
    assert not marker.exists()


# rule -> (lines it must flag, lines it must leave alone)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "rm-rf-root": (
        [
            "rm -rf /",
            "sudo rm -fr /*",
            "rm -r -f /etc/",
            "rm --recursive --force ~",
            "rm -rf --no-preserve-root x",
            'os.system("rm -rf /usr")',
            "/bin/rm -Rf $HOME",
        ],
        ["rm -rf ./build", "rm -rf /tmp/cache", "rm -f /etc/motd", "rm -rf /var/lib/app/tmp", "echo rm -rf"],
    ),
    "rm-rf-empty-var": (
        ['rm -rf "$BUILD_DIR/"*', "rm -rf ${TARGET}/"],
        ['rm -rf "${BUILD_DIR:?}/"*', 'rm -rf "$BUILD_DIR/out"'],
    ),
    "python-rmtree-root": (
        ['shutil.rmtree("/")', "shutil.rmtree('/etc')", 'shutil.rmtree("~/")'],
        ['shutil.rmtree("/tmp/work")', "shutil.rmtree(path)"],
    ),
    "dd-to-device": (
        [
            "dd if=/dev/zero of=/dev/sda bs=1M",
            "dd if=image.iso of=/dev/nvme0n1",
            "sudo dd of=/dev/mmcblk0 if=x",
        ],
        ["dd if=/dev/zero of=disk.img bs=1M count=10", "dd if=/dev/urandom of=/tmp/key count=1"],
    ),
    "raw-device-write": (
        ["cat image > /dev/sda", "echo x >/dev/vdb", "shred -n 1 /dev/sdb", "tee /dev/xvda < img"],
        ["echo done > /dev/null", "cat /dev/urandom | head -c 4 > out", "echo x >&2"],
    ),
    "make-filesystem": (
        ["mkfs.ext4 /dev/sdb1", "sudo mkfs -t xfs /dev/vdb", "wipefs -a /dev/sdc", "mke2fs /dev/sdd"],
        ["echo 'run mkfs later'", "ls /sbin/mkfs.ext4-helper"],
    ),
    "fork-bomb": (
        [":(){ :|:& };:", "bomb() { bomb | bomb & }; bomb", "while True: os.fork()"],
        ["f() { echo hi; }", "pid = os.fork()"],
    ),
    "pipe-to-shell": (
        [
            "curl -fsSL https://get.example.com | sh",
            "wget -qO- http://x/i.sh | sudo bash",
            "curl -s http://x | python3",
            "bash <(curl -s http://x)",
            'sh -c "$(curl -fsSL http://x)"',
        ],
        ["curl -fsSL -o install.sh https://x", "wget http://x/file.tgz", "curl -s http://x | jq .name"],
    ),
    "chmod-recursive-root": (
        ["chmod -R 777 /", "chown -R nobody /usr", "sudo chmod --recursive 700 /etc"],
        ["chmod 777 /tmp/x", "chmod -R 755 ./dist", "chown -R app /srv/app"],
    ),
    "system-shutdown": (
        ["shutdown -h now", "sudo reboot", "poweroff", "init 0", "make && halt"],
        ["echo 'reboot required'", "systemctl status reboot-notifier", "# shutdown"],
    ),
    "firewall-flush": (
        ["iptables -F", "sudo iptables -t nat --flush", "nft flush ruleset"],
        ["iptables -L", "iptables -A INPUT -p tcp --dport 22 -j ACCEPT"],
    ),
}


def test_every_rule_has_cases() -> None:
    assert {rule.id for rule in RULES} == set(CASES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_flags_dangerous_lines(rule: str) -> None:
    for line in CASES[rule][0]:
        assert rule in {f.rule for f in lint(ScriptType.bash, line)}, line


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_leaves_harmless_lines_alone(rule: str) -> None:
    for line in CASES[rule][1]:
        assert rule not in {f.rule for f in lint(ScriptType.bash, line)}, line


def test_findings_carry_line_and_excerpt_and_skip_comments() -> None:
    content = "#!/bin/bash\n# rm -rf / would be bad\necho ok\n    rm -rf /   \n"
    findings = lint(ScriptType.bash, content)
    assert [(f.rule, f.line, f.excerpt) for f in findings] == [("rm-rf-root", 4, "rm -rf /")]
    assert lint(ScriptType.terraform, '// rm -rf /\nx = "y"\n') == []


def test_lint_reads_embedded_commands_in_every_type() -> None:
    playbook = "- hosts: all\n  tasks:\n    - shell: curl -s http://x | bash\n"
    assert [f.line for f in lint(ScriptType.ansible, playbook)] == [3]
    assert (
        lint(ScriptType.python, 'subprocess.run("mkfs.ext4 /dev/sdb", shell=True)\n')[0].rule
        == "make-filesystem"
    )


def test_lint_is_fast_on_a_huge_single_line() -> None:
    # 256 KiB without a newline must not make the regexes backtrack for minutes.
    assert lint(ScriptType.bash, "a" * 256 * 1024) == []
    assert lint(ScriptType.bash, ("rm " * 80_000)) == []


def test_bash_check_works_under_uvloop() -> None:
    """The server runs on uvloop, whose subprocess pipes are sockets (no /dev/stdin for bash)."""
    uvloop = pytest.importorskip("uvloop")
    assert uvloop.run(syntax_errors(ScriptType.bash, GOOD[ScriptType.bash])) == []
    assert uvloop.run(syntax_errors(ScriptType.bash, "echo ok\nfi\n"))[0].line == 2
    report = uvloop.run(linters.run(ScriptType.bash, "echo $1 under uvloop\n"))
    assert _ran(report) == {"shellcheck": "ran"} and report.findings[0].rule == "SC2086"


# --- line endings and byte order marks (scripts edited on Windows) ------------------------

NORMALIZE = [
    # (input, stored, notice codes)
    ('echo one\r\nX=5\r\necho "x is $X."\r\n', 'echo one\nX=5\necho "x is $X."\n', ["crlf-line-endings"]),
    ("a\rb\rc", "a\nb\nc", ["cr-line-endings"]),
    ("a\r\nb\rc\nd\r\n", "a\nb\nc\nd\n", ["crlf-line-endings", "cr-line-endings"]),
    ("\ufeff#!/bin/bash\necho hi\n", "#!/bin/bash\necho hi\n", ["byte-order-mark"]),
    ("\ufeff\ufeffx\r\n", "x\n", ["byte-order-mark", "crlf-line-endings"]),
    ("\u00ef\u00bb\u00bf#!/bin/bash\n", "#!/bin/bash\n", ["byte-order-mark"]),
    ("echo hi\n", "echo hi\n", []),
    ("x = 'a\ufeffb'\n", "x = 'a\ufeffb'\n", []),
]


@pytest.mark.parametrize(("raw", "stored", "codes"), NORMALIZE)
def test_normalize_line_endings_and_bom(raw: str, stored: str, codes: list[str]) -> None:
    content, notices = line_endings.normalize(raw)
    assert content == stored
    assert [n.code for n in notices] == codes
    assert all(n.message for n in notices)


def test_notices_count_the_line_endings() -> None:
    _, notices = line_endings.normalize("a\r\nb\r\nc\rd")
    assert "2 Windows line endings" in notices[0].message
    assert "1 carriage return " in notices[1].message


WINDOWS = {
    ScriptType.bash: "\ufeff#!/bin/bash\r\nif true; then\r\n  echo yes\r\nfi\r\n",
    ScriptType.python: "\ufeffimport sys\r\nif True:\r\n    print(sys.argv)\r\n",
    ScriptType.ansible: "\ufeff- hosts: localhost\r\n  gather_facts: false\r\n  tasks:\r\n    - ping:\r\n",
    ScriptType.terraform: '\ufeffvariable "x" {\r\n  default = 1\r\n}\r\n',
}


@pytest.mark.parametrize("script_type", list(ScriptType))
async def test_windows_edited_content_checks_clean_in_every_type(script_type: ScriptType) -> None:
    checks = await check(script_type, WINDOWS[script_type])
    assert checks.problems == []
    assert "\r" not in checks.content and not checks.content.startswith("\ufeff")
    assert [n.code for n in checks.notices] == ["byte-order-mark", "crlf-line-endings"]
    # No linter complains about what was normalised away (ShellCheck's SC1017 / SC1082).
    assert {f.rule for f in checks.lint.findings} & {"SC1017", "SC1082"} == set()


async def test_old_mac_line_endings_keep_line_numbers() -> None:
    checks = await check(ScriptType.bash, "echo ok\rif true; then\r  echo x\r")
    assert [n.code for n in checks.notices] == ["cr-line-endings"]
    assert checks.problems[0].line == 4 and "end of file" in checks.problems[0].message


def test_lint_numbers_lines_like_the_editor() -> None:
    """A form feed or a Unicode line separator does not end a line in bash or the editor."""
    content = "echo '\x0c'\necho '\u2028'\nrm -rf /\n"
    assert [f.line for f in lint(ScriptType.bash, content)] == [3]


async def test_python_compile_errors_are_syntax_errors() -> None:
    problems = await syntax_errors(ScriptType.python, "x = 1\nreturn x\n")
    assert problems[0].line == 2 and "outside function" in problems[0].message


# --- the field's linters ------------------------------------------------------------------


def _ran(report: linters.LintReport) -> dict[str, str]:
    return {run.tool: run.status for run in report.linters}


async def test_shellcheck_findings_have_line_column_and_code() -> None:
    report = await linters.run(ScriptType.bash, '#!/bin/bash\necho $1\nunused=2\necho "$PARAM $param"\n')
    assert _ran(report) == {"shellcheck": "ran"}
    found = {(f.rule, f.line, f.column, f.severity) for f in report.findings}
    assert ("SC2086", 2, 6, "info") in found
    assert ("SC2034", 3, 1, "warning") in found
    # Parameters and secrets are environment variables: never "referenced but not assigned".
    assert not any(f.rule == "SC2154" for f in report.findings)


async def test_ruff_findings_have_line_column_and_code() -> None:
    report = await linters.run(ScriptType.python, "import os\n\nprint(undefined_name)\n")
    assert _ran(report) == {"ruff": "ran"}
    assert [(f.rule, f.line, f.column) for f in report.findings] == [("F401", 1, 8), ("F821", 3, 7)]
    assert all(f.tool == "ruff" and f.severity == "warning" for f in report.findings)


async def test_a_python_syntax_error_is_the_syntax_checks_not_a_ruff_warning() -> None:
    """ruff's own findings of a syntax error (code `invalid-syntax`) were listed as warnings
    under the syntax check's error that refuses the save: one refusal, said once, as an error."""
    checks = await check(ScriptType.python, "import os\n\tdef f(:\n  pass\n")
    assert [p.line for p in checks.problems] == [2]
    assert _ran(checks.lint) == {"ruff": "ran"}
    assert [(f.rule, f.line) for f in checks.lint.findings] == []


@pytest.mark.parametrize(
    ("script_type", "content", "tool"),
    [
        (ScriptType.bash, "if true; then\n  echo hi\n", "shellcheck"),
        (ScriptType.bash, "echo $((\n", "shellcheck"),
        (ScriptType.ansible, "- name: no hosts\n  tasks:\n    - command: echo hi\n", "ansible-playbook"),
    ],
)
async def test_a_refused_syntax_error_is_not_repeated_as_linter_findings(
    script_type: ScriptType, content: str, tool: str
) -> None:
    """ShellCheck's parser findings (SC1xxx, severity error) and ansible-playbook's syntax
    check repeated the syntax error that refuses the save as linter findings under it."""
    checks = await check(script_type, content)
    assert checks.problems
    assert _ran(checks.lint) == {tool: "ran"}
    assert checks.lint.findings == []


async def test_terraform_validate_on_a_configuration_that_does_not_parse_says_so() -> None:
    """init refuses what does not parse: the skip said "needs providers", which it did not."""
    checks = await check(ScriptType.terraform, 'resource "x" "y" {\n  a = \n}\n')
    assert [p.line for p in checks.problems] == [2]
    runs = {run.tool: run for run in checks.lint.linters}
    assert runs["terraform validate"].status == "skipped"
    assert "does not parse" in runs["terraform validate"].detail
    assert checks.lint.findings == []


async def test_shellchecks_parse_findings_stay_where_bash_accepts_the_script() -> None:
    """`[$x = 1]` parses for bash (a command named `[$x`) but is a bug ShellCheck's parser names."""
    checks = await check(ScriptType.bash, "x=1\nif [$x = 1]; then echo yes; fi\n")
    assert checks.problems == []
    assert "SC1035" in {f.rule for f in checks.lint.findings}


async def test_ansible_syntax_check_reports_an_unknown_module() -> None:
    good = await linters.run(ScriptType.ansible, "- hosts: localhost\n  tasks:\n    - command: echo hi\n")
    assert _ran(good) == {"ansible-playbook": "ran"} and good.findings == []
    bad = await linters.run(ScriptType.ansible, "- hosts: localhost\n  tasks:\n    - no_such_module_x: a=b\n")
    assert [(f.rule, f.line, f.severity) for f in bad.findings] == [("syntax-check", 3, "error")]
    assert "no_such_module_x" in bad.findings[0].message


OTHER_DELIMITERS = "#jinja2:variable_start_string:'[[', variable_end_string:']]'\\n"
"""A Jinja override header, as a YAML double-quoted string writes it (its line break as `\\n`)."""
PIPE = "[[ lookup('pipe', 'touch MARKER') ]]"


@pytest.mark.parametrize(
    "playbook",
    [
        "- import_playbook: \"{{ lookup('pipe', 'touch MARKER') }}.yml\"\n",
        "- hosts: localhost\n  tasks:\n    - import_tasks: \"{{ lookup('pipe', 'touch MARKER') }}x.yml\"\n",
        # YAML escapes make the same braces: the check reads values, not text.
        "- import_playbook: \"\\x7b\\x7b lookup('pipe', 'touch MARKER') }}.yml\"\n",
        "- hosts: localhost\n  tasks:\n    - import_tasks: /etc/passwd\n",
        "- hosts: localhost\n  vars_files: [/etc/shadow]\n  tasks: []\n",
        # The module named as the value of `action` / `local_action`, in both of their forms.
        "- hosts: localhost\n  tasks:\n    - action: import_tasks /etc/passwd\n",
        "- hosts: localhost\n  tasks:\n    - local_action: ansible.builtin.import_tasks /etc/passwd\n",
        "- hosts: localhost\n  tasks:\n    - action: {module: import_tasks, file: /etc/passwd}\n",
        "- hosts: localhost\n  tasks:\n    - action: import_role name=/etc tasks_from=passwd\n",
        # A `#jinja2:` header sets other delimiters: ansible-core 2.19 takes any string starting
        # with it for a template, and templated a play's name and hosts while checking.
        f'- name: "{OTHER_DELIMITERS}{PIPE}"\n  hosts: localhost\n  tasks: []\n',
        f'- hosts: "{OTHER_DELIMITERS}{PIPE}"\n  tasks: []\n',
        f'- hosts: "\\x23jinja2:{OTHER_DELIMITERS[8:]}{PIPE}"\n  tasks: []\n',
    ],
)
async def test_ansible_check_never_evaluates_or_reads_on_the_server(playbook: str, tmp_path) -> None:
    marker = tmp_path / "ran"
    report = await linters.run(ScriptType.ansible, playbook.replace("MARKER", str(marker)))
    assert not marker.exists()
    assert _ran(report) == {"ansible-playbook": "skipped"}
    assert not any("root:" in f.message for f in report.findings)


def _terraform() -> None:
    if linters.find_tool("terraform") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("terraform is required when CI=true")
        require_service(False, "Terraform (tests/run provides one)")


async def test_terraform_fmt_and_validate() -> None:
    _terraform()
    content = (
        'variable "x" {\n  default = 1\n}\n'
        'output "y" {\n  value   = var.x\n}\n'
        'output "z" {\n  value = var.nope\n}\n'
    )
    report = await linters.run(ScriptType.terraform, content)
    assert _ran(report) == {"terraform fmt": "ran", "terraform validate": "ran"}
    found = [(f.rule, f.line, f.column, f.severity) for f in report.findings]
    assert ("fmt", 5, None, "style") in found
    assert ("validate", 8, 11, "error") in found
    assert "undeclared input variable" in next(f.message for f in report.findings if f.rule == "validate")


async def test_terraform_parse_errors_are_syntax_errors() -> None:
    _terraform()
    checks = await check(ScriptType.terraform, 'output "x" {\n  value = 1\n}\nlocals {\n  y = [1,\n}\n')
    assert checks.problems and checks.problems[0].line in (5, 6)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('resource "aws_instance" "x" {\n  ami = "a"\n}\n', "providers"),
        ('output "x" {\n  value = file("/etc/passwd")\n}\n', "file function"),
        ('module "m" {\n  source = "../../etc"\n}\n', "modules"),
    ],
)
async def test_terraform_validate_never_downloads_or_reads_server_files(content: str, reason: str) -> None:
    _terraform()
    report = await linters.run(ScriptType.terraform, content)
    validate = next(run for run in report.linters if run.tool == "terraform validate")
    assert validate.status == "skipped" and reason in validate.detail


async def test_a_missing_linter_is_reported_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linters, "find_tool", lambda name: None)
    monkeypatch.setattr(linters, "_cache", type(linters._cache)())
    checks = await check(ScriptType.python, "import os\n")
    assert checks.problems == [] and checks.lint.findings == []
    assert [(r.tool, r.status) for r in checks.lint.linters] == [("ruff", "missing")]


async def test_a_slow_linter_times_out_and_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linters, "TIMEOUT_SECONDS", 0.0001)
    content = f"print({os.getpid()!r}, 'timeout test')\n"
    report = await linters.run(ScriptType.python, content)
    assert [(r.tool, r.status) for r in report.linters] == [("ruff", "timeout")]
    monkeypatch.setattr(linters, "TIMEOUT_SECONDS", 30.0)
    assert _ran(await linters.run(ScriptType.python, content)) == {"ruff": "ran"}


async def test_linters_get_none_of_the_servers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCRAFT_MASTER_KEY", "must-not-leak")
    result = await linters._exec(["/usr/bin/env"], Path(tempfile.gettempdir()))
    assert "must-not-leak" not in result.stdout and "HOME=" in result.stdout


# Lines of the largest script (OPSCRAFT_MAX_SCRIPT_BYTES, 256 KiB by default) shaped against the
# patterns that read one: a rule's run read from every start of a long line to its end (a 64 KiB
# line of `dd ` took a minute to lint), `^\s*module` every blank line after each line start.
SCRIPT_CHARS = load_settings().max_script_bytes
SCRIPT_SHAPES = {
    "dd": "dd " * (SCRIPT_CHARS // 3),
    "cat": "cat " * (SCRIPT_CHARS // 4),
    "curl": "curl " * (SCRIPT_CHARS // 5),
    "a subshell's iptables": "(iptables " * (SCRIPT_CHARS // 10),
    "sudo iptables": "sudo iptables " * (SCRIPT_CHARS // 14),
}


@pytest.mark.parametrize("shape", list(SCRIPT_SHAPES))
def test_a_largest_line_of_any_shape_is_linted_in_linear_time(shape: str) -> None:
    assert_linear(lambda text: lint(ScriptType.bash, text), SCRIPT_SHAPES[shape])


def test_a_largest_script_of_blank_lines_is_searched_for_modules_in_linear_time() -> None:
    assert_linear(linters.TERRAFORM_MODULE.search, "\n" * SCRIPT_CHARS, "x\n" * (SCRIPT_CHARS // 2))


# Terraform's error output as far as a linter reads it (`linters.MAX_OUTPUT_BYTES`, 1 MiB).
ERROR_SHAPES = {
    "errors": "Error: " * (linters.MAX_OUTPUT_BYTES // 7),
    "blank lines after an error": "Error: a\n" + "\n" * linters.MAX_OUTPUT_BYTES,
}


@pytest.mark.parametrize("shape", list(ERROR_SHAPES))
def test_a_largest_terraform_error_output_of_any_shape_is_read_in_linear_time(shape: str) -> None:
    assert_linear(linters.TF_ERROR.findall, ERROR_SHAPES[shape])


@pytest.mark.parametrize(
    "line",
    [
        "dd if=x.img dd of=/dev/sda",
        "cat a cat.txt /dev/sda",
        "curl -s https://x | curl -s https://y | sudo -E bash",
        "wget -O- https://x | python3",
        "sudo iptables -L iptables x -F",
        "(iptables -t nat -F)",
    ],
)
def test_a_rule_reads_its_command_from_the_last_start_before_what_it_looks_for(line: str) -> None:
    assert lint(ScriptType.bash, line), line
