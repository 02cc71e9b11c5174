"""The Dockerfile and docker-compose.yml, for real: the image is built from a base image made on
this machine (`opscraft-test/runner:1`, Debian 12 with Python 3.11, from tests/images/build.sh)
with the wheels tests/run downloaded (no registry is reachable from a build here), then a web
container and a worker container run against a scratch PostgreSQL database and a private Redis
and execute a script end to end.

The image alone, as `docker run` starts it (its default command, a data directory mounted from
the host): what it holds, the account it runs as, its health check, its logs, and `docker stop`
within Docker's default 10 s ending the running scripts as docs/deployment.md says.

The image is tagged with a hash of what goes into it and reused while that does not change.
Bringing the whole compose file up needs the postgres and redis images from a registry, which
is not reachable here: the compose file is validated with `docker-compose config` instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import PASSWORD, PG_URL, ROOT, free_port, require_service
from tests.executions.conftest import BUSYBOX_IMAGE, require_docker
from tests.scale.cluster import FINAL, RedisServer, wait_for
from tests.scale.test_nginx import _ScratchDatabase

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.redis]
BASE_IMAGE = "opscraft-test/runner:1"
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _image_inputs() -> list[Path]:
    files = [ROOT / "Dockerfile", ROOT / ".dockerignore", ROOT / "pyproject.toml", ROOT / "README.md"]
    return files + sorted(
        p for p in (ROOT / "opscraft").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def build_image(wheels: Path, workdir: Path) -> str:
    """Build (or reuse) the OpsCraft image from `BASE_IMAGE` and `wheels`; returns its tag."""
    digest = hashlib.sha256(BASE_IMAGE.encode())
    for path in _image_inputs():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    tag = f"opscraft-test/app:{digest.hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    context = workdir / "context"
    context.mkdir()
    for name in ("Dockerfile", "pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "opscraft", context / "opscraft", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheels, context / "docker" / "wheels")
    done = subprocess.run(
        [
            "docker",
            "build",
            "--network",
            "none",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-t",
            tag,
            str(context),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tag


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_docker()
    wheels = Path(os.environ.get("OPSCRAFT_TEST_WHEELS", ""))
    require_service(
        bool(os.environ.get("OPSCRAFT_TEST_WHEELS")) and any(wheels.glob("pip-*.whl")),
        "wheels for the image (tests/run)",
    )
    return build_image(wheels, tmp_path_factory.mktemp("image"))


def _container(image: str, name: str, env: dict[str, str], *command: str) -> str:
    args = ["docker", "run", "-d", "--name", name, "--network", "host", "--label", "opscraft-test=image"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return subprocess.run([*args, image, *command], capture_output=True, text=True, check=True).stdout.strip()


def _exec(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, timeout=60)


def _inspect(name: str, template: str) -> str:
    done = subprocess.run(["docker", "inspect", "--format", template, name], capture_output=True, text=True)
    return done.stdout.strip()


def _logs(name: str) -> str:
    done = subprocess.run(["docker", "logs", "--tail", "60", name], capture_output=True, text=True)
    return done.stdout + done.stderr


@pytest.fixture
def containers(image: str, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    names: list[str] = []
    try:
        with _ScratchDatabase() as url:
            env = {
                "DATABASE_URL": url,
                "REDIS_URL": redis.url,
                "SECRET_KEY": "image-secret-" + "k" * 32,
                "OPSCRAFT_MASTER_KEY": KEY,
                "ENVIRONMENT": "production",
                "LOG_FORMAT": "json",
                "OPSCRAFT_LOCAL_RUNNER": "true",
            }
            port = free_port()
            suffix = secrets.token_hex(3)
            web, worker = f"opscraft-web-{suffix}", f"opscraft-worker-{suffix}"
            try:
                names.append(web)
                _container(
                    image,
                    web,
                    env,
                    "opscraft",
                    "serve",
                    "--workers",
                    "0",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                )
                names.append(worker)
                _container(
                    image,
                    worker,
                    env,
                    "opscraft",
                    "worker",
                    "--slots",
                    "2",
                    "--runner",
                    "local",
                    "--name",
                    worker,
                )
                yield f"http://127.0.0.1:{port}", names
            finally:
                subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
    finally:
        redis.stop()


def test_image_runs_web_and_worker_end_to_end(containers: tuple[str, list[str]]) -> None:
    url, (web, worker) = containers
    try:
        wait_for(
            lambda: httpx.get(f"{url}/api/v1/health", timeout=2).json().get("workers") == 1,
            180,
            "web and worker",
        )
    except AssertionError:
        raise AssertionError(_logs(web) + _logs(worker)) from None
    client, execution_id = _first_run(url, "echo from the worker image\n")
    row = wait_for(
        lambda: (r := client.get(f"/api/v1/executions/{execution_id}").json())["status"] in FINAL and r,
        120,
        "the run",
    )
    assert row["status"] == "success" and row["worker_id"] == worker, row
    logs = client.get(f"/api/v1/executions/{execution_id}/logs").json()["items"]
    assert "".join(item["content"] for item in logs) == "from the worker image\n"
    # LOG_FORMAT=json: the worker's engine lines are JSON with the worker id.
    lines = [line for line in _logs(worker).splitlines() if line.startswith("{")]
    assert lines and all('"level"' in line for line in lines)
    assert any(f'"worker_id": "{worker}"' in line for line in lines) or any(worker in line for line in lines)
    # The image's health check asks the server on the port it serves (not a fixed 8080), and a
    # worker container, which has no port, is healthy too (it was "unhealthy" for ever).
    healthy = {name: _exec(name, "python", "-m", "opscraft.healthcheck") for name in (web, worker)}
    assert all(check.returncode == 0 for check in healthy.values()), healthy
    assert healthy[web].stdout.strip() == f"opscraft: healthy: {url}/api/v1/health", healthy
    assert "has no HTTP port" in healthy[worker].stdout, healthy


def test_compose_file_is_valid_and_complete(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker-1", "worker-2", "postgres", "redis"} <= set(services)
    socket = "/var/run/docker.sock:/var/run/docker.sock"
    assert socket in services["worker-1"]["volumes"] and socket in services["worker-2"]["volumes"]
    assert socket not in services["web"].get("volumes", []), "the web process must not reach Docker"
    assert "--workers" in services["web"]["command"] and "0" in services["web"]["command"]
    for name in ("web", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    documented = (ROOT / ".env.example").read_text()
    for variable in (
        "SECRET_KEY",
        "OPSCRAFT_MASTER_KEY",
        "POSTGRES_PASSWORD",
        "DOCKER_GID",
        "REDIS_URL",
        "LOG_FORMAT",
    ):
        assert variable in documented
    tool = shutil.which("docker-compose")
    require_service(tool is not None, "docker-compose (Debian package docker-compose)")
    env = {
        **os.environ,
        "SECRET_KEY": "s" * 40,
        "OPSCRAFT_MASTER_KEY": KEY,
        "POSTGRES_PASSWORD": "pw",
        "DOCKER_GID": "999",
    }
    done = subprocess.run(
        [str(tool), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [str(tool), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "SECRET_KEY"},
        cwd=tmp_path,
    )
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr


# uid, gid, /data's mode and owner, bytes in /opt/venv, entries in /app, then what the build left
# where it worked (the base image's own files are not the build's).
LISTING = (
    "id -u; id -g; stat -c '%a %U' /data; du -sb /opt/venv | cut -f1; ls -A /app | wc -l;"
    " ls -d /src /wheels /root/.cache 2>/dev/null; find /opt /app /usr/local /tmp"
    " \\( -name '*.whl' -o -name '*.egg-info' -o -name venv-pip -o -name requirements.txt \\) -print"
)


def test_image_holds_the_installed_app_and_nothing_of_its_build(image: str) -> None:
    """The wheels (copied in one layer and deleted in the next, so still in the image: 63 MB),
    pip's build tree and egg-info, and a second copy of the sources were all in the image. It now
    holds the base image, the account and /opt/venv, and runs as uid 999, not root."""
    assert _inspect(image, "{{.Config.User}}") == "opscraft"
    listing = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            image,
            "-c",
            LISTING,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    uid, gid, data, venv_bytes, in_app, *leftovers = listing
    assert (uid, gid, data, in_app) == ("999", "999", "700 opscraft", "0"), listing
    assert [line for line in leftovers if line] == [], "left from the build"
    added = int(_inspect(image, "{{.Size}}")) - int(_inspect(BASE_IMAGE, "{{.Size}}"))
    # The layers above the base are the account (a few kB) and the venv (its files and their tar
    # headers): not the 63 MB of wheels again.
    assert added < int(venv_bytes) * 1.08 + 1_000_000, (added, venv_bytes)


# Least privilege: no writes outside /data and /tmp, no capabilities, no setuid gains.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def test_docker_run_with_a_mounted_data_dir_and_docker_stop(image: str, tmp_path: Path) -> None:
    """`docker run` of the image as it is (its own command, a host directory on /data, the
    single-process shape with the local runner; read-only, without capabilities) and `docker
    stop` with Docker's default 10 s.
    Before, the shutdown grace (10 s) alone filled Docker's timeout and the interpreter then spent
    3-6 s tearing down (as PID 1 uvicorn's re-raised SIGTERM does nothing): the server was
    SIGKILLed (exit 137), its running run stayed `running` until the next start called it
    "interrupted by server restart", and a Docker run's container went on running meanwhile."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 999, 999)  # the image's account (Dockerfile OPSCRAFT_UID), as docs/deployment.md says
    port = free_port()
    name = f"opscraft-run-{secrets.token_hex(3)}"
    args = [
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "opscraft-test=image",
        "-p",
        f"127.0.0.1:{port}:8080",
    ]
    args += ["-v", f"{data}:/data", "-e", "OPSCRAFT_LOCAL_RUNNER=true", "-e", "LOG_FORMAT=json"]
    args += [*HARDENED, "--tmpfs", "/tmp", "--health-interval", "1s", image]
    subprocess.run(args, capture_output=True, text=True, check=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(
                lambda: _inspect(name, "{{.State.Health.Status}}") == "healthy", 180, "a healthy container"
            )
        except AssertionError:
            raise AssertionError(_logs(name)) from None
        client, execution_id = _first_run(url, "echo started\nsleep 300\n")
        wait_for(
            lambda: client.get(f"/api/v1/executions/{execution_id}").json()["status"] == "running",
            60,
            "the run",
        )
        started = time.monotonic()
        subprocess.run(["docker", "stop", name], capture_output=True, check=True, timeout=60)
        took = time.monotonic() - started
        assert _inspect(name, "{{.State.ExitCode}}") == "0", (took, _logs(name))
        assert took < 10, took
        # The data directory: the account's only (every file 0600, generated keys included).
        modes = {path.name: (path.stat().st_mode & 0o777, path.stat().st_uid) for path in data.iterdir()}
        assert data.stat().st_mode & 0o777 == 0o700
        assert modes["master.key"] == (0o600, 999) and modes["opscraft.db"] == (0o600, 999), modes
        assert {mode for mode, _ in modes.values()} == {0o600}, modes
        # Every line of the log is JSON, uvicorn's included.
        log = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        records = [json.loads(line) for line in log.splitlines() if line.strip()]
        assert any(r["message"] == "Finished server process [1]" for r in records)

        subprocess.run(["docker", "start", name], capture_output=True, check=True)
        wait_for(lambda: httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200, 180, "the restart")
        row = _logged_in(url).get(f"/api/v1/executions/{execution_id}").json()
        assert (row["status"], row["error_message"]) == ("error", "interrupted by server shutdown"), row
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_a_read_only_container_without_a_tmp_says_so_at_start(image: str, tmp_path: Path) -> None:
    """`docker run --read-only` without a writable /tmp started, and then every script save
    answered 500 (the script checks write their files to a temporary directory): the start now
    stops with one line saying what to add."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 999, 999)
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *HARDENED, "-v", f"{data}:/data", image],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "opscraft: No usable temporary directory found in ['/tmp', '/var/tmp', '/usr/tmp', '/app']: "
        "set TMPDIR to a writable directory (a container started with --read-only: add --tmpfs /tmp)"
    )


def _first_run(url: str, content: str) -> tuple[httpx.Client, int]:
    """On a new installation at `url`: register the first user (an admin), save `content` as an
    active Bash script and run it on the local runner; (the admin's client, the run's id)."""
    body = {"username": "admin", "email": "admin@example.com", "password": PASSWORD}
    assert httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=30).status_code == 201
    client = _logged_in(url)
    script = {"name": "image-run", "script_type": "bash", "content": content, "status": "active"}
    script_id = client.post("/api/v1/scripts", json={**script, "acknowledge_risks": True}).json()["id"]
    run = client.post("/api/v1/executions", json={"script_id": script_id, "runner": "local"})
    assert run.status_code == 202, run.text
    return client, int(run.json()["id"])


def _logged_in(url: str) -> httpx.Client:
    token = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_the_build_context_holds_only_what_the_dockerfile_reads(tmp_path: Path) -> None:
    """`docker build .` in a working copy sent the daemon everything but .git, .venv, tests and
    bench: a `.env` with SECRET_KEY and the master key, a `.data/` directory with keys and the
    database, the binary's `dist/` (540 MB) and `build/`. The repository's .dockerignore now lets
    through only the files the Dockerfile reads; a real build of this shape shows what arrives."""
    require_docker()
    wanted = ["pyproject.toml", "README.md", "opscraft/app.py", "docker/wheels/README.md"]
    unwanted = [".env", ".data/master.key", "dist/opscraft/opscraft", "build/x", "opscraft.egg-info/PKG-INFO"]
    unwanted += ["opscraft/__pycache__/app.cpython-311.pyc", "tests/test_x.py", ".git/config", "docs/x.md"]
    for name in wanted + unwanted:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX_IMAGE}\nCOPY . /context/\n")
    tag = f"opscraft-test/context:{secrets.token_hex(4)}"
    build = ["docker", "build", "--network", "none", "-q", "-t", tag, str(tmp_path)]
    done = subprocess.run(build, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert done.returncode == 0, done.stderr
    try:
        listed = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", tag, "find", "/context", "-type", "f"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    assert sorted(path.removeprefix("/context/") for path in listed) == sorted(wanted), listed
