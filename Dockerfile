# OpsCraft as a container for a team server. Scripts run in sibling containers through the host's
# Docker engine: mount its socket (-v /var/run/docker.sock:/var/run/docker.sock).
#   docker build -t opscraft .
#   docker run -d -p 8080:8080 -v opscraft-data:/data -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e SECRET_KEY=... -e OPSCRAFT_MASTER_KEY=... -e ENVIRONMENT=production opscraft
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPSCRAFT_DATA_DIR=/data \
    OPSCRAFT_NO_BOOTSTRAP=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY opscraft ./opscraft
RUN pip install --no-cache-dir . && useradd --system --home /data opscraft && mkdir -p /data && chown opscraft /data

USER opscraft
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health').status != 200)"
CMD ["opscraft", "serve", "--host", "0.0.0.0", "--port", "8080"]
