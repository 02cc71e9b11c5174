"""Invisible and bidirectional control characters: refused in names, shown in values.

A name (a tag; a schedule's, webhook's, API token's or notification channel's name; a user's
full name) is read by people choosing what to run: a character that prints as nothing (U+200B
ZERO WIDTH SPACE) or reorders what follows (U+202E RIGHT-TO-LEFT OVERRIDE, the "Trojan Source"
trick, CVE-2021-42574) makes two different names look the same, so names refuse every character
of `INVISIBLE`; they are also trimmed of surrounding whitespace and refuse control characters
and being empty (a full name may be empty). A parameter value is data for the script and may
hold right-to-left text, emoji sequences (U+200D ZERO WIDTH JOINER where it joins) or a soft
hyphen, so it refuses the bidirectional embedding, override and isolate controls (`BIDI_CONTROLS`,
which change how everything after them is displayed) and the characters that print as nothing
and mean nothing in text (`value_problem`: a BOM, a zero-width space); the UI shows its other
invisible characters as `<U+200E>` (`visible`). Script, secret, user and parameter names are
ASCII identifiers and never hold such characters. Source of the character classes: Unicode's
Bidi_Control property (UAX #9) and the Default_Ignorable_Code_Point characters of general
category Cf, Zl and Zp.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

import regex
from pydantic import AfterValidator, BeforeValidator, Field

from opscraft.db.text import NUL_MESSAGE
from opscraft.services.errors import Invalid
from opscraft.services.marks import MARKS
from opscraft.services.storable import Text

# UAX #9 explicit embedding, override and isolate controls (LRE, RLE, PDF, LRO, RLO; LRI, RLI,
# FSI, PDI). The implicit marks (LRM U+200E, RLM U+200F, ALM U+061C) do not reorder other text.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
# Characters that print as nothing or steer the display: soft hyphen, Arabic letter mark,
# Mongolian vowel separator, zero-width space/joiners, LRM/RLM, line and paragraph separators,
# bidi controls, word joiner and invisible operators, deprecated format controls, BOM,
# interlinear annotation controls, tag characters.
INVISIBLE = (
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000e0000-\U000e007f"
)
_INVISIBLE_RE = re.compile(f"[{INVISIBLE}]")
# The joiners (U+200C ZWNJ, U+200D ZWJ) where they change how a name is drawn, so names may hold
# them there: after a virama (RFC 5892 Appendix A.1 and A.2, IDNA's CONTEXTJ rules: Hindi,
# Bengali, Tamil... spell words with them), ZWNJ between letters of a joining script (A.1's
# second rule, Persian "می‌خواهم"; its Joining_Type is approximated by those scripts' blocks),
# and ZWJ inside an emoji ZWJ sequence (UTS #51 ED-16, "👩‍💻"). Elsewhere they print as nothing.
# VIRAMAS: every character of Canonical_Combining_Class 9 (Virama) in Unicode 14.0, Python
# 3.11's unicodedata (tests/test_invisible_text.py says when a newer one adds one).
VIRAMAS = (
    "\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d3b-\u0d3c\u0d4d\u0dca\u0e3a\u0eba"
    "\u0f84\u1039-\u103a\u1714-\u1715\u1734\u17d2\u1a60\u1b44\u1baa-\u1bab\u1bf2-\u1bf3"
    "\u2d7f\ua806\ua82c\ua8c4\ua953\ua9c0\uaaf6\uabed\U00010a3f\U00011046\U00011070"
    "\U0001107f\U000110b9\U00011133-\U00011134\U000111c0\U00011235\U000112ea\U0001134d"
    "\U00011442\U000114c2\U000115bf\U0001163f\U000116b6\U0001172b\U00011839"
    "\U0001193d-\U0001193e\U000119e0\U00011a34\U00011a47\U00011a99\U00011c3f"
    "\U00011d44-\U00011d45\U00011d97"
)
# Arabic, Syriac, N'Ko, Mandaic, Mongolian, Phags-pa and the Arabic presentation forms.
JOINING_LETTERS = (
    "\u0620-\u06ff\u0710-\u074f\u0750-\u077f\u07ca-\u07f5\u0840-\u085b\u0860-\u086a"
    "\u0870-\u08ff\u1820-\u1878\ua840-\ua872\ufb50-\ufdff\ufe70-\ufefc"
)
# Emoji that join into ZWJ sequences (with U+FE0F, the emoji presentation selector, before a ZWJ).
EMOJI = "\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"
JOINER_IN_CONTEXT = (
    f"(?:(?<=[{VIRAMAS}])[\u200c\u200d]"
    f"|(?<=[{JOINING_LETTERS}])\u200c(?=[{JOINING_LETTERS}])"
    f"|(?<=[{EMOJI}\ufe0f])\u200d(?=[{EMOJI}]))"
)
_BIDI_RE = re.compile(f"[{BIDI_CONTROLS}]")
# What a parameter value refuses besides the bidi controls (`value_problem`): the characters of
# `INVISIBLE` that print as nothing and mean nothing in text (Mongolian vowel separator, the
# zero-width space and joiners, word joiner and invisible operators, deprecated format controls,
# BOM, interlinear annotation controls, tag characters); the joiners stay where they join.
NOT_IN_VALUE = "\u180e\u200b-\u200d\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
_NOT_IN_VALUE_RE = re.compile(f"[{NOT_IN_VALUE}]")
# An emoji flag of a region (UTS #51 ED-14a: U+1F3F4, tag letters, U+E007F CANCEL TAG, "🏴󠁧󠁢󠁳󠁣󠁴󠁿").
_TAG_SEQUENCE = "(?<=\U0001f3f4)[\U000e0020-\U000e007e]+\U000e007f"
_VALUE_CONTEXT_RE = re.compile(f"{JOINER_IN_CONTEXT}|{_TAG_SEQUENCE}")
# C0 and C1 control characters (Unicode general category Cc): a newline or tab breaks the line a
# name is listed on, an ESC sequence recolours or rewrites a terminal that prints it.
CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
_CONTROL_RE = re.compile(f"[{CONTROLS}]")
# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, UAX #44): what a
# renderer draws as nothing (format controls, variation selectors, U+034F COMBINING GRAPHEME
# JOINER, and Other_Default_Ignorable_Code_Point: the Hangul fillers U+115F, U+1160, U+3164,
# U+FFA0, U+17B4/U+17B5, U+180E...). Names are checked with the `regex` library's property
# (`_NOT_IN_NAME_RE`); the class is written out here for the OpenAPI pattern, and
# tests/test_invisible_text.py compares the two.
IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
# Characters drawn as blank space that Unicode does not call ignorable: U+2800 BRAILLE PATTERN
# BLANK (a symbol) and U+16FE4 KHITAN SMALL SCRIPT FILLER (a mark).
BLANK = "\u2800\U00016fe4"
# The fillers, ignorable or not, that print as blank space (named apart in messages).
FILLERS = "\u115f\u1160\u3164\uffa0\u2800\U00016fe4"
# Variation selectors where they change how a name is drawn: U+FE0E/U+FE0F after an emoji (its
# text or emoji presentation, UTS #51 ED-8a), U+FE0F in a keycap sequence (`1` U+FE0F U+20E3).
SELECTOR_IN_CONTEXT = f"(?:(?<=[{EMOJI}])[\ufe0e\ufe0f]|(?<=[0-9#*])\ufe0f(?=\u20e3))"
# What a name may hold in context though its class refuses it (`visible_pattern`).
IN_CONTEXT = f"(?:{JOINER_IN_CONTEXT}|{SELECTOR_IN_CONTEXT})"
_IN_CONTEXT_RE = re.compile(IN_CONTEXT)
# Everything a name refuses outside `IN_CONTEXT`, as a class body (for the OpenAPI pattern) and
# as the server checks it (`regex`'s Unicode property rather than the written-out class).
NOT_IN_NAME = f"{CONTROLS}{INVISIBLE}{IGNORABLE}{BLANK}"
_NOT_IN_NAME_RE = regex.compile(f"[\\p{{Default_Ignorable_Code_Point}}{INVISIBLE}{BLANK}]")
# White space inside a name: one character between visible ones. A page collapses a run of it
# into one space (HTML), so `a  b` and `a b` would be listed alike.
_SPACE_RUN_RE = re.compile(r"\s\s+")
# What a name may not start with, once trimmed: a combining mark (`marks.MARKS`), which has no
# character to sit on (U+0301 alone printed as a stray accent or as nothing), or a character
# that prints as nothing or as the blank space trimming removes.
_NOT_LEAD = f"{MARKS}{IGNORABLE}{BLANK}"
_LEAD_RE = re.compile(f"[{_NOT_LEAD}]")
MARK_RE = re.compile(f"[{MARKS}]")
# The name rule for JSON Schema, so the OpenAPI schema says what the server accepts: no control,
# ignorable or blank character (but `IN_CONTEXT`), a visible base character first after any
# leading spaces, no run of white space but at the end.


def visible_pattern(refused: str) -> str:
    """A JSON Schema `pattern` (ECMA-262 and Python `re` alike) for a name: no character of the
    class body `refused` besides `IN_CONTEXT`, after any leading white space a character that is
    not white space, a combining mark or an ignorable or blank character (`lead_problem`), and
    white space inside only one character at a time (`space_problem`)."""
    space = f"[^\\S{refused}]"
    char = f"(?:[^{refused}\\s]|{IN_CONTEXT}|{space}(?!{space})|{space}+$)"
    return f"^{space}*[^{refused}\\s{_NOT_LEAD}]{char}*$"


NAME_PATTERN = visible_pattern(NOT_IN_NAME)


def _codes(found: list[str]) -> str:
    return ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(found))


def invisible_problem(text: str) -> str | None:
    """Why `text` cannot be a name, or None: it holds a character that prints as nothing, as
    blank space or reorders the text after it (Unicode's Default_Ignorable_Code_Point, `INVISIBLE`,
    `BLANK`: U+3164 HANGUL FILLER, U+200B, U+202E...) outside `IN_CONTEXT`, each named as
    U+XXXX; or a run of white space inside it (`a  b`, listed as `a b`)."""
    found = _NOT_IN_NAME_RE.findall(_IN_CONTEXT_RE.sub("", text))
    if found:
        return (
            f"must not contain characters that print as nothing or as blank space, or reorder "
            f"the text ({_codes(found)}): they make different names look the same"
        )
    run = _SPACE_RUN_RE.search(text)
    if run:
        return (
            f"must not contain white space twice in a row ({_codes(list(run.group()))}): a page "
            "shows it as one space, so the name would look like another"
        )
    return None


def value_problem(text: str) -> str | None:
    """Why `text` cannot be a parameter value, or None: the one rule of every value (a run's, a
    declaration's default, a schedule's, webhook's or "then run" link's preset, a choice's
    option). Refused: a bidi embedding/override/isolate control (`BIDI_CONTROLS`: it reorders
    how the value is displayed), and a character that prints as nothing and carries no meaning
    in text (`NOT_IN_VALUE`: U+FEFF BYTE ORDER MARK, U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER,
    tag characters...), each named as U+XXXX: a BOM pasted from a file or a zero-width space
    from a web page made the value differ from what everyone saw. Kept, as data: U+200C/U+200D
    where they join (`JOINER_IN_CONTEXT`: emoji ZWJ sequences, Indic and Arabic-script words),
    tag characters in an emoji flag sequence (UTS #51 ED-14a), LRM/RLM/ALM, the soft hyphen,
    variation selectors and line separators, which right-to-left text, emoji and prose use."""
    found = _BIDI_RE.findall(text)
    if found:
        return (
            f"must not contain bidirectional control characters ({_codes(found)}): they reorder how "
            "the value is displayed to others; type right-to-left text without them"
        )
    found = _NOT_IN_VALUE_RE.findall(_VALUE_CONTEXT_RE.sub("", text))
    if found:
        return (
            f"must not contain characters that print as nothing ({_codes(found)}): a byte-order "
            "mark or zero-width space, pasted with the text, makes the value differ from what is "
            "shown; remove them (a zero-width joiner inside an emoji or a word that joins is kept)"
        )
    return None


def visible(text: str) -> str:
    """`text` with each invisible character written as `<U+XXXX>` (for showing values)."""
    return _INVISIBLE_RE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def control_problem(text: str, why: str = " such as a newline or a tab") -> str | None:
    """Why `text` cannot be one line of printable text (a name, a tag, a search), or None: a NUL
    says `db.text.NUL_MESSAGE`, the words the API's door (`security.http`) and every stored text
    use for it, so the API and the UI refuse it alike; another control character (category Cc)
    is named by its code point, followed by `why`."""
    if "\x00" in text:
        return NUL_MESSAGE
    found = _CONTROL_RE.findall(text)
    return f"must not contain control characters ({_codes(found)}){why}" if found else None


def lead_problem(name: str) -> str | None:
    """Why `name` (already trimmed) cannot start as it does, or None: with a combining mark
    (U+0301 alone, or `\u0301abc`: an accent with nothing to sit on), a filler (U+3164 HANGUL
    FILLER, U+2800 BRAILLE PATTERN BLANK: blank space that trimming leaves) or another character
    that prints as nothing (`IGNORABLE`). A name must start with a visible base character."""
    if not _LEAD_RE.match(name):
        return None
    if name[0] in FILLERS:
        what = "prints as blank space"
    elif MARK_RE.match(name):
        what = "is a combining mark with nothing to sit on"
    else:
        what = "prints as nothing"
    return f"must start with a visible letter, digit or symbol (U+{ord(name[0]):04X} {what})"


def name_problem(name: str) -> str | None:
    """Why `name` (already trimmed) cannot be a name people read, or None: empty (it was only
    spaces), a control character (`control_problem`), an invisible or bidi control character,
    or a start that is no visible base character (`lead_problem`, said before any other
    character that prints as nothing)."""
    if not name:
        return "must not be empty or only spaces"
    return control_problem(name) or lead_problem(name) or invisible_problem(name)


def _visible_name(value: str) -> str:
    value = value.strip()
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def canonical(text: str) -> str:
    """`text` in Unicode's NFC (canonical composition): the one form a name is stored, compared
    and length-checked in. `é` typed as one character (U+00E9) and as `e` + U+0301 COMBINING
    ACUTE ACCENT look alike and are canonically equivalent (Unicode Standard Annex #15): stored
    as typed, 40 such letters counted 80 characters against a 64-character limit, and two names
    that look the same were stored in two spellings. A letter with no precomposed form (`q` +
    U+0301) stays two code points, as the databases' VARCHAR lengths count it."""
    return unicodedata.normalize("NFC", text)


def _canonical_input(value: Any) -> Any:
    return canonical(value) if isinstance(value, str) else value


# Metadata of a name type, first: NFC before any check, so that a length limit (the field's
# `max_length`, checked next) counts the name as stored (`canonical`).
CANONICAL = BeforeValidator(_canonical_input)


Label = Annotated[
    str, CANONICAL, AfterValidator(_visible_name), Field(json_schema_extra={"pattern": NAME_PATTERN})
]
"""A name people read (a schedule's name), in NFC (`canonical`; its length is counted so),
trimmed of surrounding whitespace: not empty, no control characters (Cc), no invisible or bidi
control characters, a visible base character first (`lead_problem`)."""


def _visible_or_empty(value: str) -> str:
    value = value.strip()
    problem = name_problem(value) if value else None
    if problem:
        raise ValueError(problem)
    return value


OptionalLabel = Annotated[
    Text,
    CANONICAL,
    AfterValidator(_visible_or_empty),
    Field(json_schema_extra={"pattern": f"^$|{NAME_PATTERN}"}),
]
"""Text people read that may be left empty (a user's full name), in NFC and trimmed: when not
empty, the rules of `Label`."""


def filter_problem(value: str, max_length: int) -> str | None:
    """Why `value` cannot be a list's free-text filter (a search box, `?search=`, `?target_id=`),
    or None: longer than `max_length` characters, or a control character (`control_problem`)."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters (it has {len(value)})"
    return control_problem(value, ": a search or filter is one line of printable text; remove them")


def check_filters(**filters: tuple[str | None, int]) -> None:
    """The rule of every list's free-text filters, for the API and the UI alike: raises `Invalid`
    (422) naming each filter (`search=(value, max_length)`) that `filter_problem` refuses.

    Nothing stored holds a control character, so such a filter is a typo to report, not a silent
    empty page (or, for NUL, a PostgreSQL error); the length bound keeps a pasted page of text
    out of a `LIKE` over every row."""
    errors = [
        {"field": field, "message": problem}
        for field, (value, max_length) in filters.items()
        if value is not None and (problem := filter_problem(value, max_length))
    ]
    if errors:
        raise Invalid.inputs(errors)


FilterText = Annotated[str, Field(json_schema_extra={"pattern": f"^[^{CONTROLS}]*$"})]
"""A list route's free-text filter parameter, as the OpenAPI schema documents it (no control
character); the service checks it (`check_filters`), so the API and the UI answer the same."""
