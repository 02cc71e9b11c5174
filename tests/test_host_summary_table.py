"""The per-host table's markup (opscraft/ui/host_summary.py): escaped names, bold failures, the
page's cap. The browser test is tests/test_host_summary_browser.py."""

from __future__ import annotations

from opscraft.db.models import ExecutionHostSummary
from opscraft.execution import ansible_recap
from opscraft.ui import host_summary

STDOUT = "PLAY RECAP ****\n" + "".join(
    f"{name} : ok=1 changed=0 unreachable={u} failed={f} skipped=0 rescued=0 ignored=0\n"
    for name, u, f in sorted([('<img src=x onerror="alert(1)">', 0, 1), ("dead&gone", 1, 0)])
    + [(f"web-{i:03d}", 0, 0) for i in range(150)]
)


def _summary() -> ExecutionHostSummary:
    return ExecutionHostSummary(execution_id=1, **ansible_recap.summary(STDOUT, ended=True, output_cut=False))


def test_names_are_escaped_and_failures_bold() -> None:
    html = host_summary.table_html(_summary())
    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "dead&amp;gone" in html
    first = html.split("<tbody>")[1].split("</tr>")[0]
    assert first.startswith('<tr><th scope="row" title="&lt;img') and "<td><b>1</b></td>" in first


def test_the_page_lists_the_first_hosts_and_says_how_many_of_all() -> None:
    summary = _summary()
    assert summary.host_count == 152
    html = host_summary.table_html(summary)
    assert html.count("<tr>") == 1 + host_summary.SHOWN  # the header row and SHOWN hosts
    assert host_summary.totals_text(summary) == (
        "152 hosts: 152 ok, 0 changed, 1 unreachable, 1 failed, 0 skipped, 0 rescued, 0 ignored "
        "(100 shown, failed and unreachable first; the PLAY RECAP in the output has all)"
    )
