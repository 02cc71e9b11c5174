"""A run's job handed to its container over standard input, so Docker never stores any of it.

Docker keeps a container's configuration (command, environment) in its state directory on disk
for as long as the container exists, and a warm container (`warm_pool.py`) is created before
anyone knows which run it will serve. So every container starts the same small POSIX-sh loader
(`LOADER`) and receives everything run-specific on its attached stdin:

    header  per item three lines: a kind, a name, a value; then an empty line
              `a` / `A`  one argument of the command (the name line is empty)
              `e` / `E`  one environment variable (parameters, secrets, OPSCRAFT_EXECUTION_ID)
              `F`        one `file` secret: written (umask 0377, so mode 0400) to
                         `SECRET_DIR`/name, a tmpfs owned by the run's user; the command's
                         environment holds the path (`commands.secret_file_env`)
              `t`        the run's end token (`end_token`): random, new for every run
              `w`        wait after the end record (`keep_after_end`): the container stays up
                         until it is removed, so that files of its work directory can still be
                         read (a tmpfs volume, which lasts only while the container runs)
            lower case: the value as is (it has no newline); upper case: base64 of the value
    body    a ustar archive of the work directory's files (the script), read by `tar -x` to EOF

The loader reads the header with `read` (which takes one byte at a time from a pipe, so it never
consumes the archive), unpacks the archive into its work directory (a tmpfs owned by the run's
user) with `tar` in an empty environment (the run's variables, exported by then, are the
script's, not the loader's tools': GNU tar reads options from `TAR_OPTIONS`), then runs the
command as its child: the script's stdin is then at its end. When the
command ends, the loader writes the run's end record (`end_record`: the token and the exit
status) on both stdout and stderr and exits with the same status. Each stream is a pipe, so the
record arrives after everything the script wrote on that stream; once both records are read the
runner knows the exit status without waiting for Docker to report the container's end (`wait`,
then its removal: 60-140 ms). The token is a shell variable of the loader, never exported and
never an argument, so the script's environment does not hold it and output the script does
not control cannot end its run early: a record with another token is output like any other
bytes. A run whose record is missing (the container was killed: timeout, cancel, the OOM
killer) or whose status says a signal ended the script (128 and above) gets its exit status
from Docker, the authority on how a container ended. Values exist only in
memory: in the worker, on the attach socket and in the container's processes. The image needs
`/bin/sh`, `base64`, `env` and `tar` (and `sleep`, for a run asked to wait: `w`), as every
supported one has (Debian, Alpine/BusyBox, the official Python and Terraform images).
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import tarfile
from pathlib import PurePosixPath

SECRET_DIR = "/run/opscraft/secrets"
"""Where `file` secrets are written in the container (every container mounts a tmpfs there, as a
warm one cannot know whether its run will have any)."""

_END_PREFIX = "\\036opscraft-end "
"""How an end record starts, as `printf` writes it: the byte 0x1e (record separator), a word."""

# `value=$(...; printf .)` then `${value%.}` keeps trailing newlines that `$(...)` would strip;
# a file's content goes from base64 straight into its file (any byte, no shell variable).
# The loader's own variables carry the reserved OPSCRAFT_ prefix: a parameter named `name` or
# `value` (exported to this shell) would otherwise be overwritten, and the script would get it so.
KEEP_AFTER_END_SECONDS = 600
"""How long a loader asked to wait after its end record (`w`) waits at most: the runner removes
its container within seconds; this only bounds a container whose worker died meanwhile (the next
start's sweep removes it anyway)."""
LOADER = (
    "set --; OPSCRAFT_T=; OPSCRAFT_W=; "
    'while IFS= read -r OPSCRAFT_K && [ -n "$OPSCRAFT_K" ]; do '
    "IFS= read -r OPSCRAFT_N; IFS= read -r OPSCRAFT_D; "
    'case $OPSCRAFT_K in [AE]) OPSCRAFT_D=$(printf %s "$OPSCRAFT_D" | base64 -d; printf .); '
    "OPSCRAFT_D=${OPSCRAFT_D%.};; esac; "
    'case $OPSCRAFT_K in [aA]) set -- "$@" "$OPSCRAFT_D";; '
    '[F]) (umask 0377 && printf %s "$OPSCRAFT_D" | base64 -d '
    f'> "{SECRET_DIR}/$OPSCRAFT_N") || exit 125;; '
    "t) OPSCRAFT_T=$OPSCRAFT_D;; w) OPSCRAFT_W=1;; "
    '*) export "$OPSCRAFT_N=$OPSCRAFT_D";; esac; '
    "done; unset OPSCRAFT_K OPSCRAFT_N OPSCRAFT_D; "
    # tar runs with an empty environment: GNU tar reads options from TAR_OPTIONS, and the run's
    # variables (parameters, secrets) are already exported here.
    'env -i PATH="$PATH" tar -xf - '
    '|| { echo "opscraft: the run could not be unpacked in its container" >&2; exit 125; }; '
    # The shell's own messages (`Killed` after a signal) go nowhere: the script's stderr is its
    # own. The command runs in a subshell: dash prints such a message while a redirection of the
    # command itself is still in place, so the redirection must be the subshell's.
    'exec 3>&2 2>/dev/null; ("$@" 2>&3 3>&-); OPSCRAFT_S=$?; '
    '[ -z "$OPSCRAFT_T" ] || { '
    f"printf '{_END_PREFIX}%s %s\\n' \"$OPSCRAFT_T\" $OPSCRAFT_S; "
    f"printf '{_END_PREFIX}%s %s\\n' \"$OPSCRAFT_T\" $OPSCRAFT_S >&3; }}; "
    # Asked to wait (`w`): after a script that ended by itself, stay up (streams closed) until the
    # runner has read the work directory and removes the container; bounded if it never does.
    f'[ -z "$OPSCRAFT_W" ] || [ $OPSCRAFT_S -ge 128 ] || sleep {KEEP_AFTER_END_SECONDS} '
    ">/dev/null 2>&1 3>&-; "
    "exit $OPSCRAFT_S"
)
ENTRYPOINT = ["/bin/sh", "-c", LOADER, "opscraft-job"]
"""The command of every run container: the loader, waiting for its job on stdin."""

FAILED_TO_UNPACK = 125
"""The loader's exit code when the job could not be unpacked (no command, no archive, or a
`file` secret that could not be written)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADER_NAMES = frozenset(
    {"OPSCRAFT_K", "OPSCRAFT_N", "OPSCRAFT_D", "OPSCRAFT_T", "OPSCRAFT_S", "OPSCRAFT_W"}
)
"""The loader's own shell variables: an exported one of these names would hand the script the
end token (or break the loader), so no job may carry one."""
_STATUS = re.compile(rb"(\d{1,3})\n")
_PARTIAL_STATUS = re.compile(rb"\d{0,3}")


def new_end_token() -> str:
    """A run's end token: 32 hex digits from the system's CSPRNG (`secrets`), new for every run."""
    return secrets.token_hex(16)


class EndScanner:
    """Finds the loader's end record in one output stream (stdout or stderr) of one run.

    `feed(data)` returns the bytes that are output: everything before the record, never the
    record itself nor anything after it. Bytes that could be the start of a record split across
    reads are held back until the next `feed` shows what they are (only a tail that matches the
    record's prefix, so ordinary output is never delayed); `flush()` returns them when the stream
    ends without a record. `status` is the exit status the record carried, None before it.
    Raises nothing: a malformed record is output like any other bytes.
    """

    def __init__(self, token: str) -> None:
        self._prefix = b"\x1eopscraft-end " + token.encode() + b" "
        self._held = b""
        self.status: int | None = None

    def feed(self, data: bytes) -> bytes:
        """Pass this stream's output bytes through until the loader's end record; returns the bytes that
        are output, holding back a tail that may begin a record split across reads. Once the record is
        found, `status` holds its exit status and every later byte is dropped.
        """
        if self.status is not None:
            return b""
        data, self._held = self._held + data, b""
        start = 0
        while (found := data.find(self._prefix, start)) >= 0:
            tail = data[found + len(self._prefix) :]
            if match := _STATUS.match(tail):
                self.status = int(match[1])
                return data[:found]
            if _PARTIAL_STATUS.fullmatch(tail):  # the status is still on its way
                self._held = data[found:]
                return data[:found]
            start = found + 1
        for cut in range(max(start, len(data) - len(self._prefix) + 1), len(data)):
            if data[cut] == 0x1E and self._prefix.startswith(data[cut:]):
                self._held = data[cut:]
                return data[:cut]
        return data

    def flush(self) -> bytes:
        """The bytes held back, when the stream ended without a record."""
        held, self._held = self._held, b""
        return held if self.status is None else b""


def payload(
    argv: list[str],
    env: dict[str, str],
    files: dict[str, bytes],
    owner: tuple[int, int],
    secret_files: dict[str, str] | None = None,
    end_token: str = "",
    keep_after_end: bool = False,
) -> bytes:
    """The bytes the loader reads: `argv`, `env` and `secret_files` (name -> content, written
    under `SECRET_DIR`; see the module docstring), the run's `end_token` (from `new_end_token`;
    empty: the loader writes no end record), `keep_after_end` (the loader then waits after its
    end record, `w`, when the script ended by itself: status below 128), then a ustar archive
    of `files` (name -> content, mode 0600, owned by `owner` = (uid, gid)). Raises ValueError
    for an environment or file secret name that is not an environment variable name (letters,
    digits, `_`) or is one of the loader's own variables."""
    names = [*env, *(secret_files or {})]
    if bad := [name for name in names if not _NAME.fullmatch(name)]:
        raise ValueError(f"not an environment variable name: {', '.join(map(repr, bad))}")
    if reserved := sorted(_LOADER_NAMES.intersection(names)):
        raise ValueError(f"a name the container's loader uses itself: {', '.join(reserved)}")
    if end_token and not end_token.isalnum():
        raise ValueError("an end token is letters and digits only")
    lines = [f"t\n\n{end_token}\n"] if end_token else []
    lines += ["w\n\n\n"] if keep_after_end else []
    lines += [_item("a", "", value) for value in argv]
    lines += [_item("e", name, value) for name, value in env.items()]
    lines += [
        f"F\n{name}\n{base64.b64encode(value.encode()).decode()}\n"
        for name, value in (secret_files or {}).items()
    ]
    return "".join(lines).encode() + b"\n" + _archive(files, owner)


def _item(kind: str, name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        return f"{kind.upper()}\n{name}\n{base64.b64encode(value.encode()).decode()}\n"
    return f"{kind}\n{name}\n{value}\n"


def _archive(files: dict[str, bytes], owner: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    folders = sorted({str(parent) for name in files for parent in PurePosixPath(name).parents} - {"."})
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for folder in folders:  # a file's folder first (`connection_plugins/`), the owner's alone
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o700
            entry.uid, entry.gid = owner
            tar.addfile(entry)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            info.uid, info.gid = owner
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
