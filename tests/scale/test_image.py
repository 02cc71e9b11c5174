"""The Dockerfile and docker-compose.yml, for real: the image is built from a base image made on
this machine (`opscraft-test/runner:1`, Debian 12 with Python 3.11, from tests/images/build.sh)
with the wheels tests/run downloaded (no registry is reachable from a build here), then a web
container and a worker container run against a scratch PostgreSQL database and a private Redis
and execute a script end to end.

The image is tagged with a hash of what goes into it and reused while that does not change.
Bringing the whole compose file up needs the postgres and redis images from a registry, which
is not reachable here: the compose file is validated with `docker-compose config` instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import PASSWORD, PG_URL, ROOT, free_port, require_service
from tests.executions.conftest import require_docker
from tests.scale.cluster import FINAL, RedisServer, wait_for
from tests.scale.test_nginx import _ScratchDatabase

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.redis]
BASE_IMAGE = "opscraft-test/runner:1"
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _image_inputs() -> list[Path]:
    files = [ROOT / "Dockerfile", ROOT / "pyproject.toml", ROOT / "README.md"]
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
    body = {"username": "admin", "email": "admin@example.com", "password": PASSWORD}
    assert httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=30).status_code == 201
    token = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30
    ).json()
    client = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30
    )
    script = {
        "name": "image-e2e",
        "script_type": "bash",
        "content": "echo from the worker image\n",
        "status": "active",
    }
    script_id = client.post("/api/v1/scripts", json={**script, "acknowledge_risks": True}).json()["id"]
    run = client.post("/api/v1/executions", json={"script_id": script_id, "runner": "local"})
    assert run.status_code == 202, run.text
    execution_id = run.json()["id"]
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
