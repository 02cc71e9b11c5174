# OpsCraft as a container image, for the web process (`opscraft serve`) and for workers
# (`opscraft worker`); docker-compose.yml runs both. Scripts run in sibling containers through
# the host's Docker engine: only workers mount its socket.
#
#   docker build -t opscraft .                                   # python:3.11-slim, deps from PyPI
#   docker build --build-arg BASE_IMAGE=my/debian-python:12 .    # any Debian/Ubuntu with python3 >= 3.11
#
# Offline builds: put wheels of every dependency (and of pip) in docker/wheels/ first
# (`pip download -d docker/wheels . pip`), then nothing is fetched during the build.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPSCRAFT_DATA_DIR=/data \
    OPSCRAFT_NO_BOOTSTRAP=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY docker/wheels/ /wheels/
COPY pyproject.toml README.md ./
COPY opscraft ./opscraft
RUN set -eu; \
    if ls /wheels/pip-*.whl >/dev/null 2>&1; then \
      python3 -m venv --without-pip /opt/venv; \
      /opt/venv/bin/python "$(ls /wheels/pip-*.whl | head -n 1)/pip" install --no-cache-dir --no-index \
        --find-links /wheels /app; \
    else \
      python3 -m venv /opt/venv; \
      /opt/venv/bin/pip install --no-cache-dir /app; \
    fi; \
    rm -rf /wheels; \
    useradd --system --home /data opscraft; mkdir -p /data; chown opscraft /data

USER opscraft
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health').status != 200)"
CMD ["opscraft", "serve", "--host", "0.0.0.0", "--port", "8080"]
