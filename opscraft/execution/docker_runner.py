"""DockerRunner: each run in a fresh, locked-down container that is always removed.

Limits and hardening per run: memory (swap equal, so none extra), CPU share, a pids limit, no
network unless the script enables it, a read-only root filesystem, `/tmp` as a small noexec
tmpfs, every capability dropped, `no-new-privileges`, the `nobody` user, no logging driver (the
output is read once, through the attach stream). The work directory is a tmpfs owned by the
run's user (its pages count against the memory limit) and is also the run's HOME (with the
variables of `run_env`). The container is a PID namespace whose PID 1 is the loader of
`container_job` (no separate init process: Docker's `init` made every start 7-20 % slower,
docs/benchmarks.md). The loader waits for the script, and a POSIX shell's wait reaps every
process orphaned in the container meanwhile; it ends with the script's main process, so
nothing the script started outlives the run; a kill (timeout, cancel) ends every process in it.

Every container runs the loader of `container_job`: the command, the parameters, the secrets
and the script's files reach it over its attached stdin, never through the container's stored
configuration or a volume; `file` secrets are written by the loader into a small tmpfs of the
run's user (`container_job.SECRET_DIR`, in every container). A run takes a warm container of
its profile from the worker's pool (`warm_pool.py`: created, attached and started beforehand
with the same configuration, so a warm run whose script exits makes no Docker call: its exit
status comes with the loader's end record, `container_job`) or, when none is warm, creates,
attaches and starts one itself (a cold start); either way the container serves that one run
and is removed afterwards, off the run's path (`removals.py`: when the runner is quiet, at the
latest 10 s after the run). A cold start writes the job on stdin before `start`, so the loader
has it as it starts. A run that leaves files to
collect (`RunSpec.collect`: a Terraform plan) starts cold with its work directory on an
anonymous volume that is the same tmpfs (`_kept_workdir`), and its loader waits after the
script's end (`container_job`, `w`) so the files are read while the container still runs (a
tmpfs volume is emptied when its container stops). It was a volume on the engine's disk, with no
bound: a Terraform `local-exec` (or a plan's data source) could fill the host's disk.
Each worker thread has its own Docker client. Every container (warm or cold) runs under the
OCI runtime the runner is given (OPSCRAFT_DOCKER_RUNTIME, e.g. `crun`: less CPU per container
than runc, docs/benchmarks.md "Session 41"), else under the engine's default.

The engine may stop, restart or stop answering (frozen) at any time. A run it fails ends in
`error` saying so (a lost connection used to end it as "the docker runner failed unexpectedly");
a kill (deadline, cancel) it does not answer within `KILL_TIMEOUT_SECONDS` abandons the run
(its attach stream is closed, so the run's thread is not held for as long as the engine is
frozen); every other call a run makes (create, attach, start, the wait once its stream ended)
gives up after `ENGINE_TIMEOUT_SECONDS`, so a frozen engine ends a cold start in `error` naming
the engine within that time (a cold start's calls run on a thread of their own, which a cancel
or timeout does not wait for: `_unless_stopped`); a removal it cannot do is tried again once it answers
(`available`); `engine_error` says why it does not answer (the Workers page and the warm pool
status show it).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import select
import selectors
import socket
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from docker.errors import APIError, DockerException, ImageNotFound, NotFound

import docker
from opscraft.config import ConfigError
from opscraft.execution import container_job, terraform_plan
from opscraft.execution.commands import build, said_paths
from opscraft.execution.events import Stream
from opscraft.execution.image_watch import ImageWatch
from opscraft.execution.removals import DeferredRemovals
from opscraft.execution.run_env import run_env
from opscraft.execution.said_paths import saying
from opscraft.execution.spec import OutputSink, RunControl, RunnerError, RunResult, RunSpec
from opscraft.execution.warm_pool import Profile, WarmPool

LABEL_MANAGED = "opscraft.managed"
LABEL_WORKER = "opscraft.worker"
LABEL_EXECUTION = "opscraft.execution"
LABEL_WARM = "opscraft.warm"
LABEL_INSTALLATION = "opscraft.installation"
"""The id of the worker's database (`installation.stored_id`): workers of two installations on
one Docker engine under the same id (two deployments' `worker-1`) sweep only their own."""
MOUNT = "/opscraft"
WORKDIR = f"{MOUNT}/work"
USER = "65534:65534"
PIDS_LIMIT = 256
WORKDIR_TMPFS = "rw,exec,nosuid,nodev,size=1g,mode=700,uid=65534,gid=65534"
"""The work directory's tmpfs: its pages count against the run's memory limit. A run whose files
are read afterwards has the same tmpfs as a volume of the `local` driver (`_kept_workdir`)."""
TMPFS = {
    "/tmp": "rw,noexec,nosuid,size=100m",  # noqa: S108 (inside the container)
    WORKDIR: WORKDIR_TMPFS,
    # `file` secrets, written by the loader (`container_job`), readable by the run's user only.
    container_job.SECRET_DIR: "rw,noexec,nosuid,nodev,size=4m,mode=0700,uid=65534,gid=65534",
}
KILLED = 128 + 9  # exit code of a process ended by SIGKILL
SIGNALLED = 128  # from here on, an exit code says a signal ended the process
READ_SIZE = 65536
STOP_CHECK_SECONDS = 0.1
"""How often a run whose cold start waits for the engine looks whether it was stopped meanwhile,
or the engine's answer is late (`_unless_stopped`)."""
CREATING = "its container was still being created (it is removed once the engine answers)"
COLD_START_THREAD = "opscraft-cold-start"
STARTING = "its container was still being attached to and started (it is removed once the engine answers)"
PING_TIMEOUT = 3
KILL_TIMEOUT_SECONDS = 10
"""How long a kill (or interrupt) waits for the engine before the run is abandoned."""
ENGINE_TIMEOUT_SECONDS = 20
"""How long a run's (and the warm pool's) calls to the engine wait for its answer: create, attach,
start, inspect, wait after the container's end, remove (per read of the answer). docker-py's
default is 60 s: a frozen engine held a cold start's create for a minute before the run ended.
A working engine answers these in well under a second, and in a few seconds on a loaded host.
An image pull is not bounded by it (it takes as long as the registry does, with docker-py's
60 s per read), nor is the wait for a running container's end (bounded by the run's deadline).
docker-py's attach takes no timeout (the client's is not passed to it): a cold start's attach is
bounded by `_unless_stopped`; the warm pool's waits for the engine's answer, off any run's path."""
ENGINE_ERRORS = (DockerException, OSError)
"""What a call to an engine that stopped, restarted or does not answer raises (docker-py's own
errors; `requests`' connection errors and timeouts are `OSError`s)."""
_FRAME = struct.Struct(">BxxxI")
_STREAMS: dict[int, Stream] = {1: "stdout", 2: "stderr"}
_ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}


_T = TypeVar("_T")


class _At(Protocol):
    """Told what a cold start does next (`_unless_stopped`); raises `_Abandoned` once it was
    abandoned. `bounded`: the engine answers it within `ENGINE_TIMEOUT_SECONDS`."""

    def __call__(self, doing: str, bounded: bool = True) -> None: ...


def _no_watch(doing: str, bounded: bool = True) -> None:
    """The `_At` of a creation no run waits for (the warm pool's)."""


class UnknownRuntime(ConfigError):
    """The Docker engine answers but has not registered the runtime OPSCRAFT_DOCKER_RUNTIME names."""


@dataclass(frozen=True)
class _Job:
    """What a run writes on its container's stdin, and the end token its loader will echo."""

    payload: bytes
    end_token: str


@dataclass(frozen=True)
class _Attached:
    """A started container waiting for its job, and its attach stream (stdin, stdout, stderr)."""

    container: str
    sock: Any
    written: int = 0
    """How many bytes of the job went on stdin before the start (a cold start's)."""
    image: str = ""
    """The id of the image it was created from (a warm one's: `image_watch.py`)."""


class DockerRunner:
    """Runs a `RunSpec` in a fresh container and reports its exit code and whether it ran out of memory.

    `warm_pool_size` containers per profile are kept warm (0: every run starts cold) for the
    profiles used within `warm_pool_idle_seconds`, up to `warm_pool_burst` while its runs take
    them faster than they are created (`warm_pool.py`); `start_pool`/`stop_pool` run the pool.
    `runtime`: the OCI runtime of every container (one the engine registered, `check_runtime`);
    None: the engine's default.
    """

    name = "docker"

    def __init__(
        self,
        worker_id: str,
        warm_pool_size: int = 0,
        warm_pool_idle_seconds: float = 3600,
        warm_pool_burst: int = 0,
        *,
        runtime: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.installation = ""
        """The id of the worker's database, its containers' `LABEL_INSTALLATION` (set by
        `Worker.start` before any container is made or swept)."""
        self.runtime = runtime
        self._local = threading.local()
        self.containers: dict[int, str] = {}
        """Execution id -> id of the container running it, while it runs (warm or cold)."""
        self.engine_error: str | None = None
        """Why the engine did not answer the latest `available` check; None while it does."""
        self._unremoved: set[str] = set()
        """Containers whose removal failed for want of an engine: queued again once it answers."""
        self._unremoved_lock = threading.Lock()
        self.pool: WarmPool[_Attached] = WarmPool(
            self._create_warm,
            self._discard,
            warm_pool_size,
            warm_pool_idle_seconds,
            waiting=lambda warm: _waiting(warm.sock),
            burst=warm_pool_burst,
        )
        # `_remove` looked up at each call (as the pool's): a wrapper on the runner sees them all.
        self._removals = DeferredRemovals(lambda container: self._remove(container), busy=self.pool.creating)
        """Used containers, removed when the runner is quiet (`removals.py`)."""
        self._images = ImageWatch(self.pool, _client)
        """Removes the warm containers of an image since retagged or deleted (`image_watch.py`)."""

    def _api(self) -> docker.APIClient:
        """This thread's API client (each worker and pool thread has its own), whose calls give up
        after `ENGINE_TIMEOUT_SECONDS` without an answer."""
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = _client(timeout=ENGINE_TIMEOUT_SECONDS).api
        return api

    def available(self) -> bool:
        """True when a Docker engine answers (checked with a short timeout) and knows `runtime`;
        else `engine_error` says why. Once it answers, the removals that failed meanwhile are
        queued again."""
        try:
            client = _client(timeout=PING_TIMEOUT)
            try:
                client.ping()
                self._check_runtime(client)
            finally:
                client.close()
        except ENGINE_ERRORS as exc:
            self.engine_error = f"the Docker engine does not answer: {_reason(exc)}"
            return False
        except UnknownRuntime as exc:
            self.engine_error = str(exc)
            return False
        self.engine_error = None
        with self._unremoved_lock:
            again, self._unremoved = self._unremoved, set()
        for container in again:
            self._removals.put(container)
        return True

    def check_runtime(self) -> None:
        """Raise `UnknownRuntime` when the engine answers but has not registered `runtime`, for a
        worker's start to stop with it; nothing when no runtime is set or no engine answers (then
        `available` checks it once one does)."""
        if self.runtime is None:
            return
        with contextlib.suppress(*ENGINE_ERRORS):
            client = _client(timeout=PING_TIMEOUT)
            try:
                self._check_runtime(client)
            finally:
                client.close()

    def _check_runtime(self, client: docker.DockerClient) -> None:
        """`UnknownRuntime` unless `runtime` is None or among the engine's runtimes (`docker info`)."""
        if self.runtime is None:
            return
        known = sorted(client.info().get("Runtimes") or {})
        if self.runtime not in known:
            raise UnknownRuntime(
                f"the Docker engine has no runtime {self.runtime!r} (OPSCRAFT_DOCKER_RUNTIME); it has "
                f"{', '.join(known) or 'none'}: register it (dockerd --add-runtime "
                f'{self.runtime}=/usr/bin/{self.runtime}, or "runtimes" in daemon.json) or unset '
                "OPSCRAFT_DOCKER_RUNTIME"
            )

    def stats(self) -> dict[str, object]:
        """The warm pool's figures (`WarmPool.stats`), its `error` being why the engine does not
        answer when it does not (as of the latest `available`)."""
        stats = self.pool.stats()
        if self.engine_error is not None:
            stats["error"] = self.engine_error
        return stats

    def sweep(self, worker_id: str | None = None, created_before: float | None = None) -> int:
        """Remove containers a previous run of this worker (or of the lost worker `worker_id`)
        left behind, warm ones included; returns how many. With `created_before` (Unix time,
        seconds), only those created before it: what a lost worker started before it was declared
        lost, not what it started after coming back under the same id. The engine lists creation
        times in whole seconds, so the comparison is to the second. With an `installation`, only
        its containers (`LABEL_INSTALLATION`) and those made before the label existed: a worker
        of another installation under the same id on this engine keeps its runs."""
        api = self._api()
        found = api.containers(all=True, filters={"label": f"{LABEL_WORKER}={worker_id or self.worker_id}"})
        if self.installation:
            ours = (None, self.installation)
            found = [c for c in found if (c.get("Labels") or {}).get(LABEL_INSTALLATION) in ours]
        if created_before is not None:
            found = [c for c in found if c.get("Created", 0) < created_before]
        for container in found:
            with contextlib.suppress(NotFound):
                api.remove_container(container["Id"], force=True, v=True)
        return len(found)

    def _installation(self) -> dict[str, str]:
        """The installation label of this runner's containers: none without an installation
        (a runner outside a worker: tests)."""
        return {LABEL_INSTALLATION: self.installation} if self.installation else {}

    def start_pool(self) -> None:
        """Start keeping containers warm (after `sweep`); used containers wait for quiet again
        (after a `stop_pool`)."""
        self._removals.start()
        self.pool.start()
        self._images.start()

    def stop_pool(self) -> None:
        """Remove the warm containers and stop refilling; remove the used containers still
        queued for removal (at once) and end the removals' thread (a run ending later still
        has its container removed, at once)."""
        self._images.stop()
        self.pool.stop()
        self._removals.stop()

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        """Run `spec` in a Docker container (a warm one from the pool when it fits, else a new one) and
        stream its output to `output`.

        Raises RunnerError when the job cannot be handed to a container. Runs that collect files (a
        Terraform plan) always start cold, with their work directory on a tmpfs volume.
        """
        api = self._api()
        command = build(spec, container_job.SECRET_DIR)
        assert spec.image
        profile = Profile(spec.image, spec.memory_mb, spec.cpus, spec.network_enabled, USER)
        end_token = container_job.new_end_token()
        try:
            job = container_job.payload(
                command.argv,
                command.env,
                command.files,
                _owner(),
                spec.secret_files,
                end_token,
                keep_after_end=bool(spec.collect),
            )
        except ValueError as exc:
            raise RunnerError(f"the run cannot be handed to its container: {exc}") from None
        with self._removals.starting():  # no queued removal begins meanwhile (`removals.py`)
            if spec.collect:
                # A run that leaves files behind (a Terraform plan) starts cold with its work
                # directory on a tmpfs volume, read before the container is removed.
                attached = self._start_cold(api, spec, profile, job, control)
            else:
                attached = self.pool.take(profile) or self._start_cold(api, spec, profile, job, control)
        secret_dir = container_job.SECRET_DIR if spec.secret_files else ""
        with saying(output, said_paths(spec.script_type, WORKDIR, secret_dir)) as said:
            return self._run_in(api, attached, _Job(job, end_token), spec, said, control)

    def _start_cold(
        self, api: docker.APIClient, spec: RunSpec, profile: Profile, job: bytes, control: RunControl
    ) -> _Attached:
        """A container of its own for the run of `spec`, created, attached and started, with
        (the start of) its `job` written on its stdin before the start. The engine's calls run on
        a thread of their own (`_unless_stopped`): once `control` stops the run (cancel, timeout,
        shutdown) RunnerError is raised at once, and what the engine answers later is undone
        there. Raises RunnerError when the engine fails or does not answer."""
        labels = {LABEL_EXECUTION: str(spec.execution_id)}

        def start(at: _At) -> _Attached:
            try:
                container = self._create(api, profile, labels, keep_workdir=bool(spec.collect), at=at)
            except ImageMissing as exc:
                raise RunnerError(exc.said(spec.script_type)) from None
            except ENGINE_ERRORS as exc:
                raise _failed("create", exc) from None
            try:
                at(STARTING)
                return self._attach_and_start(api, container, job)
            except BaseException as exc:
                self._removals.put(container)
                if isinstance(exc, ENGINE_ERRORS):
                    raise _failed("start", exc) from None
                raise

        def tidy(attached: _Attached | None) -> None:
            """After the run was stopped: the container started late is removed, and the
            abandoned client (the run's thread took a new one) closed."""
            if attached is not None:
                with contextlib.suppress(OSError):
                    attached.sock.close()
                self._removals.put(attached.container)
            api.close()

        try:
            return _unless_stopped(start, control, tidy)
        except _Abandoned:
            self._local.api = None  # the step still uses it: this thread takes a new one
            raise

    def _attach_and_start(self, api: docker.APIClient, container: str, job: bytes = b"") -> _Attached:
        """Attach to the created `container` (before it starts: no output can be missed), write
        what its stdin takes at once of `job` (the engine holds it until the loader reads it), then
        start it: its loader has its job (or its start) as it starts, with no round trip after
        `start`; a warm container (no `job`) waits for it."""
        sock = api.attach_socket(container, params=_ATTACH)
        try:
            written = _write_ahead(getattr(sock, "_sock", sock), job)
            api.start(container)
        except BaseException:
            sock.close()
            raise
        return _Attached(container, sock, written)

    def _run_in(
        self,
        api: docker.APIClient,
        attached: _Attached,
        job: _Job,
        spec: RunSpec,
        output: OutputSink,
        control: RunControl,
    ) -> RunResult:
        """Hand the started, attached container its job, stream its output until the loader's
        end record (or the stream's end), and queue the container's removal (whatever happens).

        The record's exit status ends the run at once; Docker's `wait` (and, after a SIGKILL,
        its state, to tell an OOM kill) decides when the record is missing (the container was
        killed) and when the status says a signal ended the script. The files of a run that
        leaves some are read once its record came, while its loader waits (`container_job`, `w`):
        the tmpfs volume holding them is emptied when the container stops."""
        container = attached.container
        self.containers[spec.execution_id] = container
        raw = getattr(attached.sock, "_sock", attached.sock)
        abandoned: list[str] = []

        def abandon(step: Callable[[str], None]) -> Callable[[], None]:
            """`step` (kill or interrupt); if the engine does not answer it, the run is abandoned:
            its attach stream is closed, which ends `_pump`."""

            def act() -> None:
                try:
                    step(container)
                except ENGINE_ERRORS as exc:
                    abandoned.append(_reason(exc))
                    with contextlib.suppress(OSError):
                        raw.shutdown(socket.SHUT_RDWR)
                    raise

            return act

        try:
            # After the start: a stop requested before (a cancel at claim time) kills it at once.
            control.on_kill(abandon(_kill), abandon(_interrupt), spec.stop_grace_seconds)
            try:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # killed already
                    raw.sendall(job.payload[attached.written :])
                    raw.shutdown(socket.SHUT_WR)  # StdinOnce: the loader's stdin ends here
                status = _pump(raw, output, job.end_token)
            finally:
                attached.sock.close()
            if abandoned:
                raise RunnerError(
                    f"the Docker engine did not answer the kill ({abandoned[0]}): the run was "
                    f"abandoned; its container {container[:12]} is removed once the engine answers"
                )
            if status is not None and status < SIGNALLED:
                return RunResult(exit_code=status, files=_collect(api, container, spec.collect))
            # The stream ended: the container ends now, so its status comes within the timeout.
            exit_code = int(api.wait(container, timeout=ENGINE_TIMEOUT_SECONDS)["StatusCode"])
            # The kernel's OOM killer sends SIGKILL: only then is the state worth asking for.
            oom = exit_code == KILLED and bool(api.inspect_container(container)["State"].get("OOMKilled"))
            return RunResult(exit_code=exit_code, oom_killed=oom)
        except APIError as exc:
            raise RunnerError(
                f"Docker failed while running the container: {exc.explanation or exc}"
            ) from None
        except ENGINE_ERRORS as exc:
            raise RunnerError(
                f"the Docker engine stopped answering while the container ran: {_reason(exc)}"
            ) from None
        finally:
            self.containers.pop(spec.execution_id, None)
            # The run's status is known: the container's end and removal need not delay it (the
            # removal kills what is left of it). A removal a crash interrupts is finished by the
            # next start's sweep.
            self._removals.put(container)

    def _remove(self, container: str) -> None:
        """Remove `container` (gone already: nothing to do); an engine that does not answer gets
        it queued again once it does (`available`)."""
        try:
            self._api().remove_container(container, force=True, v=True)
        except APIError:
            return  # gone, or being removed already
        except ENGINE_ERRORS:
            with self._unremoved_lock:
                self._unremoved.add(container)

    def _create_warm(self, profile: Profile) -> _Attached:
        """A started container of `profile`, attached already, waiting for its job (the pool's
        thread calls this): a warm run makes no Docker call before its job is on its way. It
        knows the image it was created from (`image_watch.py`)."""
        api = self._api()
        container = self._create(api, profile, {LABEL_WARM: "true"}, pull=False)
        try:
            image = str(api.inspect_container(container)["Image"])
            return replace(self._attach_and_start(api, container), image=image)
        except DockerException:
            self._remove(container)
            raise

    def _discard(self, warm: _Attached) -> None:
        """Close a warm container's attach stream and remove it (never run)."""
        with contextlib.suppress(OSError):
            warm.sock.close()
        self._remove(warm.container)

    def _create(
        self,
        api: docker.APIClient,
        profile: Profile,
        labels: dict[str, str],
        *,
        pull: bool = True,
        keep_workdir: bool = False,
        at: _At = _no_watch,
    ) -> str:
        """A created (not started) container of `profile`: the one configuration of every run.
        `keep_workdir`: the work directory is an anonymous tmpfs volume (`_kept_workdir`, removed
        with the container) instead of a tmpfs mount, so its files can be read once the script
        ended (`_collect`). `at`: told what comes next before each step (a cold start's,
        `_unless_stopped`, raises there once its run was stopped)."""
        return self._create_container(api, profile, labels, pull=pull, keep_workdir=keep_workdir, at=at)

    def _create_container(
        self,
        api: docker.APIClient,
        profile: Profile,
        labels: dict[str, str],
        *,
        pull: bool,
        keep_workdir: bool,
        at: _At,
    ) -> str:
        tmpfs = {path: options for path, options in TMPFS.items() if not (keep_workdir and path == WORKDIR)}
        host_config = api.create_host_config(
            mem_limit=f"{profile.memory_mb}m",
            memswap_limit=f"{profile.memory_mb}m",
            nano_cpus=int(profile.cpus * 1e9),
            pids_limit=PIDS_LIMIT,
            network_mode="bridge" if profile.network_enabled else "none",
            read_only=True,
            tmpfs=tmpfs,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=[_kept_workdir()] if keep_workdir else None,
            log_config={"type": "none"},
            runtime=self.runtime,
        )
        options: dict[str, Any] = {
            "entrypoint": container_job.ENTRYPOINT[:1],
            "command": container_job.ENTRYPOINT[1:],
            "user": profile.user,
            "working_dir": WORKDIR,
            "environment": run_env(WORKDIR),
            "stdin_open": True,  # docker-py sets StdinOnce with it: EOF after the job
            "labels": {LABEL_MANAGED: "true", LABEL_WORKER: self.worker_id, **self._installation(), **labels},
            "network_disabled": not profile.network_enabled,
            "host_config": host_config,
        }
        try:
            return str(api.create_container(profile.image, **options)["Id"])
        except ImageNotFound:
            if not pull:
                raise
            at(
                f"its image {profile.image} was still being pulled (the pull goes on, for the next run)",
                bounded=False,
            )
            try:
                _pull(profile.image)
            except DockerException as exc:
                raise ImageMissing(profile.image, _reason(exc)) from None
            at(CREATING)
            return str(api.create_container(profile.image, **options)["Id"])


_api_versions: dict[str, str] = {}
"""DOCKER_HOST (empty: the default socket) -> the API version negotiated with that engine by
this process's first client: later clients reuse it instead of asking again (`GET /version`,
a round trip: 0.2 ms per client instead of 11.7 ms on the development machine under load)."""


def _client(**options: Any) -> docker.DockerClient:
    """A Docker client (`docker.from_env(**options)`) with the API version this process
    negotiated first (`_api_versions`) and whose HTTP session takes nothing from the environment
    when the engine is on a local socket (none of them applies there): no proxy variables, no
    `.netrc` lookup, no `REQUESTS_CA_BUNDLE` (`requests` does those on every request while
    `trust_env` is on). Raises DockerException when no engine answers the first negotiation."""
    host = os.environ.get("DOCKER_HOST", "")
    version = _api_versions.get(host)
    client = docker.from_env(**options, **({"version": version} if version else {}))
    _api_versions.setdefault(host, client.api.api_version)
    if client.api.base_url.startswith("http+docker://"):  # a local socket, pipe or ssh tunnel
        client.api.trust_env = False
    return client


def _pull(image: str) -> None:
    """Pull `image` with a client of docker-py's default timeout (60 s per read), not the run's
    `ENGINE_TIMEOUT_SECONDS`: a pull takes as long as the registry does (a run stopped meanwhile
    does not wait for it: `_unless_stopped`). Raises what the pull raises (DockerException)."""
    client = _client()
    try:
        client.api.pull(image)
    finally:
        client.close()


_USERINFO = re.compile(r"//[^/@\s]+@")
"""The user-info part of a URL (`//user:password@host`), which an engine's pull error may quote
(an HTTP proxy set with its credentials): replaced by `//***@` in `ImageMissing`'s messages."""


class ImageMissing(RunnerError):
    """A run's image is not on the Docker engine and its pull failed; `said(script_type)` is
    what the run's `error_message` says: the image, what to do (pull it there, or set the image
    variable of the script's type: docs/executions.md, *Images*) and the registry's answer."""

    def __init__(self, image: str, reason: str) -> None:
        reason = _USERINFO.sub("//***@", reason)  # a proxy's or registry's password in a URL
        super().__init__(f"image {image} is not available: pull it or configure another ({reason})")
        self.image, self.reason = image, reason

    def said(self, script_type: str) -> str:
        """The message for a run of `script_type` (it names `OPSCRAFT_IMAGE_<TYPE>`); the
        registry's answer is cut to 300 characters."""
        reason = self.reason if len(self.reason) <= 300 else self.reason[:299] + "…"
        return (
            f"image {self.image} is not available: pull it on the Docker engine, or set "
            f"OPSCRAFT_IMAGE_{script_type.upper()} to an image it has (the pull failed: {reason})"
        )


class _Abandoned(RunnerError):
    """The run was stopped while its cold start waited for the engine (`_unless_stopped`)."""


def _unless_stopped(step: Callable[[_At], _T], control: RunControl, tidy: Callable[[_T | None], None]) -> _T:
    """Run `step` on a thread of its own and return what it returns (raise what it raises),
    unless `control` stops the run first (cancel, timeout, shutdown) or the engine leaves a step
    unanswered for `ENGINE_TIMEOUT_SECONDS`: then raise `_Abandoned` at once, saying "the run
    never started: " or "the Docker engine did not answer in N s: " and what the step was doing.
    The step tells its `at` what it does next (`bounded=False`: a pull, as long as the registry
    takes); `at` raises `_Abandoned` in an abandoned step, so it makes no further engine call, and
    the step's result (None when it raised) goes to `tidy` to undo once it ends.

    A stop used to wait for the engine's answer to each call of a cold start (create, attach,
    start: up to `ENGINE_TIMEOUT_SECONDS` each; a pull for as long as the registry took), as the
    run's kill only came once its container had started; and docker-py's `attach_socket` has no
    timeout at all (it calls `requests` without the client's), so an engine frozen there held
    the run for as long as it stayed frozen."""
    lock = threading.Lock()
    done = threading.Event()
    doing = [CREATING, time.monotonic() + ENGINE_TIMEOUT_SECONDS]
    ended: list[tuple[_T | None, BaseException | None]] = []
    abandoned = [False]

    def at(now: str, bounded: bool = True) -> None:
        with lock:
            doing[:] = [now, time.monotonic() + ENGINE_TIMEOUT_SECONDS if bounded else math.inf]
            if abandoned[0]:
                raise _Abandoned(now)

    def work() -> None:
        try:
            ended.append((step(at), None))
        except BaseException as exc:  # handed to the run's thread
            ended.append((None, exc))
        with lock:
            done.set()
            late = abandoned[0]
        if late:
            tidy(ended[0][0])

    threading.Thread(target=work, name=COLD_START_THREAD, daemon=True).start()
    while not done.wait(STOP_CHECK_SECONDS):
        with lock:
            now, deadline = doing
            if control.reason is not None:
                why = f"the run never started: {now}"
            elif time.monotonic() > deadline:
                why = f"the Docker engine did not answer in {ENGINE_TIMEOUT_SECONDS} s: {now}"
            else:
                continue
            if not done.is_set():
                abandoned[0] = True
                raise _Abandoned(why)
    value, failed = ended[0]
    if failed is not None:
        raise failed
    return value  # type: ignore[return-value]  # not None: the step returned


def _owner() -> tuple[int, int]:
    uid, gid = (int(part) for part in USER.split(":"))
    return uid, gid


def _kept_workdir() -> docker.types.Mount:
    """The work directory of a run whose files are read afterwards: an anonymous volume of the
    `local` driver that is a tmpfs with the options of every run's (`WORKDIR_TMPFS`: 1 GiB at
    most, pages counted against the memory limit, owned by the run's user). Unlike a `tmpfs`
    mount, the engine's archive API reads it while the container runs (`_collect`); it is
    emptied when the container stops and removed with it (`remove_container(v=True)`)."""
    options = {"type": "tmpfs", "device": "tmpfs", "o": WORKDIR_TMPFS}
    return docker.types.Mount(WORKDIR, None, driver_config=docker.types.DriverConfig("local", options))


def _collect(api: docker.APIClient, container: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The files `names` of the work directory of `container`, whose script ended and whose loader
    waits (`container_job`, `w`), that exist (regular files; one over `terraform_plan.max_bytes`
    as `terraform_plan.TOO_LARGE`); none for no `names`."""
    found: dict[str, bytes] = {}
    for name in names:
        try:
            stream, stat = api.get_archive(container, f"{WORKDIR}/{name}")
        except NotFound:
            continue
        if int(stat.get("size", 0)) > terraform_plan.max_bytes(name):
            found[name] = terraform_plan.TOO_LARGE
            continue
        # Read as the archive streams in (mode "r|"): the file is held once, not three times.
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(stream)), mode="r|") as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None and member.isfile() else None
            if extracted is not None:
                found[name] = extracted.read()
    return found


class _Chunks(io.RawIOBase):
    """The chunks of bytes Docker's API streams (an archive) as a readable file."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from the current chunk (the next one when it is used up); 0 at the end."""
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = memoryview(chunk)
        count = min(len(buffer), len(self._rest))
        buffer[:count] = self._rest[:count]
        self._rest = self._rest[count:]
        return count


def _failed(verb: str, exc: BaseException) -> RunnerError:
    """What a cold start's `verb` ("create", "start") failing with `exc` (one of
    `ENGINE_ERRORS`) tells the run: the engine's refusal, or that it did not answer."""
    if isinstance(exc, APIError):
        return RunnerError(f"Docker could not {verb} the container: {exc.explanation or exc}")
    return RunnerError(f"the Docker engine did not answer: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """A short reason for an engine failure (docker-py's message, or the connection error's)."""
    return str(getattr(exc, "explanation", None) or exc) or type(exc).__name__


def _kill(container: str) -> None:
    """Kill from the watchdog thread, with a client of its own (at most `KILL_TIMEOUT_SECONDS`
    per request: a frozen engine raises instead of holding the kill)."""
    client = _client(timeout=KILL_TIMEOUT_SECONDS)
    try:
        with contextlib.suppress(NotFound):
            client.api.kill(container)
    except APIError as exc:
        if exc.status_code != 409:  # 409: the container is not running any more
            raise
    finally:
        client.close()


def _interrupt(container: str) -> None:
    """SIGINT every process of the run but the loader (PID 1), as Ctrl-C would: `kill -INT -1`
    run in the container as the run's user (kill(2): -1 is every process the caller may signal
    except itself and its namespace's init). The loader waits on, and writes the end record."""
    client = _client(timeout=KILL_TIMEOUT_SECONDS)
    try:
        with contextlib.suppress(NotFound):
            started = client.api.exec_create(container, ["/bin/sh", "-c", "kill -INT -1"])
            client.api.exec_start(started["Id"])
    except APIError as exc:
        if exc.status_code != 409:  # 409: the container is not running any more
            raise
    finally:
        client.close()


def _write_ahead(sock: socket.socket, data: bytes) -> int:
    """Send what the socket's buffer takes of `data` without blocking (the container has not
    started: nothing reads it yet); returns how many bytes were sent."""
    sent = 0
    flags = getattr(socket, "MSG_DONTWAIT", None)
    if flags is None:  # no non-blocking send on this platform: all of it goes after the start
        return 0
    # Full buffer; or the engine closed the stream already (the rest fails after the start too).
    with contextlib.suppress(BlockingIOError, InterruptedError, BrokenPipeError, ConnectionResetError):
        while sent < len(data):
            sent += sock.send(data[sent:], flags)
    return sent


def _waiting(sock: Any) -> bool:
    """Whether a warm container's attach stream is still open: its loader writes nothing before
    its job, so a readable stream means it ended (the container died, the engine restarted)."""
    raw = getattr(sock, "_sock", sock)
    try:
        readable, _, _ = select.select([raw], [], [], 0)
    except (OSError, ValueError):  # closed
        return False
    return not readable


def _pump(sock: Any, output: OutputSink, end_token: str) -> int | None:
    """Demultiplex the attach stream (8-byte frame headers) into `output` until the loader's end
    record was read on both stdout and stderr (returns its exit status) or the stream closes
    (returns None: the container ended without one)."""
    buffer = bytearray()
    scanners = {kind: container_job.EndScanner(end_token) for kind in _STREAMS}
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            if not selector.select(output.tick()):
                continue
            data = sock.recv(READ_SIZE)
            if not data:
                break
            buffer += data
            del buffer[: _demux(buffer, output, scanners)]
            if all(scanner.status is not None for scanner in scanners.values()):
                output.tick()
                return scanners[1].status
    for kind, scanner in scanners.items():
        if held := scanner.flush():
            output.feed(_STREAMS[kind], held)
    output.tick()
    return None


def _demux(buffer: bytearray, output: OutputSink, scanners: dict[int, container_job.EndScanner]) -> int:
    """Feed every complete frame in `buffer` (adjacent frames of a stream together), through its
    stream's end scanner, to `output`; return the bytes used."""
    pos = 0
    run: list[bytes] = []
    run_kind = 0
    while len(buffer) - pos >= _FRAME.size:
        kind, size = _FRAME.unpack_from(buffer, pos)
        end = pos + _FRAME.size + size
        if len(buffer) < end:
            break
        if kind != run_kind and run:
            _feed(output, run_kind, run)
            run = []
        if kind in _STREAMS:
            run_kind = kind
            run.append(scanners[kind].feed(bytes(buffer[pos + _FRAME.size : end])))
        pos = end
    if run:
        _feed(output, run_kind, run)
    return pos


def _feed(output: OutputSink, kind: int, parts: list[bytes]) -> None:
    if data := b"".join(parts):
        output.feed(_STREAMS[kind], data)
