# signing-proxy: signs Kalshi Trade API v2 requests for the containers beside it.
#
#   docker build -t signing-proxy .
#   sudo chown 10001:10001 kalshi.pem && sudo chmod 0400 kalshi.pem   # the image's user
#   docker run --rm -p 127.0.0.1:8080:8080 --stop-timeout 20 \
#     -e KALSHI_API_KEY_ID=... -e KALSHI_PRIVATE_KEY_FILE=/run/secrets/kalshi_private_key \
#     -v "$PWD/kalshi.pem:/run/secrets/kalshi_private_key:ro" \
#     -e SIGNING_PROXY_CONFIG=/config/signing-proxy.yaml -e BOT_TOKEN=... \
#     -v "$PWD/examples/signing-proxy.yaml:/config/signing-proxy.yaml:ro" signing-proxy
#
# The key is never part of the image: it comes from a mounted file or KALSHI_PRIVATE_KEY.
# --stop-timeout: on SIGTERM the proxy drains for shutdown_timeout (15 s) and cuts the
# rest within a second; docker's default is to SIGKILL after 10 s.
# BASE_IMAGE is any Debian-like image with python3 (3.11 or newer) and its venv module:
# the official python slim image by default; scripts/container-smoke.sh uses a Debian
# bookworm base made with debootstrap. Nothing here assumes `python` is on PATH.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
# Package index settings for this stage only, e.g. the host's mirror (see
# scripts/container-smoke.sh). Empty values are ignored by pip. None reach the final image.
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
# Dependencies first, from pyproject.toml alone: this layer is reused until they change.
# Wheels only: no stage ever compiles, and a dependency without a wheel for this
# platform fails here, loudly.
COPY pyproject.toml /src/
RUN /opt/venv/bin/python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["speed"], sep="\n")' >/tmp/requirements.txt \
 && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt
# The wheel's metadata names README.md and LICENSE (pyproject.toml).
COPY README.md LICENSE /src/
COPY signing_proxy /src/signing_proxy
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels /src \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/venv/bin/signing-proxy --version

FROM ${BASE_IMAGE}
# A fixed uid, so that a key file can be given to it (chown 10001, chmod 0400).
RUN groupadd --system --gid 10001 signing-proxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin signing-proxy \
 && install -d -o 10001 -g 10001 -m 1777 /var/lib/signing-proxy
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGNING_PROXY_HOST=0.0.0.0 \
    SIGNING_PROXY_PORT=8080 \
    SIGNING_PROXY_LOG_FORMAT=json \
    XDG_STATE_HOME=/var/lib
# The order journal (halts, the daily notional, what each bot sent) lives in (the
# directory is writable by any uid, like /tmp, so that --user works; the file is 0600)
# /var/lib/signing-proxy/journal-<env>.sqlite3: mount a volume there to keep it when the
# container is replaced (-v signing-proxy-journal:/var/lib/signing-proxy).
USER 10001:10001
EXPOSE 8080
# No curl in the image: the venv's Python asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/opt/venv/bin/python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('SIGNING_PROXY_PORT') or '8080'), timeout=4)"]
ENTRYPOINT ["signing-proxy"]
CMD ["run"]
