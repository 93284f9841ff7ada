#!/usr/bin/env bash
# CI: run scripts/container-smoke.sh when podman is here or can be installed with apt;
# otherwise print "container smoke: skipped (reason)" and exit 0. A smoke that runs and
# fails exits non-zero. SKIP_CONTAINER_SMOKE=1 skips it on purpose.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

skip() {
  echo "container smoke: skipped ($*)"
  exit 0
}

PACKAGES=(podman runc netavark aardvark-dns iptables podman-compose debootstrap curl)

[ "${SKIP_CONTAINER_SMOKE:-}" = 1 ] && skip "SKIP_CONTAINER_SMOKE=1"
[ "$(id -u)" -eq 0 ] || skip "not root: the smoke uses rootful podman"

missing=()
for tool in podman podman-compose iptables debootstrap curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || skip "${missing[*]} missing and no apt-get to install them"
  echo "container smoke: installing ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq \
    && apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${PACKAGES[@]}"; } >/tmp/ci-container-smoke-apt.log 2>&1; then
    tail -n 5 /tmp/ci-container-smoke-apt.log
    skip "podman could not be installed with apt-get"
  fi
fi

# A hung podman must not eat CI's time (15 minutes in all): the smoke takes about
# 2 minutes from nothing, 10-30 s once the base image exists.
timeout --kill-after=30 420 bash scripts/container-smoke.sh
status=$?
[ "$status" -eq 124 ] && echo "container smoke: FAILED: timed out after 420 s" >&2
exit "$status"
