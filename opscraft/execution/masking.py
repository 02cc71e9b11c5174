"""Replace secret values in execution output with `***` before it is stored or streamed.

Each value of at least `MIN_LENGTH` characters is masked as itself, as the quoted and escaped
forms in which tools print it (`printed_forms`: shell quoting as bash's xtrace and `printf %q`
write it, JSON, Python literals, YAML, HTML), as its base64 forms (standard and URL-safe
alphabet, padded or not, the parts of it that survive inside a longer encoded blob, and those
broken into lines as `base64` and `openssl base64` write a blob: `WRAP_WIDTHS`) and as its
URL-encoded forms. Matching runs on UTF-8 bytes: a Hyperscan scan (SIMD,
several GB/s) finds each pattern's first bytes (`_key`), and the whole pattern is compared
there. Hyperscan compiles its database without the GIL: a run's masker, built on a thread of the
web process (its worker), no longer stops the server's event loop for the seconds a build of
many or large secrets takes (`bench/bench_masker_loop_stall.py`); an Aho-Corasick automaton,
which the earlier design built, held it throughout. Where Hyperscan has no wheel (Linux on ARM),
an Aho-Corasick automaton finds the keys (same result; its build holds the GIL). Per stream, the
end of a chunk that could be the beginning of a value is held back until the next chunk (or
`flush`), so a value split across two chunks is still found. Escape sequences (colours, `ESC[K`,
hyperlinks: `escape_codes`) are invisible where the output is read (the run page's terminal, the
log download, a notification's excerpt), so a value is also found in the text without them and
masked with the sequences inside it (`grep --color=always HOST` colours a host name inside a
connection URL).
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, urlsplit

import yaml
from ahocorasick_rs import BytesAhoCorasick, Implementation

from opscraft.execution.escape_codes import ANSI_BYTES_RE, ANSI_CUT_BYTES_RE, MAX_HELD_CHARS
from opscraft.execution.printed_forms import printed_forms, shell_readings

try:
    import hyperscan
except ImportError:  # no wheel for this platform: the automaton does the first pass too
    hyperscan = None

MASK = "***"
MIN_LENGTH = 4
# A fragment of an encoded value found inside a longer encoded blob must be at least this long to
# be masked; shorter fragments would hide unrelated output.
MIN_FRAGMENT = 8
_HEAD = 4
# Encoders that break base64 into lines, and the widths they use: 76 (GNU `base64` and `uuencode
# -m`, Python's `base64.encodebytes`, MIME), 64 (`openssl base64`, PEM). A value's base64 forms
# are also masked as these write them: a line feed anywhere in a longer blob's stretch of the
# value (which lands on a line break for about one value in two). Only for values of up to
# `MAX_WRAPPED_BYTES` (passwords, tokens, API keys): each form gives up to 140 broken ones.
WRAP_WIDTHS = (64, 76)
MAX_WRAPPED_BYTES = 96
# Longer values (key files, certificates) are masked as themselves, encoded and line by line, but
# not in every printed form: those would be megabytes of patterns for a 64 KiB value, while its
# lines (base64 text) survive quoting and escaping unchanged.
MAX_PRINTED_FORMS_LENGTH = 4096
# A DFA scans fastest but takes memory and time to build per pattern byte (seconds for 100 KB of
# long patterns, as a 64 KiB key file with its printed forms makes): only for usual sizes; above,
# a contiguous NFA builds in milliseconds and scans a little slower.
_DFA_MAX_PATTERN_BYTES = 16 * 1024
# Hyperscan limits literal lengths: a pattern is looked for by its first bytes (`_key`).
_KEY_BYTES = 256
_ENCODING = "utf-8"
_ERRORS = "surrogatepass"
_ESC = b"\x1b"
# A held-back tail (at most a pattern's length) is located in the end of the buffer alone.
_TAIL_WALK = 4096
_SEQUENCES = re.compile(b"(" + ANSI_BYTES_RE.pattern + b")")  # `split` keeps the sequences


def _base64_forms(raw: bytes, *, wrapped: bool = True) -> set[bytes]:
    """The base64 forms of `raw` (module docstring); with `wrapped`, also as line-wrapping
    encoders write them (`_wrapped`), for values of up to `MAX_WRAPPED_BYTES`."""
    forms: set[bytes] = set()
    for shift in range(3):
        # With `shift` bytes before it, the value's own 3-byte groups encode to fixed characters;
        # the partial groups at either end depend on the neighbouring bytes and are left out.
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0 : (shift + len(raw)) // 3 * 4]
        if len(core) >= MIN_FRAGMENT:
            forms.add(core)
    exact = base64.b64encode(raw)
    standard = forms | {exact}  # the standard alphabet, padded: what wrapping encoders write
    forms |= {exact, exact.rstrip(b"=")}
    forms |= {form.replace(b"+", b"-").replace(b"/", b"_") for form in forms}
    if wrapped and len(raw) <= MAX_WRAPPED_BYTES:
        forms |= {broken for form in standard for broken in _wrapped(form)}
    return forms


def _wrapped(form: bytes) -> set[bytes]:
    """`form` as an encoder that breaks its lines every `width` characters (`WRAP_WIDTHS`) writes
    it inside a longer blob: a line feed after its first 1 to `width` characters (wherever the
    line it starts on ends), then after every `width` more; the form unbroken is not included.

    A first line shorter than `_HEAD` is left out (the pattern starts on the next line, when that
    is at least `MIN_FRAGMENT` long): with it, any line of output ending in one of the forms'
    first characters would be the beginning of a pattern, held back until more output came."""
    out: set[bytes] = set()
    for width in WRAP_WIDTHS:
        for first in range(1, min(width, len(form) - 1) + 1):
            lines = [form[:first], *(form[at : at + width] for at in range(first, len(form), width))]
            broken = b"\n".join(lines if first >= _HEAD else lines[1:])
            if len(broken) >= MIN_FRAGMENT:
                out.add(broken)
    return out


def _url_forms(value: str) -> set[bytes]:
    return {quote(value, safe="").encode(), quote(value).encode(), quote_plus(value, safe="").encode()}


def patterns_for(value: str) -> set[bytes]:
    """Every byte string that reveals `value` and is masked (empty when `value` is too short).

    A value with blank edges (a token read from a file ends with a line break, a pasted one may
    carry spaces) is also masked without them, in every form: scripts and tools strip it before
    use (`.strip()`, `$(...)`, an unquoted `$TOKEN`) and then print the bare token. A value of
    blanks only (stored before the vault refused them) is not masked: it would blank out every
    indentation of the output.

    A value holding quotes is also masked as a shell (or Ansible's `command` module) reads it
    between quotes, without them (`shell_readings`), in every form but wrapped base64 (a reading
    is printed, not encoded: its wrapped forms would only cost building time).

    A value not in Unicode's NFC (an accent as its own character: `e` + U+0301, as macOS file
    names and some pastes give) is masked in its NFC form too, in every form: Terraform (cty)
    turns every string into NFC, so it printed such a secret composed, in clear.

    A value holding several credentials (a JSON or YAML document, a `.env` file) also has each
    of them masked, in every form but wrapped base64 (`document_parts`): a tool printed one of
    them alone, in clear."""
    if len(value) < MIN_LENGTH or not value.strip():
        return set()
    bare = value.strip()
    forms = _forms(value)
    if bare != value and len(bare) >= MIN_LENGTH:
        forms |= _forms(bare)
    composed = unicodedata.normalize("NFC", bare)
    if composed != bare and len(composed) >= MIN_LENGTH:
        forms |= _forms(composed)
    if len(value) <= MAX_PRINTED_FORMS_LENGTH:
        for reading in shell_readings(bare):
            if len(reading) >= MIN_LENGTH and reading.strip():  # never blanks only
                forms |= _forms(reading, wrapped=False)
    for part in document_parts(bare):
        if part != bare:
            forms |= _forms(part, wrapped=False)
    return forms


# A value holding several credentials (a credentials JSON, a kubeconfig, a `.env` file) also has
# each one of at least `MIN_FRAGMENT` characters masked (`document_parts`), at most this many (the
# first in document order), each in every form but wrapped base64.
MAX_PARTS = 64
# Nodes of such a document read at most (a YAML alias is read once, however often it is used).
_MAX_PART_NODES = 10_000
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# A line of a `.env`, INI or properties file: `NAME=value`, `export NAME="value"`, `name = value`.
# The value is taken whole and stripped after: a lazy `.*?` before `\s*$` backtracked over every
# run of blanks inside it (a 64 KiB value took seconds to build a run's masker).
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?(?P<name>[A-Za-z_][\w.-]*)\s*[=:](?P<value>.*)")
# The names of the keys (and variables) whose values are credentials: `password`, `DB_PASS`,
# `token`, `client-key-data`, `private_key`, `aws_secret_access_key`, `auth`, `api_key`... A
# value under another key (a kubeconfig's cluster name `kubernetes`, a server URL, a user name)
# is left alone: masked wherever it shows, it blanked out ordinary output (`kubectl get svc`).
_CREDENTIAL_NAME = re.compile(r"pass|pwd|secret|token|key|cred|auth|cert|private|sig|session|cookie", re.I)


def document_parts(value: str) -> list[str]:
    """The credentials inside `value` when it holds several (a service account's credentials
    JSON, a kubeconfig, a `.env` file): the strings of a JSON document or of a YAML mapping or
    sequence under a key that names a credential (`_document_strings`: numbers and booleans
    left out), and the values of the `NAME=value` (or `name = value`, `export NAME="value"`,
    quotes removed) lines of a value of several lines whose name names one (`_assigned`), and
    the password of each URL in it (`postgresql://app:PASSWORD@db/app`, as written and
    percent-decoded: `_url_passwords`). Each of at least `MIN_FRAGMENT` characters without its
    blank edges, once, in document order, at most `MAX_PARTS`; [] for a value that is none of
    these (a password, a key file).

    A tool prints such a credential alone (`jq -r .private_key "$GOOGLE_APPLICATION_CREDENTIALS"`,
    `kubectl config view --raw -o jsonpath='{..token}'`, `. ./app.env; echo "$DB_PASSWORD"`):
    it is neither the whole value nor one of its lines (a service account's private key is one
    JSON line with `\\n` escapes)."""
    found: dict[str, None] = {}
    for part in itertools.chain(_document_strings(value), _assigned(value), _url_passwords(value)):
        if len(part.strip()) >= MIN_FRAGMENT:
            found.setdefault(part.strip())
        if len(found) == MAX_PARTS:
            break
    return list(found)


def _document_strings(value: str) -> list[str]:
    """The credentials of `value` read as a JSON document or a YAML mapping or sequence: its
    strings whose nearest key names a credential (`_CREDENTIAL_NAME`), or that no key names (a
    list of tokens), in document order (at most `_MAX_PART_NODES` nodes read; an alias once);
    [] when it is neither."""
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        if "\n" not in value.strip() or ":" not in value:
            return []  # one line that is not JSON: a password with a colon, never a document
        try:
            document = yaml.load(value, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
        except (yaml.YAMLError, ValueError, RecursionError):
            return []
    if not isinstance(document, dict | list):
        return []
    strings: list[str] = []
    seen: set[int] = set()
    todo: list[tuple[object, bool]] = [(document, True)]  # each node, and whether it is a credential
    for _ in range(_MAX_PART_NODES):
        if not todo:
            break
        node, credential = todo.pop()
        if isinstance(node, str) and credential:
            strings.append(node)
        elif isinstance(node, dict) and id(node) not in seen:
            seen.add(id(node))
            todo.extend((v, bool(_CREDENTIAL_NAME.search(str(k)))) for k, v in reversed(node.items()))
        elif isinstance(node, list) and id(node) not in seen:
            seen.add(id(node))
            todo.extend((item, credential) for item in reversed(node))
    return strings


# A URL with a user and password (`scheme://user:password@host`), inside any text. A scheme is
# read as at most `_MAX_SCHEME` characters (RFC 3986 sets no limit; registered ones are far
# shorter): unbounded, each letter of a long run started a scheme scanned to the run's end
# (seconds for a 64 KiB value).
_MAX_SCHEME = 32
_URL_WITH_PASSWORD = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.-]{{0,{_MAX_SCHEME - 1}}}://[^\s/@:]*:[^\s/@]+@[^\s'\"<>]*"
)


def _url_passwords(value: str) -> list[str]:
    """The password of each URL with one in `value` (`_URL_WITH_PASSWORD`), as written and
    percent-decoded: a script takes it out of a connection URL (`PGPASSWORD=$(...)` under
    `set -x` prints it alone)."""
    out = []
    for url in _URL_WITH_PASSWORD.findall(value):
        try:
            written = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
        except ValueError:  # an invalid IPv6 host: no password read
            continue
        out += [written, unquote(written)]
    return out


def _assigned(value: str) -> list[str]:
    """The values of the `NAME=value` lines of `value` when it has several lines (`_ASSIGNMENT`)
    whose name names a credential (`_CREDENTIAL_NAME`), a pair of quotes around one removed."""
    if "\n" not in value.strip():
        return []
    out = []
    for line in value.splitlines():
        if (said := _ASSIGNMENT.match(line)) and _CREDENTIAL_NAME.search(said.group("name")):
            text = said.group("value").strip()
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1]
            out.append(text)
    return out


def _forms(value: str, *, wrapped: bool = True) -> set[bytes]:
    """The masked forms of `value` as it is: printed, encoded and (several lines) line by line."""
    raw = value.encode(_ENCODING, _ERRORS)
    printed = printed_forms(value) if len(value) <= MAX_PRINTED_FORMS_LENGTH else {value}
    forms = {form.encode(_ENCODING, _ERRORS) for form in printed}
    forms |= _base64_forms(raw, wrapped=wrapped) | _url_forms(value)
    # A multi-line value (a key file) also leaks line by line.
    lines = [line.strip() for line in value.splitlines()] if "\n" in value else []
    forms |= {line.encode(_ENCODING, _ERRORS) for line in lines if len(line) >= MIN_FRAGMENT}
    return forms


@dataclass
class _Pending:
    data: bytes = b""
    emitted: int = 0  # leading bytes of `data` already sent (masked) in an earlier result


class Masker:
    """Masks secret values in the text of several streams (`stdout`, `stderr`) of one execution."""

    def __init__(self, values: list[str]) -> None:
        """Build the matchers of every form of `values` (`patterns_for`). Their compilation, most
        of the time (seconds for megabytes of patterns), runs without the GIL where Hyperscan
        has a wheel (`_Literals`): another thread of the process (the web server's event loop)
        runs meanwhile. The rest is Python code, which hands the GIL over between bytecodes."""
        patterns: set[bytes] = set()
        for value in values:  # one union per value: a union of them all held the GIL throughout
            patterns |= patterns_for(value)
        self._active = bool(patterns)
        self._pending: dict[str, _Pending] = {}
        if not self._active:
            return
        self._max_len = max(map(len, patterns))
        keyed: dict[bytes, list[tuple[int, bytes]]] = {}
        for pattern in patterns:
            key, offset = _key(pattern)
            keyed.setdefault(key, []).append((offset, pattern))
        self._candidates = list(keyed.values())
        self._keys = _Literals(list(keyed))
        self._by_head: dict[bytes, list[bytes]] = {}
        for pattern in patterns:
            self._by_head.setdefault(pattern[:_HEAD], []).append(pattern)
        self._heads = _Literals(list(self._by_head))
        self._short = {p[:k] for p in patterns for k in range(1, _HEAD)}
        # Output mostly arrives in whole lines: a tail ending in a newline starts no pattern
        # unless a pattern (a multi-line value) holds a newline itself.
        self._line_safe = not any(b"\n" in p for p in patterns)

    def mask(self, stream: str, text: str) -> str:
        """The masked text that can be released now; a possible start of a value is kept back."""
        if not self._active or not text:
            return text
        pending = self._pending.pop(stream, None)
        buf = (pending.data if pending else b"") + text.encode(_ENCODING, _ERRORS)
        start = pending.emitted if pending else 0
        seen = _Visible.of(buf)
        spans = self._spans(buf) if seen is None else self._seen_spans(buf, seen)
        hold = self._hold_start(buf)
        if seen is not None:
            hold = min(hold, seen.raw_offset(self._hold_start(seen.text)))
        end = max(hold, start)
        for s, e in spans:
            if s < hold < e:  # a complete match runs into the held-back tail: release all of it
                end = max(end, e)
        if hold < len(buf):
            self._pending[stream] = _Pending(buf[hold:], end - hold)
        if not pending and not spans and hold == len(buf):
            return text
        return _render(buf, spans, start, end)

    def flush(self, stream: str, *, cut: bool = False) -> str:
        """Release whatever `mask` kept back for `stream` (call when the stream ends).

        With `cut` the stream is cut short (the output cap) rather than ended: what was kept
        back is the beginning of a value whose rest will never be seen, so it is released as the
        mask, never in clear."""
        pending = self._pending.pop(stream, None)
        if pending is None:
            return ""
        size = len(pending.data)
        seen = None if cut else _Visible.of(pending.data)
        if cut:
            spans = [(0, size)]
        else:
            spans = self._spans(pending.data) if seen is None else self._seen_spans(pending.data, seen)
        return _render(pending.data, spans, pending.emitted, size)

    def _spans(self, buf: bytes) -> list[tuple[int, int]]:
        """Merged byte ranges covered by any pattern (overlaps included), in order: each
        occurrence of a pattern's key (`_key`) is checked against the patterns of that key."""
        found = []
        for index, at in self._keys.starts(buf):
            for offset, pattern in self._candidates[index]:
                start = at - offset
                if start >= 0 and buf.startswith(pattern, start):
                    found.append((start, start + len(pattern)))
        return _merged(found)

    def _seen_spans(self, buf: bytes, seen: _Visible) -> list[tuple[int, int]]:
        """`_spans` of `buf`, and of its text without escape sequences (`seen`) mapped back onto
        `buf` (each with the sequences inside it), merged."""
        found = self._spans(buf) + [
            (seen.raw_offset(s), seen.raw_offset(e - 1) + 1) for s, e in self._spans(seen.text)
        ]
        return _merged(found)

    def _hold_start(self, buf: bytes) -> int:
        """Start of the longest tail of `buf` that is the beginning (not all) of some pattern."""
        size = len(buf)
        if self._line_safe and buf.endswith(b"\n"):
            return size
        low = max(0, size - self._max_len + 1)
        for _, s in self._heads.starts(buf[low:]):
            rest = buf[low + s :]
            if any(len(p) > len(rest) and p.startswith(rest) for p in self._by_head[rest[:_HEAD]]):
                return low + s
        for k in range(min(_HEAD - 1, size - low), 0, -1):
            if buf[size - k :] in self._short:
                return size - k
        return size


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` (byte ranges, any order, overlapping or not) sorted, overlapping ones joined."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


class _Visible:
    """A buffer's text as a reader sees it: without its escape sequences (`ANSI_BYTES_RE`), nor
    one cut at its end (`ANSI_CUT_BYTES_RE`: the next chunk completes it); `raw_offset` tells
    where a byte of it was in the buffer, worked out when first asked (seldom: a value or the
    beginning of one in coloured output)."""

    def __init__(self, buf: bytes, end: int) -> None:
        self._buf = buf
        self._end = end
        self.text = ANSI_BYTES_RE.sub(b"", buf[:end])
        self._starts: list[int] = []  # offset in `text` of each text part, ascending
        self._origins: list[int] = []  # offset in the buffer of each text part

    @classmethod
    def of(cls, buf: bytes) -> _Visible | None:
        """The visible text of `buf`, or None when it holds no escape character (most output)."""
        if _ESC not in buf:
            return None
        cut = ANSI_CUT_BYTES_RE.search(buf, max(len(buf) - MAX_HELD_CHARS, 0))
        return cls(buf, cut.start() if cut else len(buf))

    def raw_offset(self, offset: int) -> int:
        """Where the byte at `offset` of `text` is in the buffer; the end of `text` is the end of
        the buffer."""
        if offset >= len(self.text):
            return len(self._buf)
        behind = len(self.text) - offset
        if behind <= _TAIL_WALK:  # a held-back tail: only the end of the buffer is looked at
            return self._from_end(behind)
        if not self._starts:
            sizes = list(map(len, _SEQUENCES.split(self._buf[: self._end])))  # text, sequence, ..., text
            self._origins = list(itertools.accumulate(sizes, initial=0))[::2]
            self._starts = list(itertools.accumulate(sizes[::2], initial=0))
        part = bisect.bisect_right(self._starts, offset) - 1
        return self._origins[part] + offset - self._starts[part]

    def _from_end(self, behind: int) -> int:
        """The buffer offset of the byte `behind` (at least 1) bytes before the end of `text`,
        found in a window at the end of the buffer, made longer until the byte is in it. The
        window's first text part is not trusted unless the window starts the buffer: it may
        begin inside a sequence, whose end would read as text."""
        window = 2 * behind + 64
        while True:
            start = max(0, self._end - window)
            parts = _SEQUENCES.split(self._buf[start : self._end])  # text, sequence, ..., text
            pos, left = self._end, behind
            for index in range(len(parts) - 1, -1, -1):
                size = len(parts[index])
                if index % 2 == 0:
                    if left <= size and (index > 0 or start == 0):
                        return pos - left
                    left -= size
                pos -= size
            window *= 4


class _Literals:
    """Finds every occurrence (overlapping ones too) of a list of byte strings (`keys`) in a
    buffer. Built with Hyperscan (SIMD, several GB/s), whose compilation runs without the GIL;
    where it has no wheel (Linux on ARM), or for keys holding a NUL byte (the binding reads a
    literal up to its first NUL; the vault refuses such values, a process's environment cannot
    hold them), with an Aho-Corasick automaton, whose construction holds the GIL (`ahocorasick_rs`
    1.0.3's `BytesAhoCorasick`)."""

    def __init__(self, keys: list[bytes]) -> None:
        self._lengths = list(map(len, keys))
        self._automaton: BytesAhoCorasick | None = None
        if hyperscan is None or any(b"\0" in key for key in keys):
            small = sum(self._lengths) <= _DFA_MAX_PATTERN_BYTES
            dfa = Implementation.DFA if small else Implementation.ContiguousNFA
            self._automaton = BytesAhoCorasick(keys, implementation=dfa)
            return
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._database.compile(expressions=keys, ids=list(range(len(keys))), elements=len(keys), literal=True)

    def starts(self, data: bytes) -> list[tuple[int, int]]:
        """(index of the key, its start offset in `data`) of each occurrence, by start offset."""
        if self._automaton is not None:
            matches = self._automaton.find_matches_as_indexes(data, overlapping=True)
            return sorted(((i, s) for i, s, _ in matches), key=lambda match: match[1])
        found: list[tuple[int, int]] = []

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> None:
            found.append((index, end - self._lengths[index]))

        self._database.scan(data, match_event_handler=on_match)
        return sorted(found, key=lambda match: match[1])


def _key(pattern: bytes) -> tuple[bytes, int]:
    """The part of `pattern` looked for in the output, and its offset in the pattern: for a
    pattern of several lines the first `MIN_FRAGMENT` bytes of its first line that long, so
    the many line-broken forms of one base64 form (`_wrapped`) share a few keys (Hyperscan's
    compile time grows with their number); else its first `_KEY_BYTES` (Hyperscan limits a
    literal's length; the rest is compared where the key is found)."""
    if b"\n" in pattern:
        at = 0
        for line in pattern.split(b"\n"):
            if len(line) >= MIN_FRAGMENT:
                return line[:MIN_FRAGMENT], at
            at += len(line) + 1
    return pattern[:_KEY_BYTES], 0


def _render(buf: bytes, spans: list[tuple[int, int]], start: int, end: int) -> str:
    """`buf[start:end]` as text with every span replaced by the mask."""
    parts: list[bytes] = []
    pos = start
    for s, e in spans:
        if e <= pos:
            continue
        if s >= end:
            break
        parts.append(buf[pos:s] if s > pos else b"")
        parts.append(MASK.encode())
        pos = e
    parts.append(buf[pos:end] if end > pos else b"")
    return b"".join(parts).decode(_ENCODING, _ERRORS)
