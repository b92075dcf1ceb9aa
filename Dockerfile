# Community Edge Gateway image. Multi-arch: every locked dependency is a wheel for arm64 and amd64
# (scripts/check-platforms), so `docker buildx build --platform linux/arm64,linux/amd64 .` builds
# the same image for a Pi. The install step is scripts/install.sh from the hashed lock, the same
# script the README's commands and CI run. FLAVOUR=vision adds camera analytics (OpenCV).

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
ARG FLAVOUR=core
COPY scripts/install.sh scripts/install.sh
COPY requirements requirements
COPY gateway gateway
COPY drivers drivers
COPY edge_config edge_config
COPY cloud_sync cloud_sync
RUN bash scripts/install.sh /opt/venv "$FLAVOUR"

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 edge \
 && useradd --system --uid 10001 --gid edge --home-dir /data --shell /usr/sbin/nologin edge \
 && mkdir -p /config /data && chown edge:edge /data && chmod 0700 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/mosquitto.conf /usr/share/edge-gateway/mosquitto.conf
# Site config (read-only) and the durable store (WAL SQLite) live outside the image.
VOLUME ["/config", "/data"]
USER edge
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["edge-gateway"]
CMD ["run", "--config", "/config/site.yaml", "--store", "/data/gateway.db", "--api-host", "0.0.0.0"]
