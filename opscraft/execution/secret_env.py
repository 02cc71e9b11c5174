"""Secrets into a container through its standard input, so Docker never stores them.

Docker keeps a container's configuration, environment included, in its state directory on disk
for as long as the container exists. Secret values therefore do not go into that environment:
the container starts a small POSIX-sh loader that reads `NAME` / base64(value) line pairs from
stdin up to an empty line, exports them and `exec`s the real command. The values exist only in
memory: in the worker, on the attach socket and in the container's processes.

`file` secrets travel the same way, their name line prefixed with `@`: the loader writes the
value (umask 0377, so mode 0400) into `SECRET_DIR`, a tmpfs owned by the run's user that the
runner mounts, and the environment variable NAME (plain, in the container configuration) holds
the path. The tmpfs goes with the container.
"""

from __future__ import annotations

import base64

# `value=$(...; printf .)` then `${value%.}` keeps trailing newlines that `$(...)` would strip.
# The loader's own variables carry the reserved OPSCRAFT_ prefix: a parameter named `name` or
# `value` (exported to this shell) would otherwise be overwritten, and the script would get it so.
# Names are environment variable names (letters, digits, '_'), so `@NAME` is a safe file name.
SECRET_DIR = "/run/opscraft/secrets"
LOADER = (
    'while IFS= read -r OPSCRAFT_N && [ -n "$OPSCRAFT_N" ]; do IFS= read -r OPSCRAFT_D; '
    'case "$OPSCRAFT_N" in @*) (umask 0377 && printf %s "$OPSCRAFT_D" | base64 -d '
    f'> "{SECRET_DIR}/${{OPSCRAFT_N#@}}") || exit 125;; '
    '*) OPSCRAFT_V=$(printf %s "$OPSCRAFT_D" | base64 -d; printf .); '
    'export "$OPSCRAFT_N=${OPSCRAFT_V%.}";; esac; done; unset OPSCRAFT_N OPSCRAFT_D OPSCRAFT_V; exec "$@"'
)


def wrap(argv: list[str]) -> list[str]:
    """`argv` started by the loader (the image needs /bin/sh and base64, as every supported one has)."""
    return ["/bin/sh", "-c", LOADER, "opscraft-secrets", *argv]


def payload(secrets: dict[str, str], files: dict[str, str] | None = None) -> bytes:
    """What the loader reads: per secret its name (`@NAME` for a file) and its base64 value,
    then an empty line."""
    entries = [*secrets.items(), *((f"@{name}", value) for name, value in (files or {}).items())]
    pairs = "".join(f"{name}\n{base64.b64encode(value.encode()).decode()}\n" for name, value in entries)
    return (pairs + "\n").encode()
