"""Whole numbers read from text that came from outside: HTTP headers, Basic-auth user names,
JSON pointer tokens, form inputs.

Checking such text with `str.isdigit()` (or `isdecimal()`) and then calling `int()` is wrong two
ways: `isdigit()` is true for characters `int()` refuses (superscripts such as "²") and for other
scripts' digits that `int()` reads ("١٢" is 12), and `int()` refuses text of more than 4,300
digits (Python's integer string conversion limit). Both turned a caller's odd value into a 500.
The protocols these numbers come from write them in ASCII digits only: RFC 6901 array indexes
(`"0" / %x31-39 *DIGIT`), Unix timestamps, HTTP `Content-Length` (RFC 9110 `1*DIGIT`), TCP ports.
It lives beside `db/text.py` (the other rule on outside text) so that every layer may use it.
"""


def ascii_int(text: str, max_digits: int) -> int | None:
    """The value of `text` when it is 1 to `max_digits` ASCII digits 0-9 (leading zeros allowed),
    else None: never raises, whatever the text (any length, any script)."""
    if not 0 < len(text) <= max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
