# OpsCraft as a container image, for the web process (`opscraft serve`) and for workers
# (`opscraft worker`); docker-compose.yml runs both. Scripts run in sibling containers through
# the host's Docker engine: only workers mount its socket.
#
#   docker build -t opscraft .                                   # python:3.11-slim, deps from PyPI
#   docker build --build-arg BASE_IMAGE=my/debian-python:12 .    # any Debian/Ubuntu with python3 >= 3.11
#
# Offline builds: put wheels of every dependency (and of pip) in docker/wheels/ first
# (`pip download -d docker/wheels . pip`), then nothing is fetched during the build.
#
# Two stages: the wheels, pip's build tree and the sources stay in `build`; the image holds the
# base image, the user and /opt/venv only. The dependencies (from pyproject.toml alone) are
# installed before the sources are copied, so a change of the code or of the README reinstalls
# OpsCraft only, not its dependencies.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
COPY docker/wheels/ /wheels/
COPY pyproject.toml /src/
# pip: from its wheel and without an index when docker/wheels/ has one, else the venv's from PyPI.
RUN set -eu; \
    if ls /wheels/pip-*.whl >/dev/null 2>&1; then \
      python3 -m venv --without-pip /opt/venv; \
      printf '#!/bin/sh\nexec /opt/venv/bin/python %s/pip --no-cache-dir "$@" --no-index --find-links /wheels\n' \
        "$(ls /wheels/pip-*.whl | head -n 1)" >/usr/local/bin/venv-pip; \
    else \
      python3 -m venv /opt/venv; \
      printf '#!/bin/sh\nexec /opt/venv/bin/pip --no-cache-dir "$@"\n' >/usr/local/bin/venv-pip; \
    fi; \
    chmod +x /usr/local/bin/venv-pip; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
      >/src/requirements.txt; \
    venv-pip install -r /src/requirements.txt
COPY README.md /src/
COPY opscraft /src/opscraft
RUN venv-pip install --no-deps /src

FROM ${BASE_IMAGE}
# The account OpsCraft runs as, with a fixed id: a data directory made by one build (or base
# image) stays readable by the next, and a host directory mounted on /data is `chown 999`.
ARG OPSCRAFT_UID=999
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPSCRAFT_DATA_DIR=/data \
    OPSCRAFT_NO_BOOTSTRAP=1 \
    OPSCRAFT_SHUTDOWN_GRACE_SECONDS=3 \
    PATH=/opt/venv/bin:$PATH
# OPSCRAFT_SHUTDOWN_GRACE_SECONDS=3: `docker stop` kills after 10 s unless told otherwise
# (`--stop-timeout`, compose's `stop_grace_period`); running scripts get 3 s of it, so they are
# stopped and recorded as interrupted by the shutdown before that (docs/deployment.md).
RUN groupadd --system --gid "${OPSCRAFT_UID}" opscraft \
    && useradd --system --uid "${OPSCRAFT_UID}" --gid opscraft --home-dir /data --no-create-home opscraft \
    && mkdir -m 0700 /data && chown opscraft:opscraft /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER opscraft
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-m", "opscraft.healthcheck"]
CMD ["opscraft", "serve", "--host", "0.0.0.0", "--port", "8080"]
