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
            lower case: the value as is (it has no newline); upper case: base64 of the value
    body    a ustar archive of the work directory's files (the script), read by `tar -x` to EOF

The loader reads the header with `read` (which takes one byte at a time from a pipe, so it never
consumes the archive), unpacks the archive into its work directory (a tmpfs owned by the run's
user), then `exec`s the command: the script's stdin is then at its end. Values exist only in
memory: in the worker, on the attach socket and in the container's processes. The image needs
`/bin/sh`, `base64` and `tar`, as every supported one has (Debian, Alpine/BusyBox, the official
Python and Terraform images).
"""

from __future__ import annotations

import base64
import io
import re
import tarfile

SECRET_DIR = "/run/opscraft/secrets"
"""Where `file` secrets are written in the container (every container mounts a tmpfs there, as a
warm one cannot know whether its run will have any)."""

# `value=$(...; printf .)` then `${value%.}` keeps trailing newlines that `$(...)` would strip;
# a file's content goes from base64 straight into its file (any byte, no shell variable).
# The loader's own variables carry the reserved OPSCRAFT_ prefix: a parameter named `name` or
# `value` (exported to this shell) would otherwise be overwritten, and the script would get it so.
LOADER = (
    "set --; "
    'while IFS= read -r OPSCRAFT_K && [ -n "$OPSCRAFT_K" ]; do '
    "IFS= read -r OPSCRAFT_N; IFS= read -r OPSCRAFT_D; "
    'case $OPSCRAFT_K in [AE]) OPSCRAFT_D=$(printf %s "$OPSCRAFT_D" | base64 -d; printf .); '
    "OPSCRAFT_D=${OPSCRAFT_D%.};; esac; "
    'case $OPSCRAFT_K in [aA]) set -- "$@" "$OPSCRAFT_D";; '
    '[F]) (umask 0377 && printf %s "$OPSCRAFT_D" | base64 -d '
    f'> "{SECRET_DIR}/$OPSCRAFT_N") || exit 125;; '
    '*) export "$OPSCRAFT_N=$OPSCRAFT_D";; esac; '
    "done; unset OPSCRAFT_K OPSCRAFT_N OPSCRAFT_D; "
    'tar -xf - && exec "$@"; echo "opscraft: the run could not be unpacked in its container" >&2; exit 125'
)
ENTRYPOINT = ["/bin/sh", "-c", LOADER, "opscraft-job"]
"""The command of every run container: the loader, waiting for its job on stdin."""

FAILED_TO_UNPACK = 125
"""The loader's exit code when the job could not be unpacked (no command, no archive, or a
`file` secret that could not be written)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def payload(
    argv: list[str],
    env: dict[str, str],
    files: dict[str, bytes],
    owner: tuple[int, int],
    secret_files: dict[str, str] | None = None,
) -> bytes:
    """The bytes the loader reads: `argv`, `env` and `secret_files` (name -> content, written
    under `SECRET_DIR`; see the module docstring), then a ustar archive of `files` (name ->
    content, mode 0600, owned by `owner` = (uid, gid)). Raises ValueError for an environment or
    file secret name that is not an environment variable name (letters, digits, `_`)."""
    names = [*env, *(secret_files or {})]
    if bad := [name for name in names if not _NAME.fullmatch(name)]:
        raise ValueError(f"not an environment variable name: {', '.join(map(repr, bad))}")
    lines = [_item("a", "", value) for value in argv]
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
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            info.uid, info.gid = owner
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
