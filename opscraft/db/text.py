"""Text both databases can store: no NUL character, no lone UTF-16 surrogate.

PostgreSQL refuses U+0000 in `text` and `json` values (`invalid byte sequence for encoding
"UTF8": 0x00`); SQLite takes it. A lone surrogate (U+D800-U+DFFF, e.g. from the valid JSON
`"\\ud800"`) cannot be encoded as UTF-8 at all (RFC 3629, section 3), so neither driver can send
it, and a JSON column that stored it as an escape cannot be written out as a UTF-8 response.
OpsCraft refuses both everywhere, on both databases, so the same input behaves the same way.

The checks walk JSON-like values (dicts, lists, strings; keys too) and name each bad place with a
dotted path (`parameters.P`, `tags.2`), never quoting the value (it may be a secret).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

# A lone surrogate, or NUL. Surrogate pairs never reach here as two code points: Python's JSON
# parser joins a valid escaped pair into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
REPLACEMENT = "\ufffd"
NUL_MESSAGE = "must not contain NUL characters (U+0000): remove them"
SURROGATE_MESSAGE = (
    "must be valid Unicode text: it contains a lone surrogate (U+D800-U+DFFF), "
    "which cannot be encoded as UTF-8"
)


def problem(text: str) -> str | None:
    """What is wrong with `text` for storage (a message naming the rule), or None when it is fine."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


NOT_UTF8_MESSAGE = (
    "must be UTF-8 text: a percent-encoded byte of it is not UTF-8 (percent-encode the text's UTF-8 "
    "bytes: é is %C3%A9)"
)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is no UTF-8, as surrogateescape keeps it


def not_utf8_parameters(scope: Mapping[str, Any]) -> list[str]:
    """The query parameters of the ASGI `scope` whose percent-decoded name or value is no UTF-8
    text (`?search=%FF`, `caf%E9`), each once, by `escaped_name`. Servers decode such a byte as
    U+FFFD, so `?search=%FF` searched for that and found nothing."""
    raw = bytes(scope.get("query_string") or b"").decode("latin-1")
    names: dict[str, None] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, errors="surrogateescape"):
        if _ESCAPED_BYTE.search(key + value):
            names[escaped_name(key)] = None
    return list(names)


def escaped_name(key: str) -> str:
    """A decoded query parameter name (bytes that are no UTF-8 kept by `surrogateescape`) as a
    refusal names it: its text as it is, each byte that is no UTF-8 percent-encoded as it was
    sent (`caf%E9`, `%FF`), and `%` itself as `%25` so the two never read alike. As U+FFFD, which
    every such byte was shown as, two names differing only by such bytes read the same and
    none could be found in the address that sent it."""
    return _ESCAPED_BYTE.sub(lambda byte: f"%{ord(byte.group()) - 0xDC00:02X}", key.replace("%", "%25"))


def not_utf8_path(scope: Mapping[str, Any]) -> bool:
    """Whether the percent-decoded path of the ASGI `scope` is no UTF-8 text (`/x/%FF`)."""
    try:
        unquote_to_bytes(bytes(scope.get("raw_path") or b"")).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def find_unstorable(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, message) for every string, or object key, in `value` that cannot be stored.

    `value` is a JSON-like structure: dict, list/tuple, str or a scalar (ignored). A bad key is
    named by its parent's path. Iterative, so a deep document cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            message = problem(item)
            if message:
                yield where or "body", message
        elif isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                message = problem(key_text)
                if message:
                    yield where or "body", f"has a key that {message}"
                    key_text = _SURROGATE.sub(REPLACEMENT, key_text).replace("\x00", REPLACEMENT)
                stack.append((child, f"{where}.{key_text}" if where else key_text))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item))


NON_FINITE_MESSAGE = "must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"
TOO_SMALL_MESSAGE = (
    "must be 0 or a number a float can hold: one this close to 0 (below about 2.5e-324, "
    "e.g. 1e-400) would be read as 0"
)


def rounds_to_zero(numeral: str) -> bool:
    """True when the decimal `numeral` (`1e-400`, `-0.000...1e-330`) is not zero but a float reads
    it as 0 (below about 2.5e-324): the value typed would silently become 0."""
    mantissa = numeral.lower().split("e", 1)[0]
    return any(digit in mantissa for digit in "123456789") and float(numeral) == 0


# Seventeen significant digits name every IEEE 754 binary64 number (IEEE 754-2008, 5.12.2):
# `%.17g` writes 0.1 as 0.10000000000000001, which is read back as that same float.
SIGNIFICANT_DIGITS = 17


def imprecise_message(read_as: float) -> str:
    """What a number `loses_digits` is told: the float it would have become."""
    return (
        f"must have at most {SIGNIFICANT_DIGITS} significant digits (a number keeps no more): "
        f"it would be read as {read_as!r}; round it, or send it as text"
    )


def loses_digits(numeral: str) -> bool:
    """True when the decimal `numeral` has more than `SIGNIFICANT_DIGITS` significant digits
    (trailing zeros aside) and a float does not hold its value exactly: `0.1234567890123456789`
    would silently become 0.12345678901234568. A numeral of 17 digits or fewer names a float as
    its writer meant (`%.17g`, shortest round trip), so it is never refused. The digits are
    counted as written: `Decimal.normalize` would first round them to the context's 28, so
    `1.0000000000000000000000000001` (29) counted as 1 digit and went on as 1.0."""
    try:
        exact = Decimal(numeral.strip())
    except InvalidOperation:
        return False
    if not exact.is_finite():
        return False
    # Exact, unlike `normalize()`; a Decimal's digits have no leading zeros (but 0's own).
    significant = "".join(map(str, exact.as_tuple().digits)).rstrip("0")
    if len(significant) <= SIGNIFICANT_DIGITS:
        return False
    value = float(exact)
    return math.isfinite(value) and value != 0 and Decimal(value) != exact


class TooSmall(float):
    """A JSON number that is not zero but a float reads as 0 (`1e-400`): `read_float` marks it so
    `find_unreadable_numbers` names it, instead of the 0 going on as the value sent."""


class Imprecise(float):
    """A JSON number with more digits than a float keeps (`loses_digits`), marked by `read_float`
    with the float it would have become, for `find_unreadable_numbers` to name."""


def read_float(numeral: str) -> float:
    """`parse_float` for `json.loads`: the float, marked `TooSmall` when `rounds_to_zero` and
    `Imprecise` when `loses_digits`."""
    if rounds_to_zero(numeral):
        return TooSmall(0.0)
    return Imprecise(numeral) if loses_digits(numeral) else float(numeral)


def read_int(numeral: str) -> int | float:
    """`parse_int` for `json.loads`: the integer, or an infinite float (which
    `find_unreadable_numbers` names as beyond a float) for one longer than Python converts
    (`sys.get_int_max_str_digits()`, 4,300 digits by default, CVE-2020-10735): `int()` raised a
    ValueError, which a body's reader took for "not valid JSON" and a form's JSON box did not
    catch at all."""
    try:
        return int(numeral)
    except ValueError:
        return -math.inf if numeral.startswith("-") else math.inf


def find_unreadable_numbers(value: Any) -> Iterator[tuple[str, str]]:
    """(dotted path, message), as `find_unstorable` names them, for every number of the JSON-like
    `value` that is not the number sent: NaN or infinite (what Python's JSON parser makes of the
    literals `NaN` and `Infinity`, which are not JSON, and of a number too large for a float,
    `1e400`; neither database's JSON holds one, and a text field given one would read `nan` or
    `inf`), `TooSmall` (parsed with `read_float`: `1e-400`, which a float reads as 0) or
    `Imprecise` (`0.1234567890123456789`, whose last digits a float drops).
    Iterative, like `find_unstorable`."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, TooSmall):
            yield where or "body", TOO_SMALL_MESSAGE
        elif isinstance(item, Imprecise):
            yield where or "body", imprecise_message(float(item))
        elif isinstance(item, float) and not math.isfinite(item):
            yield where or "body", NON_FINITE_MESSAGE
        elif isinstance(item, dict):
            stack.extend((child, f"{where}.{key}" if where else str(key)) for key, child in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item))


def replace_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def _int_or_digits(digits: str) -> int | str:
    """A JSON integer as an int when it fits 64 bits (what JSON encoders write), else its digits."""
    number = int(digits)
    return number if -(2**63) <= number < 2**63 else digits


def json_loads(text: str | bytes) -> Any:
    """The JSON columns' decoder: a row stored before these checks (an escaped lone surrogate, an
    integer past 64 bits) still loads as values that can be written out (the surrogate becomes
    U+FFFD, the integer its digits as text)."""
    value = json.loads(text, parse_int=_int_or_digits)
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    # A valid pair is two escapes too: the walk leaves the joined character alone.
    return replace_surrogates(value) if _ESCAPED_SURROGATE.search(raw) else value
