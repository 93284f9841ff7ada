#!/usr/bin/env bash
# Container smoke test, with podman (no Docker engine needed):
#   1. build the image (Dockerfile at the repo top);
#   2. run it beside the sandbox upstream (examples/sandbox_upstream.py) on a private
#      network, publish it on 127.0.0.1 and check that a balance request through it
#      answers 200, that it is healthy, runs as non-root and has no compiler;
#   3. run examples/docker-compose.yml and check that the client service got a balance
#      through the proxy by service name.
# Every key is a throwaway pair made for this run. Idempotent: leftovers of an earlier
# run are removed first, the base image is reused when present, and everything this run
# starts is removed at exit; names are fixed, so one run at a time on a machine. Run as
# root (rootful podman). Exit 0 on success, 1 with a "container smoke: FAILED: ..." line
# otherwise.
#
# Settings (environment):
#   SMOKE_BASE_IMAGE  base image for the build (default localhost/pybase:bookworm; made
#                     with debootstrap when it does not exist yet)
#   SMOKE_IMAGE       tag of the image built (default localhost/signing-proxy:smoke)
#   DEBIAN_MIRROR     mirror for debootstrap (default: debootstrap's own)
#   CONTAINERS_CONF   podman settings; when unset a containers.conf suited to this kind
#                     of machine (runc, cgroupfs, file events) is written and used
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE_IMAGE=${SMOKE_BASE_IMAGE:-localhost/pybase:bookworm}
IMAGE=${SMOKE_IMAGE:-localhost/signing-proxy:smoke}
PREFIX=signing-proxy-smoke       # names of this script's containers, network and project
NETWORK=$PREFIX-net
PROJECT=${PREFIX//-/}            # podman-compose project name (container names PROJECT_service_1)
WORK=$(mktemp -d /tmp/$PREFIX.XXXXXX)
STARTED=$SECONDS

fail() {
  echo "container smoke: FAILED: $*" >&2
  exit 1
}
step() { printf '\n== [%3ss] %s\n' "$((SECONDS - STARTED))" "$*"; }

need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed ($2)"
}

compose() {
  podman-compose -p "$PROJECT" -f "$ROOT/examples/docker-compose.yml" "$@"
}

remove_all() {
  # What an earlier (possibly aborted) run or this one left: containers, network, project.
  command -v podman >/dev/null 2>&1 || return 0
  if [ -n "${COMPOSE_READY:-}" ]; then
    compose down -v -t 2 >/dev/null 2>&1 || true
  fi
  # -v: with the journal's volumes (the image declares one), which would pile up.
  podman rm -f -v -t 2 "$PREFIX-proxy" "$PREFIX-sandbox" >/dev/null 2>&1 || true
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" -q 2>/dev/null \
    | xargs -r podman rm -f -v -t 2 >/dev/null 2>&1 || true
  podman volume rm -f "${PROJECT}_journal" >/dev/null 2>&1 || true
  podman network rm -f "$NETWORK" "${PROJECT}_default" >/dev/null 2>&1 || true
}

on_exit() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    # Show what podman and the containers said: the reason is usually there. (Without
    # systemd podman complains that it cannot schedule healthchecks: noise, left out.)
    if [ -s "$WORK/podman.log" ]; then
      echo "--- podman said" >&2
      grep -v 'systemd connection' "$WORK/podman.log" | tail -n 20 >&2 || true
    fi
    for name in "$PREFIX-proxy" "$PREFIX-sandbox" "${PROJECT}_signing-proxy_1" \
      "${PROJECT}_sandbox_1" "${PROJECT}_client_1"; do
      if podman container exists "$name" 2>/dev/null; then
        echo "--- logs of $name" >&2
        podman logs "$name" 2>&1 | tail -n 20 >&2 || true
      fi
    done
  fi
  remove_all
  rm -rf "$WORK"
  if [ "$status" -eq 0 ]; then
    echo "container smoke: passed in $((SECONDS - STARTED)) s"
  fi
}

trap on_exit EXIT
trap 'exit 143' TERM INT

# --- prerequisites ---------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || fail "run as root (rootful podman)"
need podman "apt-get install podman runc netavark aardvark-dns iptables"
need iptables "apt-get install iptables (netavark sets up container networks with it)"
need podman-compose "apt-get install podman-compose"
need curl "apt-get install curl"

if [ -z "${CONTAINERS_CONF:-}" ]; then
  # Suited to a machine without systemd or cgroup delegation, e.g. CI or a dev container.
  export CONTAINERS_CONF=$WORK/containers.conf
  cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
fi

remove_all

# --- base image ------------------------------------------------------------------------

step "base image $BASE_IMAGE"
if podman image exists "$BASE_IMAGE"; then
  echo "reusing $BASE_IMAGE"
elif [ "$BASE_IMAGE" != localhost/pybase:bookworm ]; then
  podman pull "$BASE_IMAGE" || fail "cannot pull $BASE_IMAGE"
else
  need debootstrap "apt-get install debootstrap"
  rootfs=$WORK/rootfs
  # Debian's python3 (3.11) with venv and pip, and the CA store.
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap of the base image failed"; }
  # The host's extra CAs (a TLS-intercepting proxy, a company CA) are trusted inside too,
  # so pip reaches the package index from the build as it does from the host.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >>"$WORK/debootstrap.log" 2>&1
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE" >>"$WORK/podman.log" 2>&1 \
    || fail "podman import of the base image failed"
  rm -rf "$rootfs"
fi

# --- build -----------------------------------------------------------------------------

step "build $IMAGE"
# pip inside the build uses the same index as pip on this host, when that is an http(s)
# URL (a file:// index on the host's disk means nothing inside the build).
pip_setting() {
  local env_name=$1 key=$2 value
  value=${!env_name:-}
  if [ -z "$value" ] && command -v python3 >/dev/null 2>&1; then
    value=$(python3 -m pip config get "global.$key" 2>/dev/null || true)
  fi
  # Keep only http(s) URLs (extra-index-url may list several, space-separated).
  local kept=()
  for item in $value; do
    case $item in http://* | https://*) kept+=("$item") ;; esac
  done
  echo "${kept[*]:-}"
}
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
index=$(pip_setting PIP_INDEX_URL index-url)
extra=$(pip_setting PIP_EXTRA_INDEX_URL extra-index-url)
[ -n "$index" ] && build_args+=(--build-arg "PIP_INDEX_URL=$index")
[ -n "$extra" ] && build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
if [ -n "${PIP_TRUSTED_HOST:-}" ]; then
  build_args+=(--build-arg "PIP_TRUSTED_HOST=$PIP_TRUSTED_HOST")
fi
# The base's own CA store (with the host's extra CAs, above) rather than pip's bundle.
build_args+=(--build-arg "PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
previous=$(podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)
# --format docker keeps HEALTHCHECK (the OCI format has no such field).
podman build --format docker --network=host "${build_args[@]}" -t "$IMAGE" "$ROOT" \
  >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; fail "podman build failed"; }
# The image of the previous run, now untagged, would pile up run after run.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect "$IMAGE" --format '{{.Id}}')" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "built $IMAGE ($(podman image inspect "$IMAGE" --format '{{.Size}}') bytes)"

# --- the image alone -------------------------------------------------------------------

step "image facts: non-root user, no compiler, no key inside"
user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
case $user in "" | 0 | 0:* | root | root:*) fail "the image runs as root (User=$user)" ;; esac
# Helper containers: no network, no healthcheck (podman would try to schedule it).
helper() { podman run --rm --network none --no-healthcheck "$@" 2>>"$WORK/podman.log"; }
# shellcheck disable=SC2016 # expanded by the image's shell
found=$(helper --entrypoint /bin/sh "$IMAGE" -c \
  'for c in gcc cc clang; do command -v "$c"; done; exit 0') \
  || fail "cannot run a shell in the image (see above)"
[ -z "$found" ] || fail "the final image has a compiler: $found"
found=$(helper --entrypoint /bin/sh "$IMAGE" -c \
  'grep -rlsE -- "-----BEGIN (RSA |ENCRYPTED |)PRIVATE KEY-----" /opt/venv /run /etc /tmp /home /root; exit 0')
[ -z "$found" ] || fail "the image contains a private key: $found"
echo "user $user, no compiler, no private key"

step "throwaway key pair and inbound token"
keys=$WORK/keys
mkdir -p "$keys"
# Made by the image's own Python, so the host needs no cryptography library.
helper --user 0 -v "$keys:/keys" --entrypoint /opt/venv/bin/python3 "$IMAGE" -c '
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
open("/keys/private.pem", "wb").write(key.private_bytes(
    s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
open("/keys/public.pem", "wb").write(key.public_key().public_bytes(
    s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
' || fail "could not generate a key pair"
KALSHI_API_KEY_ID=$(cat /proc/sys/kernel/random/uuid)
BOT_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export KALSHI_API_KEY_ID BOT_TOKEN
# Both runs give the key to the container's user (0400, owned by uid 10001), as the
# compose example says to: no opt-out (credentials.allow_insecure_key_file) anywhere.
cp "$keys/private.pem" "$keys/private-0400.pem"
chown 10001:10001 "$keys/private-0400.pem"
chmod 0400 "$keys/private-0400.pem"
chmod 0444 "$keys/public.pem"

step "run the image against the sandbox upstream"
podman network create "$NETWORK" >/dev/null
podman run -d --name "$PREFIX-sandbox" --network "$NETWORK" --network-alias sandbox \
  -e KALSHI_API_KEY_ID \
  -v "$keys/public.pem:/run/secrets/kalshi_public_key:ro" \
  -v "$ROOT/examples/sandbox_upstream.py:/app/sandbox_upstream.py:ro" \
  --no-healthcheck --entrypoint python3 "$IMAGE" /app/sandbox_upstream.py \
  >/dev/null 2>>"$WORK/podman.log" \
  || fail "the sandbox upstream container did not start"
podman run -d --name "$PREFIX-proxy" --network "$NETWORK" -p 127.0.0.1::8080 \
  -e KALSHI_API_KEY_ID -e BOT_TOKEN \
  -e KALSHI_PRIVATE_KEY_FILE=/run/secrets/kalshi_private_key \
  -e SIGNING_PROXY_UPSTREAM=http://sandbox:8081 \
  -e SIGNING_PROXY_CONFIG=/config/signing-proxy.yaml \
  -v "$keys/private-0400.pem:/run/secrets/kalshi_private_key:ro" \
  -v "$ROOT/examples/signing-proxy.yaml:/config/signing-proxy.yaml:ro" \
  "$IMAGE" >/dev/null 2>>"$WORK/podman.log" || fail "the proxy container did not start"
port=$(podman port "$PREFIX-proxy" 8080/tcp)
port=${port%%$'\n'*}
port=${port##*:}
[ -n "$port" ] || fail "the proxy's port is not published"
proxy=http://127.0.0.1:$port

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$proxy/healthz" 2>/dev/null && break
  [ "$(podman inspect "$PREFIX-proxy" --format '{{.State.Running}}')" = true ] \
    || fail "the proxy container exited: $(podman logs "$PREFIX-proxy" 2>&1 | tail -n 3)"
  sleep 0.2
done
curl -fsS -o /dev/null "$proxy/healthz" || fail "$proxy/healthz does not answer"

body=$WORK/balance.json
status=$(curl -sS -o "$body" -w '%{http_code}' -H "Authorization: Bearer $BOT_TOKEN" \
  "$proxy/trade-api/v2/portfolio/balance") || fail "request through the proxy failed"
[ "$status" = 200 ] || fail "balance through the proxy: HTTP $status: $(cat "$body")"
grep -q '"balance"' "$body" || fail "no balance in the answer: $(cat "$body")"
echo "GET /trade-api/v2/portfolio/balance -> $status $(cat "$body")"

status=$(curl -sS -o /dev/null -w '%{http_code}' "$proxy/trade-api/v2/portfolio/balance")
[ "$status" = 401 ] || fail "a request without the inbound token got HTTP $status, not 401"
echo "without the token -> 401"

podman healthcheck run "$PREFIX-proxy" >/dev/null 2>>"$WORK/podman.log" || fail "the image's HEALTHCHECK reports unhealthy"
echo "HEALTHCHECK: healthy"
podman rm -f -t 5 "$PREFIX-proxy" "$PREFIX-sandbox" >/dev/null 2>>"$WORK/podman.log"
podman network rm -f "$NETWORK" >/dev/null

# --- the compose example ---------------------------------------------------------------

step "compose example (examples/docker-compose.yml)"
export SIGNING_PROXY_IMAGE=$IMAGE
export KALSHI_PRIVATE_KEY_PATH=$keys/private-0400.pem
export KALSHI_PUBLIC_KEY_PATH=$keys/public.pem
COMPOSE_READY=1
compose up -d --no-build >"$WORK/compose.log" 2>&1 \
  || { tail -n 30 "$WORK/compose.log" >&2; fail "podman-compose up failed"; }
client=${PROJECT}_client_1
# The client waits up to 60 s for /readyz and asks again on a 5xx for up to 120 s.
code=$(timeout 240 podman wait "$client") || fail "the client service did not finish in 240 s"
logs=$(podman logs "$client" 2>&1)
# shellcheck disable=SC2001 # prefixes every line
echo "$logs" | sed 's/^/  client | /'
[ "$code" = 0 ] || fail "the client service exited with $code"
grep -q '"balance"' <<<"$logs" || fail "the client service printed no balance"
# (Not `podman logs | grep -q`: grep's early exit would fail the pipe under pipefail.)
proxy_logs=$(podman logs "${PROJECT}_signing-proxy_1" 2>&1)
line=$(grep '"path": "/trade-api/v2/portfolio/balance"' <<<"$proxy_logs" \
  | grep '"client": "bot"' | grep '"status": 200' || true)
[ -n "$line" ] || fail "the proxy logged no successful call from the client"
echo "client -> http://signing-proxy:8080 -> sandbox: 200"
