"""Invisible and bidirectional control characters: refused in names (422 naming the field),
refused in parameter values when they reorder text (bidi controls), shown as `<U+XXXX>` otherwise.

Every API test runs on SQLite and PostgreSQL (the `backend` fixture behind `client`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.services.errors import Invalid
from opscraft.services.invisible import INVISIBLE, canonical, visible
from opscraft.services.parameters import normalize, resolve
from tests.conftest import LoggedIn

# Unicode's bidi embedding/override/isolate controls (UAX #9), each of them.
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
# Other characters that print as nothing: zero-width space/joiners, LRM/RLM/ALM, word joiner,
# BOM, soft hyphen, line separator, a tag character.
OTHER_INVISIBLE = [
    "\u200b",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u2028",
    "\U000e0041",
]
# Refused in parameter values too (`invisible.value_problem`): print as nothing, mean nothing.
NOT_IN_VALUE = ["\ufeff", "\u200b", "\u200d", "\u2060", "\U000e0041"]
# Kept in values: right-to-left marks, the soft hyphen, a line separator.
KEPT_IN_VALUE = ["\u200e", "\u200f", "\u061c", "\u00ad", "\u2028"]
PLAYBOOK = "echo hi\n"


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


async def test_script_names_refuse_every_invisible_character(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    for ch in [*BIDI, *OTHER_INVISIBLE, "\n"]:
        body = {"name": f"deploy{ch}prod", "script_type": "bash", "content": PLAYBOOK}
        r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["name"], (repr(ch), r.text)
    # A trailing newline used to pass the `^...$` name rules.
    r = await client.post(
        "/api/v1/scripts",
        json={"name": "deploy\n", "script_type": "bash", "content": PLAYBOOK},
        headers=operator.headers,
    )
    assert r.status_code == 422 and fields(r) == ["name"], r.text
    r = await client.get("/api/v1/scripts", headers=operator.headers)
    assert r.json()["total"] == 0


async def test_tags_and_schedule_names_refuse_invisible_characters(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    for ch in ["\u202e", "\u2067", "\u200b", "\ufeff", "\U000e0041"]:
        body = {"name": "tagged", "script_type": "bash", "content": PLAYBOOK, "tags": [f"prod{ch}"]}
        r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
        assert r.status_code == 422 and fields(r)[0].startswith("tags"), (repr(ch), r.text)
        assert f"U+{ord(ch):04X}" in r.text
    body = {
        "name": "tagged",
        "script_type": "bash",
        "content": PLAYBOOK,
        "status": "active",
        "tags": ["prod"],
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    url = f"/api/v1/scripts/{r.json()['id']}/schedules"
    for ch in ["\u202e", "\u200b"]:
        r = await client.post(
            url, json={"name": f"night{ch}ly", "cron": "0 3 * * *"}, headers=operator.headers
        )
        assert r.status_code == 422 and fields(r) == ["name"], r.text
    r = await client.get(url, headers=operator.headers)
    assert r.status_code == 200 and r.json()["items"] == []


async def test_webhook_token_and_channel_names_refuse_invisible_characters(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """The other names people pick from a list (a webhook, a personal token, a notification
    channel) follow the schedule names' rule; nothing is written for a refused name."""
    body = {"name": "hooked", "script_type": "bash", "content": PLAYBOOK, "status": "active"}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    hooks = f"/api/v1/scripts/{r.json()['id']}/webhooks"
    channel = {"kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
    for ch in ["\u202e", "\u2066", "\u200b", "\ufeff"]:
        name = f"deploy{ch}prod"
        for url, extra, who in [
            (hooks, {}, operator),
            ("/api/v1/tokens", {}, operator),
            ("/api/v1/notifications/channels", channel, admin),
        ]:
            r = await client.post(url, json={"name": name, **extra}, headers=who.headers)
            assert r.status_code == 422 and fields(r) == ["name"], (url, repr(ch), r.text)
            assert f"U+{ord(ch):04X}" in r.text
    assert (await client.get(hooks, headers=operator.headers)).json()["items"] == []
    assert (await client.get("/api/v1/tokens", headers=operator.headers)).json()["items"] == []
    assert (await client.get("/api/v1/notifications/channels", headers=admin.headers)).json()["items"] == []


async def test_parameter_values_refuse_bidi_controls_and_characters_that_print_as_nothing(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """A default, a run's value and a schedule's preset: one rule (`value_problem`). A BOM pasted
    from a file or a zero-width space from a web page was accepted and run, the value differing
    from what everyone saw; only bidi controls were refused."""
    body = {
        "name": "p",
        "script_type": "bash",
        "content": PLAYBOOK,
        "parameters": {"V": "abc"},
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    for ch in [*BIDI, *NOT_IN_VALUE]:
        why = "reorder" if ch in BIDI else "print as nothing"
        bad = {**body, "name": "q", "parameters": {"V": f"ab{ch}c"}}
        r = await client.post("/api/v1/scripts", json=bad, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["parameters.V"], r.text
        run = {"script_id": script_id, "parameters": {"V": f"v1{ch}.2"}}
        r = await client.post("/api/v1/executions", json=run, headers=viewer.headers)
        assert r.status_code == 422 and fields(r) == ["parameters.V"], r.text
        assert f"U+{ord(ch):04X}" in r.json()["detail"] and why in r.json()["detail"], r.text
        preset = {"name": "nightly", "cron": "0 3 * * *", "parameters": {"V": f"{ch}x"}}
        r = await client.post(f"/api/v1/scripts/{script_id}/schedules", json=preset, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["parameters.V"], r.text
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 0
    for kept in [
        "👩\u200d💻",
        "क्\u200dष",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, ZWNJ between joining letters
        "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
    ]:
        run = {"script_id": script_id, "parameters": {"V": kept}}
        r = await client.post("/api/v1/executions", json=run, headers=viewer.headers)
        assert r.status_code == 202, (kept, r.text)


def test_other_invisible_characters_are_values_and_shown_visibly() -> None:
    """Emoji sequences (ZWJ), right-to-left text with its marks, soft hyphens: data, kept as is."""
    schema = normalize({"V": "x", "C": {"type": "choice", "options": ["a\u200eb", "ab"]}})
    for ch in KEPT_IN_VALUE:
        assert resolve(schema, {"V": f"a{ch}b"})["V"] == f"a{ch}b"
        assert visible(f"a{ch}b") == f"a<U+{ord(ch):04X}>b"
    for ch in OTHER_INVISIBLE:
        assert visible(f"a{ch}b") == f"a<U+{ord(ch):04X}>b"
    assert resolve(schema, {"C": "a\u200eb"})["C"] == "a\u200eb"
    assert visible("👩\u200d💻 שלום\u200f") == "👩<U+200D>💻 שלום<U+200F>"
    assert visible("a\u202eb") == "a<U+202E>b"  # bidi controls, were one stored before the rule
    with pytest.raises(Invalid):
        resolve(schema, {"V": "\u202e"})


def test_the_invisible_class_covers_unicode_bidi_controls_and_zero_width_format_characters() -> None:
    import re
    import unicodedata

    pattern = re.compile(f"[{INVISIBLE}]")
    for code in range(0x110000):
        ch = chr(code)
        if unicodedata.bidirectional(ch) in {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}:
            assert pattern.match(ch), hex(code)
        if unicodedata.category(ch) == "Cf" and unicodedata.name(ch, "").startswith(("ZERO WIDTH", "TAG ")):
            assert pattern.match(ch), hex(code)


async def test_picked_names_are_trimmed_and_refuse_blank_and_control_characters(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """A schedule's, webhook's, personal token's or channel's name: only spaces (a row with no
    visible name) and control characters (a newline, a tab, a bell or an ESC, which break a list's
    line or a terminal showing it) are 422 naming `name`, nothing written; surrounding spaces are
    trimmed, so " nightly " and "nightly" are the same name."""
    body = {"name": "named", "script_type": "bash", "content": PLAYBOOK, "status": "active"}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    script = f"/api/v1/scripts/{r.json()['id']}"
    channel = {"kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
    kinds = [
        (f"{script}/schedules", {"cron": "0 3 * * *"}, operator),
        (f"{script}/webhooks", {}, operator),
        ("/api/v1/tokens", {}, operator),
        ("/api/v1/notifications/channels", channel, admin),
    ]
    for url, extra, who in kinds:
        for name in [
            " ",
            "   ",
            "\t",
            "\u3000",
            "a\nb",
            "a\tb",
            "deploy\x07",
            "\x1b[31mred",
            "a\x7fb",
            "a\x85b",
        ]:
            r = await client.post(url, json={"name": name, **extra}, headers=who.headers)
            assert r.status_code == 422 and fields(r) == ["name"], (url, repr(name), r.text)
        listed = (await client.get(url, headers=who.headers)).json()
        assert (listed["items"] if isinstance(listed, dict) else listed) == [], url
        r = await client.post(url, json={"name": "  nightly  ", **extra}, headers=who.headers)
        assert r.status_code == 201 and r.json()["name"] == "nightly", (url, r.text)
        r = await client.post(url, json={"name": "שלום 🚀 ünï", **extra}, headers=who.headers)
        assert r.status_code == 201 and r.json()["name"] == "שלום 🚀 ünï", (url, r.text)


# Names spelled with a joiner where it changes the drawing (RFC 5892 A.1/A.2, UTS #51), and the
# same joiners where they print as nothing.
JOINED_NAMES = [
    "क्\u200dष",  # Devanagari: ZWJ after the virama (half form)
    "क्\u200cष",  # ZWNJ after the virama (explicit halant)
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian "mi-khaham": ZWNJ between joining letters
    "👩\u200d💻 ops",  # an emoji ZWJ sequence
    "🏳\ufe0f\u200d🌈",  # with the emoji presentation selector before the ZWJ
]
LOOSE_JOINERS = ["a\u200db", "a\u200cb", "\u200dprod", "prod\u200c", "👩\u200d", "\u0645\u200c b"]


async def test_joiners_that_change_the_drawing_are_kept_in_names_and_tags(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """A Hindi, Persian or emoji name needs U+200C/U+200D where they join (a full name with "👩‍💻"
    was refused as invisible); where a joiner joins nothing it still is refused, naming it."""
    for number, name in enumerate(JOINED_NAMES):
        body = {"name": f"joined{number}", "script_type": "bash", "content": PLAYBOOK, "tags": [name]}
        r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
        assert r.status_code == 201 and r.json()["tags"] == [name], (repr(name), r.text)
        r = await client.post("/api/v1/tokens", json={"name": name}, headers=operator.headers)
        assert r.status_code == 201 and r.json()["name"] == name, (repr(name), r.text)
        r = await client.put("/api/v1/auth/me", json={"full_name": name}, headers=operator.headers)
        assert r.status_code == 200 and r.json()["full_name"] == name, (repr(name), r.text)
    for name in LOOSE_JOINERS:
        r = await client.post("/api/v1/tokens", json={"name": name}, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["name"], (repr(name), r.text)
        assert "U+200" in r.text
        r = await client.put("/api/v1/auth/me", json={"full_name": name}, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["full_name"], (repr(name), r.text)


def test_the_joiner_contexts_match_the_schema_pattern_and_unicode() -> None:
    """The OpenAPI pattern accepts exactly the names the server does; VIRAMAS is every character
    of Canonical_Combining_Class 9 this Python knows (a newer Unicode may add some: add them)."""
    import re
    import unicodedata

    from opscraft.services.invisible import NAME_PATTERN, VIRAMAS, invisible_problem

    for name in JOINED_NAMES:
        assert invisible_problem(name) is None and re.match(NAME_PATTERN, name), repr(name)
    for name in LOOSE_JOINERS:
        assert invisible_problem(name) and not re.match(NAME_PATTERN, name), repr(name)
    viramas = re.compile(f"[{VIRAMAS}]")
    for code in range(0x110000):
        assert bool(viramas.match(chr(code))) == (unicodedata.combining(chr(code)) == 9), hex(code)


# Names that do not start with a visible base character, once trimmed: a combining mark alone or
# first (U+0301 acute, U+20DD enclosing circle: Me, U+0903 Devanagari visarga: Mc, an astral
# one), or a filler that prints as blank space (Hangul fillers, the blank Braille pattern).
NO_BASE_FIRST = [
    "\u0301",
    "\u0301abc",
    " \u0301abc",
    "\u0301\u0301",
    "\u20ddx",
    "\u0903a",
    "\U0001d167x",
    "\ufe0f",
    "\u3164",
    "\u3164abc",
    "\u115f",
    "\uffa0x",
    "\u2800",
]
# Marks and fillers after a base character are part of the name.
BASE_FIRST = ["e\u0301", "abc\u0301", "q\u0301", " a\u20dd ", "नमस्ते", "❤\ufe0f ok", "1\ufe0f\u20e3"]
# Names with a visible start that still print as another name: a filler or other character that
# prints as nothing at the end or inside (Hangul fillers, the blank Braille pattern, U+180E, a
# grapheme joiner, a variation selector on a letter, an ideographic variation selector, a
# Khitan filler), or a run of white space (a page shows `a  b` as `a b`).
LOOKS_LIKE_ANOTHER = [
    ("a\u3164", "U+3164"),
    ("x\u3164y", "U+3164"),
    ("a\u115f", "U+115F"),
    ("a\u1160b", "U+1160"),
    ("a\uffa0", "U+FFA0"),
    ("a\u2800", "U+2800"),
    ("a\u180e", "U+180E"),
    ("a\u034fb", "U+034F"),
    ("a\u17b4", "U+17B4"),
    ("a\ufe0f", "U+FE0F"),
    ("\u845b\U000e0100", "U+E0100"),
    ("a\U00016fe4", "U+16FE4"),
    ("a\U0001d173", "U+1D173"),
    ("a  b", "U+0020"),
    ("a \u3000b", "U+0020, U+3000"),
]


async def _named_things(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> tuple[str, dict[str, tuple[dict[str, Any], LoggedIn]]]:
    """A script's URL, and each URL a free-text name is posted to with the rest of its body and
    who may post it (a schedule's, webhook's, API token's, notification channel's name)."""
    body = {"name": "named-things", "script_type": "bash", "content": PLAYBOOK, "status": "active"}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    script = f"/api/v1/scripts/{r.json()['id']}"
    channel = {"kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
    return script, {
        f"{script}/schedules": ({"cron": "0 3 * * *"}, operator),
        f"{script}/webhooks": ({}, operator),
        "/api/v1/tokens": ({}, operator),
        "/api/v1/notifications/channels": (channel, admin),
    }


async def test_names_must_start_with_a_visible_base_character(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Every free-text name (a tag, a schedule's, webhook's, API token's, notification channel's
    name, a full name) refuses a first character with nothing to show (422 naming the field and
    the code point); none of them is written. One starting with a visible character keeps its
    marks."""
    script, made = await _named_things(client, operator, admin)
    for name in NO_BASE_FIRST:
        code = f"U+{ord(name.strip()[0]):04X}"
        for url, (extra, who) in made.items():
            r = await client.post(url, json={"name": name, **extra}, headers=who.headers)
            assert r.status_code == 422 and fields(r) == ["name"], (url, repr(name), r.text)
            assert "must start with a visible letter, digit or symbol" in r.text and code in r.text
        r = await client.put(script, json={"tags": [name]}, headers=operator.headers)
        assert r.status_code == 422 and fields(r)[0].startswith("tags"), (repr(name), r.text)
        assert code in r.text
        r = await client.put("/api/v1/auth/me", json={"full_name": name}, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["full_name"], (repr(name), r.text)
    for url, (_, who) in made.items():
        assert (await client.get(url, headers=who.headers)).json()["items"] == [], url
    assert (await client.get(script, headers=operator.headers)).json()["tags"] == []
    for i, name in enumerate(BASE_FIRST):
        stored = canonical(name.strip())
        r = await client.post(f"{script}/webhooks", json={"name": name}, headers=operator.headers)
        assert r.status_code == 201 and r.json()["name"] == stored, (repr(name), r.text)
        r = await client.put(script, json={"tags": [name, f"t{i}"]}, headers=operator.headers)
        assert r.status_code == 200 and r.json()["tags"] == [stored, f"t{i}"], r.text


async def test_names_refuse_fillers_and_ignorable_characters_anywhere(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """A free-text name that starts visibly but ends with or holds a character that prints as
    nothing or as blank space (a name that looks like `a`) is 422 naming the field and the code
    point, for every kind of name; nothing is written. Script names refuse them too."""
    script, made = await _named_things(client, operator, admin)
    body = {"script_type": "bash", "content": PLAYBOOK}
    for name, codes in LOOKS_LIKE_ANOTHER:
        for url, (extra, who) in made.items():
            r = await client.post(url, json={"name": name, **extra}, headers=who.headers)
            assert r.status_code == 422 and fields(r) == ["name"], (url, repr(name), r.text)
            assert f"({codes})" in r.text, (url, repr(name), r.text)
        r = await client.put(script, json={"tags": [name]}, headers=operator.headers)
        assert r.status_code == 422 and fields(r)[0].startswith("tags") and codes in r.text, r.text
        r = await client.put("/api/v1/auth/me", json={"full_name": name}, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["full_name"] and codes in r.text, r.text
        r = await client.post("/api/v1/scripts", json={**body, "name": f"s{name}"}, headers=operator.headers)
        assert r.status_code == 422 and fields(r) == ["name"], (repr(name), r.text)
    for url, (_, who) in made.items():
        assert (await client.get(url, headers=who.headers)).json()["items"] == [], url
    assert (await client.get(script, headers=operator.headers)).json()["tags"] == []
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 1


def test_the_ignorable_class_is_unicodes_default_ignorable_property() -> None:
    """`IGNORABLE` (written out for the OpenAPI pattern) is every Default_Ignorable_Code_Point
    of the `regex` library the server checks with (a newer Unicode may add some: add them), and
    the pattern refuses each of them, alone after a letter, as the server does."""
    import re

    import regex

    from opscraft.services.invisible import IGNORABLE, NAME_PATTERN, name_problem

    written = re.compile(f"[{IGNORABLE}]")
    unicode_di = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    for code in range(0x110000):
        ch = chr(code)
        assert bool(written.match(ch)) == bool(unicode_di.match(ch)), hex(code)
    for code in (c for r in ("\u00ad\u034f\u115f\u1160\u3164\ufe00\ufe0f\uffa0",) for c in r):
        assert name_problem(f"a{code}") and not re.match(NAME_PATTERN, f"a{code}"), hex(ord(code))
    for name, _ in LOOKS_LIKE_ANOTHER:
        assert name_problem(name.strip()) and not re.match(NAME_PATTERN, name), repr(name)


def test_the_name_patterns_refuse_what_the_server_refuses_and_marks_is_unicode() -> None:
    """The OpenAPI patterns (names, tags) match a name exactly when the server takes it, for the
    first-character rule too; MARKS is every combining mark (Mn, Mc, Me) this Python knows."""
    import re
    import unicodedata

    from opscraft.services.invisible import NAME_PATTERN, name_problem
    from opscraft.services.marks import MARKS
    from opscraft.services.scripts import TAG_PATTERN

    for pattern in (NAME_PATTERN, TAG_PATTERN):
        for name in NO_BASE_FIRST:
            assert name_problem(name.strip()) and not re.match(pattern, name), repr(name)
        for name in BASE_FIRST:
            assert name_problem(name.strip()) is None and re.match(pattern, name), repr(name)
    marks = re.compile(f"[{MARKS}]")
    for code in range(0x110000):
        is_mark = unicodedata.category(chr(code)).startswith("M")
        assert bool(marks.match(chr(code))) == is_mark, hex(code)
