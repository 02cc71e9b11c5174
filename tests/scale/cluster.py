"""Real processes for scale-out tests: a private Redis, a private PostgreSQL cluster, web-only
`opscraft serve --workers 0` processes and `opscraft worker` processes, all on loopback.

Destructive tests (restarting Redis or PostgreSQL) only ever touch the instances started here,
never the shared services other test runs use.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests import migrated_sqlite, ports
from tests.conftest import PASSWORD, ROOT, free_port, require_service
from tests.process_forks import Forked, ProcessForks
from tests.waiting import wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FINAL = {"success", "failed", "cancelled", "timed_out", "error"}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """`tests.waiting.wait_until` for servers that may not answer yet: `condition()` raising
    httpx.HTTPError or OSError (a refused connection) counts as not yet."""

    def attempt() -> Any:
        try:
            return condition()
        except (httpx.HTTPError, OSError):
            return None

    return wait_until(attempt, what, timeout, every)


def migrated_sqlite_url(directory: Path) -> str:
    """The `sqlite:///` URL of an SQLite database at the head in `directory` (a copy of
    `tests.migrated_sqlite`'s template, as after a first start), for a process pointed at a
    database of its own: migrating an empty one is 1.5-1.8 s of CPU at its start."""
    migrated_sqlite.seed(directory)
    return f"sqlite:///{directory / migrated_sqlite.DATABASE_FILE}"


class RedisServer:
    """A private `redis-server` on a free port, restartable."""

    def __init__(self, workdir: Path) -> None:
        require_service(shutil.which("redis-server") is not None, "redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import redis

        wait_for(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 30, "redis to start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


class PostgresCluster:
    """A private PostgreSQL 15 cluster (initdb, trust auth on loopback), restartable. Its files
    live in a directory of its own under /tmp (pytest's are private to root; the server runs as
    `postgres`), removed by `remove()`."""

    def __init__(self) -> None:
        require_service((PG_BIN / "initdb").exists(), "PostgreSQL 15 binaries")
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="opscraft-pg-"))
        self.data = self.workdir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise OSError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.workdir / "pg.log"),
            "-w",
            "start",
        )

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@dataclass
class Proc:
    """One OpsCraft process (web or worker) and its log file: started afresh, or forked by
    `forks` (tests/process_forks.py: its imports spared) when given."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    url: str | None = None
    process: subprocess.Popen[bytes] | Forked | None = None
    forks: ProcessForks | None = None

    def start(self) -> None:
        if self.forks is not None:
            self.process = self.forks.start(self.args, self.env, self.log_path)
            return
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "opscraft", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def started_or_ended(proc: Proc) -> bool:
    """Whether `proc` (an `opscraft worker`) said it is ready, or exited."""
    return not proc.alive() or " ready: " in proc.log()


@dataclass
class Cluster:
    """Web and worker processes sharing one database and one Redis."""

    root: Path
    database_url: str
    redis_url: str | None
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str | None = None
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    forks: ProcessForks | None = None  # forks the workers that can be (`forks_for`), if given

    def forks_for(self, env: dict[str, str], real: bool) -> ProcessForks | None:
        """The fork server for a worker of environment `env`, or None for a real start: when
        `real` (a test about the start itself), or when `env` preloads a library into the new
        interpreter (`LD_PRELOAD`: libfaketime), which a fork cannot give."""
        return None if real or "LD_PRELOAD" in env else self.forks

    def env(self, name: str) -> dict[str, str]:
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            "OPSCRAFT_DATA_DIR": str(data_dir),
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": "scale-out-secret-" + "z" * 32,
            "OPSCRAFT_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "OPSCRAFT_RATE_LIMIT_AUTH": "1000",
            "OPSCRAFT_RATE_LIMIT_API": "1000000",
            "OPSCRAFT_NO_BOOTSTRAP": "1",
            "OPSCRAFT_LOCAL_RUNNER": "1",
            **self.extra_env,
        }
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def web(self, name: str = "web", env: dict[str, str] | None = None) -> Proc:
        """Start a web-only `opscraft serve --workers 0` (with `env` added to its environment),
        always afresh: NiceGUI reads its environment when imported (`NICEGUI_REDIS_URL`, the
        session storages' Redis), so a `serve` forked from `forks` would keep its storages local."""
        port = free_port()
        proc = Proc(
            name,
            ["serve", "--workers", "0", "--port", str(port)],
            {**self.env(name), **(env or {})},
            self.root / f"{name}.log",
            url=f"http://127.0.0.1:{port}",
        )
        self.procs[name] = proc
        proc.start()
        self.wait_healthy(proc)
        return proc

    def wait_healthy(self, proc: Proc, timeout: float = 120) -> None:
        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited:\n{proc.log()}")
            answered = httpx.get(f"{proc.url}/api/v1/health", timeout=2).status_code == 200
            # by this process, not another test's server on a port taken meanwhile (tests.ports)
            return answered and ports.listens_on(proc.process.pid, urlsplit(proc.url).port)

        wait_for(healthy, timeout, f"{proc.name} to become healthy", every=0.2)

    def worker(
        self,
        name: str,
        slots: int = 4,
        runner: str | None = None,
        env: dict[str, str] | None = None,
        *,
        real: bool = False,
    ) -> Proc:
        """Start `opscraft worker --name name` (with `env` added to its environment); `real`: a
        fresh interpreter even where the cluster forks (`forks_for`)."""
        args = ["worker", "--slots", str(slots), "--name", name] + (["--runner", runner] if runner else [])
        environ = {**self.env(name), **(env or {})}
        proc = Proc(name, args, environ, self.root / f"{name}.log", forks=self.forks_for(environ, real))
        self.procs[name] = proc
        proc.start()
        return proc

    def wait_workers_alive(self, web: Proc, names: set[str], timeout: float = 120) -> None:
        def alive() -> bool:
            rows = self.api(web).get("/api/v1/workers").json()["items"]
            return names <= {w["id"] for w in rows if w["state"] == "alive"}

        wait_for(alive, timeout, f"workers {sorted(names)} to be alive", every=0.2)

    def admin_token(self, web: Proc) -> str:
        if self.token is None:
            body = {"username": "admin", "email": "admin@example.com", "password": PASSWORD}
            httpx.post(f"{web.url}/api/v1/auth/register", json=body, timeout=30)
            response = httpx.post(
                f"{web.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30
            )
            assert response.status_code == 200, response.text
            self.token = str(response.json()["access_token"])
        return self.token

    def api(self, web: Proc) -> httpx.Client:
        """An HTTP client of `web`, logged in as the admin (kept for the cluster's life)."""
        assert web.url
        if web.name not in self.clients:
            headers = {"Authorization": f"Bearer {self.admin_token(web)}"}
            self.clients[web.name] = httpx.Client(base_url=web.url, headers=headers, timeout=30)
        return self.clients[web.name]

    def script(self, web: Proc, content: str, name: str | None = None) -> int:
        body = {
            "name": name or f"scale-{time.monotonic_ns()}",
            "script_type": "bash",
            "content": content,
            "status": "active",
            "acknowledge_risks": True,
        }
        response = self.api(web).post("/api/v1/scripts", json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def run(self, web: Proc, script_id: int, runner: str = "local") -> int:
        response = self.api(web).post("/api/v1/executions", json={"script_id": script_id, "runner": runner})
        assert response.status_code == 202, response.text
        return int(response.json()["id"])

    def execution(self, web: Proc, execution_id: int) -> dict[str, Any]:
        return dict(self.api(web).get(f"/api/v1/executions/{execution_id}").json())

    def wait_status(
        self, web: Proc, execution_id: int, wanted: set[str], timeout: float = 120
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            row = self.execution(web, execution_id)
            return row if row["status"] in wanted else None

        return dict(
            wait_for(reached, timeout, f"execution {execution_id} to be {sorted(wanted)}", every=0.05)
        )

    def output(self, web: Proc, execution_id: int) -> str:
        chunks, offset = [], 0
        client = self.api(web)
        while True:
            page = client.get(f"/api/v1/executions/{execution_id}/logs", params={"offset": offset}).json()
            chunks += [item["content"] for item in page["items"]]
            if not page["items"]:
                return "".join(chunks)
            offset = page["next_offset"]

    def stop_all(self) -> None:
        for client in self.clients.values():
            client.close()
        for proc in reversed(list(self.procs.values())):
            proc.stop()


@contextmanager
def private_cluster(root: Path, env: dict[str, str], *, forked_workers: bool = False) -> Iterator[Cluster]:
    """A `Cluster` on a private Redis (`cluster.redis`) and PostgreSQL cluster (`cluster.pg`), both
    started here with no process yet; every process, PostgreSQL and Redis stopped on leaving.
    `forked_workers`: its workers are forked, where they can be (`Cluster.forks_for`), from a fork
    server of its own (tests/process_forks.py), ended after them: each worker start spares
    OpsCraft's imports (about 2.5 s of CPU) for the server's one import, a gain from the second
    worker on."""
    redis = RedisServer(root / "redis")
    pg = PostgresCluster()
    redis.start()
    try:
        pg.init()
        pg.start()
    except OSError as exc:
        redis.stop()
        pg.remove()
        require_service(False, f"a private PostgreSQL cluster ({exc})")
    c = Cluster(root, pg.url, redis.url, env)
    c.redis, c.pg = redis, pg  # type: ignore[attr-defined]
    try:
        if forked_workers:
            c.forks = ProcessForks()
        yield c
    finally:
        c.stop_all()
        if c.forks is not None:
            c.forks.close()
        pg.stop()
        pg.remove()
        redis.stop()
