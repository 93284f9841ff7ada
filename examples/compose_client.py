"""The `client` service of docker-compose.yml: a stand-in for your bot, standard library only.

It waits for the proxy (compose starts services in order but does not wait for them to
be ready), then asks for the balance through it, unsigned, with the inbound token:

    PROXY_URL=http://signing-proxy:8080 PROXY_TOKEN=... python3 compose_client.py

It prints the answer and exits 0 on HTTP 200, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

PROXY_URL = os.environ.get("PROXY_URL", "http://signing-proxy:8080").rstrip("/")
TOKEN = os.environ.get("PROXY_TOKEN", "")
WAIT_SECONDS = 60


def wait_until_ready() -> None:
    """Poll /healthz until the proxy answers, for at most WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{PROXY_URL}/healthz", timeout=2):  # noqa: S310
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> int:
    """Ask for the balance through the proxy and print it."""
    wait_until_ready()
    request = urllib.request.Request(f"{PROXY_URL}/trade-api/v2/portfolio/balance")  # noqa: S310
    if TOKEN:
        request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            balance = json.load(answer)
    except urllib.error.HTTPError as exc:
        print(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    print(json.dumps(balance))
    print(f"balance: {balance['balance']} cents", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
