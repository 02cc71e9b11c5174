"""DockerRunner: each run in a fresh, locked-down container that is always removed.

Limits and hardening per run: memory (swap equal, so none extra), CPU share, a pids limit, no
network unless the script enables it, a read-only root filesystem, `/tmp` as a small noexec
tmpfs, every capability dropped, `no-new-privileges`, the `nobody` user, an init process, no
logging driver (the output is read once, through the attach stream). The work directory is
also the run's HOME (with the variables of `run_env`). The container is a PID namespace whose
init ends with the script's main process, so nothing the script started outlives the run, and
a kill (timeout, cancel) ends every process in it. The script and its files
go into an anonymous volume with `put_archive` before the start (which works on a read-only
root filesystem because the target is a volume). Each worker thread has its own Docker client.
"""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import struct
import tarfile
import threading
from typing import Any

from docker.errors import APIError, DockerException, ImageNotFound, NotFound

import docker
from opscraft.execution import secret_env, terraform_plan
from opscraft.execution.commands import Command, build
from opscraft.execution.events import Stream
from opscraft.execution.run_env import run_env
from opscraft.execution.spec import OutputSink, RunControl, RunnerError, RunResult, RunSpec

LABEL_MANAGED = "opscraft.managed"
LABEL_WORKER = "opscraft.worker"
LABEL_EXECUTION = "opscraft.execution"
MOUNT = "/opscraft"
WORKDIR = f"{MOUNT}/work"
USER = "65534:65534"
PIDS_LIMIT = 256
TMPFS = {"/tmp": "rw,noexec,nosuid,size=100m"}  # noqa: S108 (inside the container)
# `file` secrets: written by the loader (secret_env), readable by the run's user only.
SECRET_TMPFS = "rw,noexec,nosuid,nodev,size=4m,mode=0700,uid={uid},gid={gid}"
READ_SIZE = 65536
PING_TIMEOUT = 3
_FRAME = struct.Struct(">BxxxI")
_STREAMS: dict[int, Stream] = {1: "stdout", 2: "stderr"}


class DockerRunner:
    """Runs a `RunSpec` in a fresh container and reports its exit code and whether it ran out of memory."""

    name = "docker"

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._local = threading.local()

    def _api(self) -> docker.APIClient:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = docker.from_env().api
        return api

    def available(self) -> bool:
        """True when a Docker engine answers (checked with a short timeout)."""
        try:
            client = docker.from_env(timeout=PING_TIMEOUT)
        except DockerException:
            return False
        try:
            return bool(client.ping())
        except (DockerException, OSError):
            return False
        finally:
            client.close()

    def sweep(self) -> int:
        """Remove containers a previous run of this worker left behind; returns how many."""
        api = self._api()
        found = api.containers(all=True, filters={"label": f"{LABEL_WORKER}={self.worker_id}"})
        for container in found:
            with contextlib.suppress(NotFound):
                api.remove_container(container["Id"], force=True, v=True)
        return len(found)

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        api = self._api()
        command = build(spec, secret_env.SECRET_DIR)
        secret_stdin = bool(spec.env or spec.secret_files)
        try:
            container = self._create(api, spec, command)
        except APIError as exc:
            raise RunnerError(f"Docker could not create the container: {exc.explanation or exc}") from None
        try:
            api.put_archive(container, MOUNT, _archive(command.files))
            params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": int(secret_stdin)}
            sock = api.attach_socket(container, params=params)
            control.on_kill(lambda: _kill(container))
            try:
                api.start(container)
                raw = getattr(sock, "_sock", sock)
                if secret_stdin:  # secrets travel on stdin, never in the stored container config
                    raw.sendall(secret_env.payload(spec.env, spec.secret_files))
                    raw.shutdown(socket.SHUT_WR)
                _pump(raw, output)
            finally:
                sock.close()
            status = api.wait(container)
            state = api.inspect_container(container)["State"]
            return RunResult(
                exit_code=int(status["StatusCode"]),
                oom_killed=bool(state.get("OOMKilled")),
                files=_collect(api, container, spec.collect),
            )
        except APIError as exc:
            raise RunnerError(
                f"Docker failed while running the container: {exc.explanation or exc}"
            ) from None
        finally:
            with contextlib.suppress(DockerException):
                api.remove_container(container, force=True, v=True)

    def _create(self, api: docker.APIClient, spec: RunSpec, command: Command) -> str:
        assert spec.image
        host_config = api.create_host_config(
            mem_limit=f"{spec.memory_mb}m",
            memswap_limit=f"{spec.memory_mb}m",
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=PIDS_LIMIT,
            network_mode="bridge" if spec.network_enabled else "none",
            read_only=True,
            tmpfs=_tmpfs(spec),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,
            log_config={"type": "none"},
        )
        secret_stdin = bool(spec.env or spec.secret_files)
        argv = secret_env.wrap(command.argv) if secret_stdin else command.argv
        plain_env = {name: value for name, value in command.env.items() if name not in spec.env}
        options: dict[str, Any] = {
            "entrypoint": argv[:1],
            "command": argv[1:],
            "user": USER,
            "working_dir": WORKDIR,
            "environment": {**run_env(WORKDIR), **plain_env},
            "stdin_open": secret_stdin,  # docker-py sets StdinOnce with it: EOF after the payload
            "labels": {
                LABEL_MANAGED: "true",
                LABEL_WORKER: self.worker_id,
                LABEL_EXECUTION: str(spec.execution_id),
            },
            "volumes": [MOUNT],
            "network_disabled": not spec.network_enabled,
            "host_config": host_config,
        }
        try:
            return str(api.create_container(spec.image, **options)["Id"])
        except ImageNotFound:
            try:
                api.pull(spec.image)
            except DockerException:
                raise RunnerError(
                    f"image {spec.image} is not available: pull it or configure another"
                ) from None
            return str(api.create_container(spec.image, **options)["Id"])


def _tmpfs(spec: RunSpec) -> dict[str, str]:
    """`/tmp`, and for `file` secrets a small tmpfs of the run's user at `secret_env.SECRET_DIR`."""
    if not spec.secret_files:
        return TMPFS
    uid, gid = USER.split(":")
    return {**TMPFS, secret_env.SECRET_DIR: SECRET_TMPFS.format(uid=uid, gid=gid)}


def _archive(files: dict[str, bytes]) -> bytes:
    """A tar of the work directory, owned by the container user so the script may write there."""
    uid, gid = (int(part) for part in USER.split(":"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(WORKDIR.rsplit("/", 1)[-1])
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, uid, gid
        tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder.name}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _collect(api: docker.APIClient, container: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The files `names` of the ended container's work directory that exist (regular files of
    at most `terraform_plan.MAX_FILE_BYTES`; the volume outlives the stop until removal)."""
    found: dict[str, bytes] = {}
    for name in names:
        try:
            stream, stat = api.get_archive(container, f"{WORKDIR}/{name}")
        except NotFound:
            continue
        if int(stat.get("size", 0)) > terraform_plan.MAX_FILE_BYTES:
            continue
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None and member.isfile() else None
            if extracted is not None:
                found[name] = extracted.read()
    return found


def _kill(container: str) -> None:
    """Kill from the watchdog thread, with a client of its own."""
    client = docker.from_env()
    try:
        with contextlib.suppress(NotFound):
            client.api.kill(container)
    except APIError as exc:
        if exc.status_code != 409:  # 409: the container is not running any more
            raise
    finally:
        client.close()


def _pump(sock: Any, output: OutputSink) -> None:
    """Demultiplex the attach stream (8-byte frame headers) into `output` until it closes."""
    buffer = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            if not selector.select(output.tick()):
                continue
            data = sock.recv(READ_SIZE)
            if not data:
                break
            buffer += data
            del buffer[: _demux(buffer, output)]
    output.tick()


def _demux(buffer: bytearray, output: OutputSink) -> int:
    """Feed every complete frame in `buffer` (adjacent frames of a stream together); return bytes used."""
    pos = 0
    run: list[bytes] = []
    run_kind = 0
    while len(buffer) - pos >= _FRAME.size:
        kind, size = _FRAME.unpack_from(buffer, pos)
        end = pos + _FRAME.size + size
        if len(buffer) < end:
            break
        if kind != run_kind and run:
            output.feed(_STREAMS[run_kind], b"".join(run))
            run = []
        if kind in _STREAMS:
            run_kind = kind
            run.append(bytes(buffer[pos + _FRAME.size : end]))
        pos = end
    if run:
        output.feed(_STREAMS[run_kind], b"".join(run))
    return pos
