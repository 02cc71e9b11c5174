"""The forms in which the tools OpsCraft runs print a string: quoted, escaped, as a literal.

`printed_forms(value)` gives the text between the quotes of each form (the quotes themselves
are not part of a value, and a value is often printed inside a longer quoted string). Each
function follows the tool's own rule, cited in its docstring; tests/test_masking.py checks
them against bash, `json`, `repr`, PyYAML, `shlex` and `html` themselves.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata

# Characters `printf %q` (bash lib/sh/shquote.c, `sh_backslash_quote`) puts a backslash before.
_BACKSLASHED = frozenset(" !\"$&'()*,;<>?[\\]^`{|}")
# bash lib/sh/strtrans.c `ansic_quote`: the letter escapes of $'...'.
_ANSI_C = {"\x1b": "E", "\a": "a", "\v": "v", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
# PyYAML emitter.py `ESCAPE_REPLACEMENTS`, for double-quoted scalars.
_YAML = {
    "\0": "0",
    "\x07": "a",
    "\x08": "b",
    "\x09": "t",
    "\x0a": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\x0d": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}
_TERRAFORM = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that no form below changes (tested against `_all_forms`).
_UNCHANGED = re.compile(r"[A-Za-z0-9_.:/@+=%-]*")
_UNPRINTABLE_IN_C = frozenset({"Cc", "Cs", "Cn", "Zl", "Zp"})
_YAML_ALWAYS = frozenset('"\\\x85\u2028\u2029\ufeff')


def _printable(ch: str) -> bool:
    """Python's rule: not a control, format, separator (but space), surrogate or unassigned."""
    return ch.isprintable() or ch == " "


def _shell_printable(ch: str) -> bool:
    """glibc's `iswprint`, which bash asks: spaces such as U+00A0 and format characters print."""
    return unicodedata.category(ch) not in _UNPRINTABLE_IN_C


def shell_single_quoted(value: str) -> str:
    """Inside `'...'` as bash writes it for `set -x` and `${v@Q}`: `'` becomes `'\\''`."""
    return value.replace("'", "'\\''")


def shlex_quoted(value: str) -> str:
    """Inside `'...'` as Python's `shlex.quote` (and so Ansible) writes it: `'` becomes `'"'"'`."""
    return value.replace("'", "'\"'\"'")


def shell_backslashed(value: str) -> str:
    """As `printf %q` writes a value without control characters: a backslash before each shell
    metacharacter, before `#` at the start and before `~` at the start or after `=` or `:`."""
    out = []
    for index, ch in enumerate(value):
        previous = value[index - 1] if index else ""
        if (
            ch in _BACKSLASHED
            or (ch == "#" and index == 0)
            or (ch == "~" and (index == 0 or previous in "=:"))
        ):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def shell_ansi_c(value: str, *, utf8: bool = True) -> str:
    """Inside `$'...'` as bash's `printf %q`, `${v@Q}` write a value holding control characters.

    Letter escapes for the usual controls, `\\'` and `\\\\`, three-digit octal for other
    unprintable bytes; with `utf8=False` (the C locale) every non-ASCII byte is octal too.
    """
    out = []
    for ch in value:
        if ch in _ANSI_C:
            out.append("\\" + _ANSI_C[ch])
        elif ch in "'\\":
            out.append("\\" + ch)
        elif _shell_printable(ch) and (utf8 or ch.isascii()):
            out.append(ch)
        else:
            out.extend(f"\\{byte:03o}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def json_string(value: str, *, ascii_only: bool) -> str:
    """Inside a JSON string (RFC 8259): Python's `json` and Ansible's output; `ascii_only` is
    `ensure_ascii` (`\\u00e9` instead of `é`)."""
    return json.dumps(value, ensure_ascii=ascii_only)[1:-1]


def go_json_string(value: str) -> str:
    """Inside a JSON string as Go's encoding/json writes it (Terraform's `-json` output):
    also `<`, `>`, `&`, U+2028 and U+2029 as `\\u` escapes."""
    text = json_string(value, ascii_only=False)
    for ch in "<>&\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def terraform_string(value: str) -> str:
    r"""Inside a quoted string in Terraform's human output (plan, apply, `output`): `\"`, `\\`,
    `\n`, `\r`, `\t`, and `\uNNNN` for other unprintable characters; the rest as it is."""
    out = []
    for ch in value:
        if ch in _TERRAFORM:
            out.append(_TERRAFORM[ch])
        elif _printable(ch):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def python_literal(value: str, quote: str, *, ascii_only: bool = False) -> str:
    """Inside a Python string literal as `repr` (`ascii` with `ascii_only`) writes it, between
    `quote` characters: backslash escapes, `\\xNN`/`\\uNNNN`/`\\UNNNNNNNN` for the rest."""
    out = []
    for ch in value:
        if ch in "\\" + quote:
            out.append("\\" + ch)
        elif ch in "\t\n\r":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}[ch])
        elif _printable(ch) and (not ascii_only or ch.isascii()):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def python_bytes_literal(value: str) -> str:
    """Inside a Python bytes literal (`b'...'`) of the value's UTF-8 encoding."""
    return repr(value.encode("utf-8", "surrogatepass"))[2:-1]


def yaml_double_quoted(value: str, *, allow_unicode: bool) -> str:
    """Inside a double-quoted YAML scalar as PyYAML (Ansible's YAML output) writes it
    (emitter.py `write_double_quoted`, without its folding of lines longer than the width)."""
    out = []
    for ch in value:
        if ch not in _YAML_ALWAYS and ("\x20" <= ch <= "\x7e" or (allow_unicode and _yaml_unicode(ch))):
            out.append(ch)
        elif ch in _YAML:
            out.append("\\" + _YAML[ch])
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
            )
    return "".join(out)


def _yaml_unicode(ch: str) -> bool:
    return "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"


def yaml_single_quoted(value: str) -> str:
    """Inside a single-quoted YAML scalar (and an SQL string literal): `'` becomes `''`."""
    return value.replace("'", "''")


def html_escaped(value: str) -> str:
    """As `html.escape` (and Jinja's autoescape) writes it: `&<>"'` as character references."""
    return html.escape(value)


def printed_forms(value: str) -> set[str]:
    """The value and every quoted or escaped form above, plus the value and its shell-quoted
    forms quoted once more as a JSON string or in shell single quotes (a tool's JSON output
    showing a command that quotes the value; `set -x` tracing `echo "${S@Q}"`). Mostly they all
    equal the value: only values holding quotes, backslashes, control, non-ASCII or shell
    characters add patterns (20 to 40 for such a value)."""
    if _UNCHANGED.fullmatch(value):  # a token-like value: every form is the value itself
        return {value}
    return _all_forms(value)


def _all_forms(value: str) -> set[str]:
    shell = {value, shell_single_quoted(value), shlex_quoted(value)}
    if all(_shell_printable(ch) for ch in value):
        shell.add(shell_backslashed(value))
    else:
        shell.add(shell_ansi_c(value))
    if not value.isascii():
        shell.add(shell_ansi_c(value, utf8=False))
    nested = {json_string(form, ascii_only=ascii) for form in shell for ascii in (True, False)}
    nested |= {shell_single_quoted(form) for form in shell}
    return (
        shell
        | nested
        | {
            go_json_string(value),
            terraform_string(value),
            python_literal(value, "'"),
            python_literal(value, '"'),
            python_literal(value, "'", ascii_only=True),
            python_bytes_literal(value),
            yaml_double_quoted(value, allow_unicode=True),
            yaml_double_quoted(value, allow_unicode=False),
            yaml_single_quoted(value),
            html_escaped(value),
        }
    )
