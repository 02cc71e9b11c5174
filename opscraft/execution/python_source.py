"""The bytes of a Python script's file: its text in the encoding it declares (PEP 263).

Python decodes a source file in the encoding its first or second line declares
(`# -*- coding: latin-1 -*-`), UTF-8 without one. OpsCraft stores a script as text, so the file
a run gets is that text encoded as declared: the program reads exactly the stored text (written
as UTF-8 under a `latin-1` line, `print('café')` printed `cafÃ©`; under an unknown or too narrow
encoding the run died with `SyntaxError: encoding problem`). The save-time syntax check compiles
these same bytes (services/script_checks.py), so a declaration that cannot hold the text refuses
the save instead of failing runs.
"""

from __future__ import annotations

import io
import re
import tokenize

# PEP 263's pattern for the declaration, as `tokenize.detect_encoding` applies it.
_COOKIE_RE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
# Python reads the declaration itself as ASCII, so only encodings that keep ASCII can be declared.
_ASCII = "# coding print('x')\n"
_FIX = "declare utf-8 or remove the line"


class SourceError(ValueError):
    """The text cannot be written in the encoding it declares: `line` (1-based) says where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def declared_encoding(content: str) -> str:
    """The encoding Python reads `content`'s file in (`utf-8` without a declaration), as
    `tokenize.detect_encoding` normalises it (`latin-1` is `iso-8859-1`). Raises SourceError for
    an encoding Python does not know or cannot read source in (one that changes ASCII: UTF-16)."""
    lines = content.split("\n", 2)[:2]
    line = next((number for number, text in enumerate(lines, 1) if _COOKIE_RE.match(text)), 1)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(content.encode()).readline)
    except SyntaxError:
        match = _COOKIE_RE.match(lines[line - 1])
        name = match.group(1) if match else "?"
        raise SourceError(
            line, f"declares the encoding {name!r}, which Python does not know: {_FIX}"
        ) from None
    if _ASCII.encode(encoding) != _ASCII.encode():
        raise SourceError(line, f"declares {encoding}, in which Python cannot read a script: {_FIX}")
    return encoding


def encoded(content: str) -> bytes:
    """`content` as the bytes of its file: UTF-8, or the encoding it declares. Raises SourceError
    naming the first character that encoding cannot hold, or an unknown encoding."""
    encoding = declared_encoding(content)
    if encoding == "utf-8":
        return content.encode()
    try:
        return content.encode(encoding)
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start]
        line = content.count("\n", 0, exc.start) + 1
        raise SourceError(
            line,
            f"{char!r} (U+{ord(char):04X}) cannot be written in {encoding}, the encoding the script "
            "declares on its first lines: declare utf-8, or remove the character",
        ) from None
