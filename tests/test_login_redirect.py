"""The post-login redirect accepts only paths on this site."""

from __future__ import annotations

import pytest

from opscraft.ui.session import login_url, safe_next


@pytest.mark.parametrize(
    "target", ["/", "/users", "/scripts/12?tab=versions", "/executions?status=failed&page=2", "/a/b#c"]
)
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "users",
        "//evil.example",
        "//evil.example/path",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/x\\..\\y",
        "/ /evil.example",
    ],
)
def test_anything_else_goes_home(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_login_url_carries_next_and_notice() -> None:
    assert login_url("/users?x=1") == "/login?next=%2Fusers%3Fx%3D1"
    assert login_url("/", "ended") == "/login?notice=ended"
    assert login_url() == "/login"
