"""Syntax checks (real bash, ast, PyYAML, python-hcl2) and every lint rule, each both ways."""

from __future__ import annotations

import pytest

from opscraft.db.models.scripts import ScriptType
from opscraft.services.script_checks import RULES, lint, syntax_errors

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
    (ScriptType.terraform, 'resource "a" "b" {\n  x = \n}\n', 2, "invalid HCL"),
    (ScriptType.terraform, 'variable "x" {\n  default = 1\n', 3, "end of file"),
]


@pytest.mark.parametrize("script_type", list(ScriptType))
async def test_valid_content_passes(script_type: ScriptType) -> None:
    assert await syntax_errors(script_type, GOOD[script_type]) == []


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
