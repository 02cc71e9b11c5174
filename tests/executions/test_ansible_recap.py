"""The per-host summary read from real `ansible-playbook` output (tests/executions/ansible_recaps):
which PLAY RECAP counts, and what a run without one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from opscraft.execution import ansible_options, ansible_recap
from opscraft.execution.ansible_recap import HostCounts
from tests.linear_time import assert_linear

RECAPS = Path(__file__).parent / "ansible_recaps"


def _text(name: str) -> str:
    return (RECAPS / name).read_text(encoding="utf-8")


MULTI_PLAY = [  # the recap of multi_play_color.txt, summed over its two plays
    HostCounts("db1", ok=5, changed=1, unreachable=0, failed=0, skipped=3, rescued=0, ignored=0),
    HostCounts("dead", ok=0, changed=0, unreachable=1, failed=0, skipped=0, rescued=0, ignored=0),
    HostCounts("fe80::1", ok=5, changed=0, unreachable=0, failed=0, skipped=3, rescued=1, ignored=0),
    HostCounts(
        "web-01.example.com", ok=3, changed=0, unreachable=0, failed=1, skipped=3, rescued=0, ignored=0
    ),
    HostCounts("主机-1", ok=5, changed=0, unreachable=0, failed=0, skipped=3, rescued=0, ignored=1),
]


def test_a_coloured_recap_of_several_plays_gives_every_count_of_every_host() -> None:
    text = _text("multi_play_color.txt")
    assert "\x1b[" in text and "fake : ok=9" in text  # coloured, and a task printed a forged recap
    recap = ansible_recap.read(text)
    assert recap.note is None
    assert recap.hosts == MULTI_PLAY
    assert ansible_recap.failed_hosts(text) == (
        "a task failed on web-01.example.com; unreachable: dead (2 of 5 hosts)"
    )


def test_check_mode_with_custom_stats_and_the_dry_run_banner_after_the_recap() -> None:
    """CUSTOM STATS (whose data holds a forged recap, on one tab-indented line) and DRY RUN
    follow the recap: what ansible-playbook prints after it, so it still counts."""
    text = _text("check_diff_stats.txt")
    assert text.rstrip().endswith("*") and "DRY RUN" in text and "CUSTOM STATS" in text
    recap = ansible_recap.read(text)
    assert recap.note is None
    assert [h.host for h in recap.hosts] == [h.host for h in MULTI_PLAY]
    assert recap.hosts[0] == HostCounts("db1", 4, 0, 0, 0, 4, 0, 0)  # check mode: nothing changed


def test_a_run_killed_before_its_recap_has_none_and_says_so() -> None:
    text = _text("interrupted.txt")
    summary = ansible_recap.summary(text, ended=True, output_cut=False)
    assert summary == {
        "hosts": [],
        "host_count": 0,
        "totals": dict.fromkeys(ansible_recap.COUNTS, 0),
        "note": ansible_recap.NO_RECAP,
    }
    stopped = ansible_recap.summary(_text("multi_play_color.txt"), ended=False, output_cut=False)
    assert stopped["hosts"] == [] and stopped["note"] == ansible_recap.STOPPED
    cut = ansible_recap.summary(_text("multi_play_color.txt"), ended=True, output_cut=True)
    assert cut["hosts"] == [] and cut["note"] == ansible_recap.CUT


def test_a_recap_the_run_went_on_after_is_not_taken() -> None:
    """A task's raw output (the `minimal` callback prints it as is) forged a recap, and the run
    went on: not what ansible-playbook printed last."""
    text = _text("forged_then_more.txt")
    assert "forged : ok=9" in text
    assert ansible_recap.read(text) == ansible_recap.Recap([], ansible_recap.NOT_LAST)
    assert ansible_recap.failed_hosts(text) is None


def test_a_forged_recap_before_the_real_one_is_not_taken() -> None:
    forged = "PLAY RECAP ***\nzz : ok=0 changed=0 unreachable=0 failed=9 skipped=0 rescued=0 ignored=0\n\n"
    text = forged + _text("multi_play_color.txt")
    assert ansible_recap.read(text).hosts == MULTI_PLAY


def test_hosts_out_of_ansibles_order_or_twice_are_not_a_real_recap() -> None:
    line = "{} : ok=1 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n"
    for hosts in (["web", "db"], ["db", "db"]):
        text = "PLAY RECAP ****\n" + "".join(line.format(h) for h in hosts) + "\n"
        assert ansible_recap.read(text).note == ansible_recap.NOT_LAST


def test_thousands_of_hosts_are_capped_failed_ones_first_with_totals_over_all() -> None:
    """5,000 hosts (about 130 characters each): the stored list holds MAX_HOSTS, the failed and
    unreachable ones first, and `host_count` and `totals` count them all."""
    names = sorted(f"host-{i:05d}" for i in range(5000))
    failing = {"host-04999", "host-02500"}
    lines = [
        f"{n:<26} : ok=2    changed=1    unreachable=0    failed={int(n in failing)}    skipped=0    "
        "rescued=0    ignored=0   "
        for n in names
    ]
    text = "PLAY RECAP " + "*" * 69 + "\n" + "\n".join(lines) + "\n\n"
    summary = ansible_recap.summary(text, ended=True, output_cut=False)
    assert summary["host_count"] == 5000 and summary["note"] is None
    assert len(summary["hosts"]) == ansible_recap.MAX_HOSTS
    listed = [h["host"] for h in summary["hosts"]]
    assert {"host-02500", "host-04999"} <= set(listed)
    assert listed[:3] == ["host-02500", "host-04999", "host-00000"]  # failed first, each in recap order
    assert summary["totals"] == {
        "ok": 10000,
        "changed": 5000,
        "unreachable": 0,
        "failed": 2,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }


def test_a_recap_longer_than_the_output_read_says_so() -> None:
    """Only the last TAIL_CHARS of stdout are read: a recap longer than that has lost its header."""
    counts = "ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0"
    line = "h{:07d}                   : " + counts + "\n"
    text = "".join(line.format(i) for i in range(10000))[-ansible_recap.TAIL_CHARS :]
    assert ansible_recap.read(text).note == ansible_recap.TOO_LONG
    assert ansible_recap.read(text[-1000:]).note == ansible_recap.NO_RECAP


def test_a_recap_naming_no_host_says_no_host_matched() -> None:
    """`hosts: nothere` (a warning, "skipping: no hosts matched") ends with a recap and no host line."""
    text = (
        "PLAY [nothere] ****\n\x1b[0;36mskipping: no hosts matched\x1b[0m\n\nPLAY RECAP " + "*" * 69 + "\n\n"
    )
    assert ansible_recap.read(text) == ansible_recap.Recap([], ansible_recap.EMPTY)


def test_exit_code_1_names_the_error_ansible_stopped_on() -> None:
    """ansible-core 2.19 prints `[ERROR]: ...` (coloured) where 2.14-2.18 printed `ERROR! ...`:
    the message said "ERROR! in the output" and named nothing."""
    new = (
        "\x1b[1;35m[WARNING]: something\x1b[0m\n\x1b[0;31m[ERROR]: the role 'common' was not found in "
        "/tmp/run/roles\x1b[0m\n\x1b[0;31mOrigin: /tmp/run/playbook.yml:3:11\x1b[0m\n"
    )
    assert ansible_options.exit_message(1, "", new) == (
        "the script exited with code 1: ansible-playbook stopped on an error: "
        "the role 'common' was not found in /tmp/run/roles"
    )
    old = "ERROR! the playbook: nope.yml could not be found\n"
    assert ansible_options.exit_message(1, "", old).endswith(": the playbook: nope.yml could not be found")
    assert (
        ansible_options.exit_message(1, "", "")
        == f"the script exited with code 1: {ansible_options.EXIT_MEANINGS[1]}"
    )
    long = "[ERROR]: " + "x" * 500
    assert len(ansible_options.last_error(long) or "") == ansible_options.MAX_ERROR
    # Codes 2 and 4 name the recap's hosts when it has any, as before.
    assert ansible_options.exit_message(4, _text("multi_play_color.txt"), new).endswith("(2 of 5 hosts)")


def test_host_names_the_masker_replaced_are_not_held_to_ansibles_order() -> None:
    """Two hosts named by secret values are both `***` in the stored output: still the recap."""
    line = "{} : ok=1 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n"
    text = "PLAY RECAP ****\n" + "".join(line.format(h) for h in ("***", "***", "db")) + "\n"
    assert [h.host for h in ansible_recap.read(text).hosts] == ["***", "***", "db"]


# Lines of the largest output read (`ansible_recap.TAIL_CHARS`, the last 1 MiB of each stream)
# shaped against the patterns reading a recap's host lines and the error line: a lazy name or text
# before a run of blanks read the run again at each of its characters (21 s and 67 s per 64 KiB).
RECAP_CHARS = ansible_recap.TAIL_CHARS


def _recap_shapes() -> dict[str, str]:
    size = RECAP_CHARS - 64
    host = "PLAY RECAP ***\na : ok=1 changed=0 unreachable=0 failed=0"
    return {
        "blanks inside a host line": "PLAY RECAP ***\na" + " " * size + "b\n",
        "blanks after a host line": host + " " * size + "x\n",
        "blanks inside an error": "ERROR! a" + " " * size + "b\n",
        "blanks after an error's prefix": "[ERROR]:" + " " * size + "\n",
    }


@pytest.mark.parametrize("shape", list(_recap_shapes()))
def test_a_largest_output_of_any_shape_is_read_in_linear_time(shape: str) -> None:
    def read(text: str) -> None:
        ansible_recap.summary(text, ended=True, output_cut=False)
        ansible_options.exit_message(1, text, text)

    assert_linear(read, _recap_shapes()[shape])


def test_an_error_line_is_told_without_its_trailing_blanks() -> None:
    said = ansible_options.last_error("ERROR! the role 'x' was not found \t \n")
    assert said == "the role 'x' was not found"
