"""Warm containers follow their image in real Docker: when the image name a profile runs is
retagged to another image (a fixed image pulled or built) or deleted, the containers warmed
from the old one are removed and never run a script (`execution/image_watch.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import httpx
import pytest

from opscraft import runtime
from tests.conftest import LoggedIn
from tests.executions.conftest import (
    IMAGES,
    TEST_IMAGE,
    make_script,
    output,
    pool_profile,
    start,
    wait_for,
    warm_containers,
)
from tests.waiting import until

pytestmark = pytest.mark.docker

WHICH = "cat /opscraft-build 2>/dev/null || echo first\n"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def image(docker_client: Any) -> Iterator[str]:
    """An image name of this test alone, naming the Debian test image for now."""
    repository = f"opscraft-test/retagged-{os.getpid()}-{time.monotonic_ns()}"
    docker_client.api.tag(TEST_IMAGE, repository, "1")
    yield f"{repository}:1"
    for found in docker_client.api.images(name=repository):
        # The tag only, and the image a test built for it (the shared test image stays).
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_image(f"{repository}:1")
        with contextlib.suppress(docker.errors.APIError):
            if found["Id"] != image_id(docker_client, TEST_IMAGE):
                docker_client.api.remove_image(found["Id"])


@pytest.fixture
def engine_settings(image: str) -> dict[str, Any]:
    return {**IMAGES, "OPSCRAFT_IMAGE_BASH": image, "OPSCRAFT_WARM_POOL_SIZE": 2}


def rebuilt(docker_client: Any, repository: str, tag: str) -> str:
    """A new image of the Debian test image plus `/opscraft-build` ("second") tagged
    `repository:tag` in place of the old one; returns its id (removed with the tag)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("opscraft-build")
        info.size, info.mode = len(b"second\n"), 0o644
        tar.addfile(info, io.BytesIO(b"second\n"))
    container = docker_client.api.create_container(TEST_IMAGE, command=["true"])["Id"]
    try:
        docker_client.api.put_archive(container, "/", buffer.getvalue())
        return str(docker_client.api.commit(container, repository=repository, tag=tag)["Id"])
    finally:
        docker_client.api.remove_container(container, force=True)


def image_id(docker_client: Any, name: str) -> str:
    return str(docker_client.api.inspect_image(name)["Id"])


async def test_a_retagged_image_is_what_the_next_run_gets(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, image: str
) -> None:
    worker = runtime.current().worker
    assert worker is not None
    script_id = await make_script(client, admin, WHICH)
    assert await asyncio.to_thread(worker.docker.pool.wait_warm, pool_profile(image), 2, 120)
    old = image_id(docker_client, TEST_IMAGE)
    assert {c.attrs["Image"] for c in warm_containers(docker_client)} == {old}

    repository, tag = image.rsplit(":", 1)
    new = rebuilt(docker_client, repository, tag)  # as `docker pull` or `docker build -t` does

    await until(
        lambda: {c.attrs["Image"] for c in warm_containers(docker_client)} <= {new},
        "the containers warmed from the old image removed",
        30,
    )
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert final["status"] == "success", final
    assert await output(client, admin, execution["id"]) == "second\n"


async def test_an_image_deleted_while_warm_runs_nothing(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, image: str
) -> None:
    """`docker rmi` of the name: the warm containers of it go; a run says the image is not
    available, as a cold start does (it ran the deleted image)."""
    worker = runtime.current().worker
    assert worker is not None
    script_id = await make_script(client, admin, WHICH)
    assert await asyncio.to_thread(worker.docker.pool.wait_warm, pool_profile(image), 2, 120)

    docker_client.api.remove_image(image)

    await until(lambda: not warm_containers(docker_client), "no warm container left", 30)
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"], timeout=120)
    assert final["status"] == "error", final
    assert f"image {image} is not available" in final["error_message"]
