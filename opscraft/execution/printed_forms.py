"""The forms in which the tools OpsCraft runs print a string: quoted, escaped, as a literal.

`printed_forms(value)` gives the text between the quotes of each form (the quotes themselves
are not part of a value, and a value is often printed inside a longer quoted string). Each
function follows the tool's own rule, cited in its docstring; tests/test_masking.py checks
them against bash, `json`, `repr`, PyYAML, `shlex` and `html` themselves. A printed form is a
string too, and tools print it again: the forms are composed up to two layers deep
(`MAX_DEPTH`), which real Ansible, Python and bash output of nested strings is tested against.
"""

from __future__ import annotations

import html
import json
import re
import shlex
import unicodedata
from collections.abc import Callable
from functools import partial

# Characters `printf %q` (bash lib/sh/shquote.c, `sh_backslash_quote`) puts a backslash before.
_BACKSLASHED = frozenset(" !\"$&'()*,;<>?[\\]^`{|}")
# Characters bash's `sh_double_quote` (lib/sh/shquote.c) puts a backslash before.
_DOUBLE_QUOTED = frozenset('"$`\\')
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
# Go strconv.Quote's letter escapes (strconv/quote.go `appendEscapedRune`).
_GO = {ch: "\\" + letter for ch, letter in zip('\a\b\f\n\r\t\v"\\', 'abfnrtv"\\', strict=True)}
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


def shell_double_quoted(value: str) -> str:
    """Inside `"..."` as bash's `declare -p`, `export -p` and `typeset -p` write a value without
    control characters (lib/sh/shquote.c `sh_double_quote`): a backslash before `"`, `$`, `` ` ``
    and `\\`, every other character as it is (a space or `!` too, which `printf %q` escapes)."""
    return "".join("\\" + ch if ch in _DOUBLE_QUOTED else ch for ch in value)


def shell_backslashed(value: str, *, at_start: bool = True) -> str:
    """As `printf %q` writes a value without control characters: a backslash before each shell
    metacharacter, before `#` at the start and before `~` at the start or after `=` or `:`.

    `at_start=False`: the value inside a longer quoted string, after an ordinary character.
    """
    out = []
    for index, ch in enumerate(value):
        first = index == 0 and at_start
        previous = value[index - 1] if index else ""
        if ch in _BACKSLASHED or (ch == "#" and first) or (ch == "~" and (first or previous in "=:")):
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


def _escaped(value: str, letters: dict[str, str], *, hex_ascii: bool) -> str:
    """`value` with the `letters` escapes, other printable characters as they are and the rest as
    `\\uNNNN` or `\\UNNNNNNNN` (below U+0080 as `\\xNN` when `hex_ascii`, as Go writes them)."""
    out = []
    for ch in value:
        if ch in letters:
            out.append(letters[ch])
        elif _printable(ch):
            out.append(ch)
        else:
            code = ord(ch)
            short = f"\\x{code:02x}" if hex_ascii and code < 0x80 else f"\\u{code:04x}"
            out.append(short if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def terraform_string(value: str) -> str:
    r"""Inside a quoted string in Terraform's human output (plan, apply, `output`): `\"`, `\\`,
    `\n`, `\r`, `\t`, and `\uNNNN` for other unprintable characters; the rest as it is."""
    return _escaped(value, _TERRAFORM, hex_ascii=False)


def go_quoted(value: str) -> str:
    r"""Inside a string as Go's `strconv.Quote` (`%q`) writes it, which Terraform's plan and apply
    use for the values they show: `\a \b \f \n \r \t \v \" \\`, other ASCII controls and DEL
    as `\xNN`, other unprintable characters as `\uNNNN` or `\UNNNNNNNN`; the rest as it is."""
    return _escaped(value, _GO, hex_ascii=True)


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


def shell_printf_q(value: str, *, utf8: bool = True) -> str:
    """As bash's `printf %q` writes a value: backslashes when every character prints (in the
    locale: `utf8=False` is the C locale, where non-ASCII bytes do not), else ANSI-C quoting."""
    if all(_shell_printable(ch) and (utf8 or ch.isascii()) for ch in value):
        return shell_backslashed(value)
    return shell_ansi_c(value, utf8=utf8)


def shell_printf_q_inside(value: str) -> str:
    """`printf %q` of a longer string holding the value after an ordinary character: a `#` or
    `~` that starts the value is not escaped there."""
    if all(_shell_printable(ch) for ch in value):
        return shell_backslashed(value, at_start=False)
    return shell_ansi_c(value)


def shell_readings(value: str) -> set[str]:
    """What a shell's quote removal reads from the value when a template put it between double
    quotes, single quotes or bare into a command line, where that is one word other than the
    value: Ansible's `command` module splits its free-form arguments with `shlex.split`
    (POSIX rules, as a shell), so `command: echo "{{ v }}"` with v = `{"a": "b-c"}` runs
    `echo` with `{a: b-c}` and prints that in its result. Empty for a value without quotes or
    backslashes (nothing to remove) and for readings with unbalanced quotes (no command ran)."""
    if not any(ch in value for ch in "\"'\\"):
        return set()
    readings: set[str] = set()
    for quote in ('"', "'", ""):
        try:
            words = shlex.split(quote + value + quote)
        except ValueError:  # "No closing quotation" / "No escaped character"
            continue
        if len(words) == 1 and words[0] != value:
            readings.add(words[0])
    return readings


# Every single escaping above: each is a layer a value may be printed through, and a printed
# form is itself a string that another tool may print again (Ansible's `debug` of `to_json`,
# `print(json.dumps(repr(x)))`, `set -x` of `curl -d '{"p": ...}'`).
LAYERS: tuple[Callable[[str], str], ...] = (
    shell_single_quoted,
    shlex_quoted,
    shell_double_quoted,
    shell_printf_q,
    partial(shell_printf_q, utf8=False),
    shell_printf_q_inside,
    partial(json_string, ascii_only=True),
    partial(json_string, ascii_only=False),
    go_json_string,
    terraform_string,
    go_quoted,
    partial(python_literal, quote="'"),
    partial(python_literal, quote='"'),
    partial(python_literal, quote="'", ascii_only=True),
    python_bytes_literal,
    partial(yaml_double_quoted, allow_unicode=True),
    partial(yaml_double_quoted, allow_unicode=False),
    yaml_single_quoted,
    html_escaped,
)
# Nesting depth composed: a value printed through up to this many layers.
MAX_DEPTH = 2
# Values longer than this get only single layers: nested forms grow up to 12 times the value
# (an emoji as `\\U0001f600`), and long values (keys, certificates) are masked line by line.
MAX_NESTED_LENGTH = 512


def printed_forms(value: str) -> set[str]:
    """The value and its form through every composition of up to `MAX_DEPTH` of the `LAYERS`
    (only one layer for values longer than `MAX_NESTED_LENGTH` characters).

    At most 1 + 19 + 19 * 19 = 381 strings, but most compositions coincide: a value holding
    quotes, backslashes, control, non-ASCII or shell characters gives 10 to 70 distinct forms,
    in well under a millisecond; a token-like value gives only itself.
    """
    if _UNCHANGED.fullmatch(value):  # a token-like value: every form is the value itself
        return {value}
    return _all_forms(value, MAX_DEPTH if len(value) <= MAX_NESTED_LENGTH else 1)


def _all_forms(value: str, depth: int = MAX_DEPTH) -> set[str]:
    forms = {value}
    layer = {value}
    for _ in range(depth):
        layer = {escape(form) for form in layer for escape in LAYERS} - forms
        forms |= layer
    return forms
