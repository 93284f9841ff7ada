"""The `client` service of docker-compose.yml: a stand-in for your bot, standard library only.

It waits until the proxy is ready (compose starts services in order but does not wait
for them to be ready): /readyz answers 200 once the proxy's upstream answers and accepts
its key. Then it asks for the balance through it, unsigned, with the inbound token (again
on a 502, 503 or 504, for at most two minutes):

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
# Longer than the proxy may take to reach its upstream: a GET is tried three times
# (upstream.retries), each connection given 5 s (upstream.connect_timeout).
ANSWER_SECONDS = 30
# How long a 502, 503 or 504 is asked again: the smoke test has seen a container's name
# lookups hang for up to 45 s just after `compose up`.
RETRY_SECONDS = 120


def wait_until_ready() -> None:
    """Poll /readyz until the proxy and its upstream are ready, for at most WAIT_SECONDS.

    Not /healthz: that answers as soon as the proxy listens, before it has reached its
    upstream."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{PROXY_URL}/readyz", timeout=10):  # noqa: S310
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def balance() -> dict[str, object]:
    """The balance, through the proxy; a 502, 503 or 504 (the proxy could not reach its
    upstream: just after `compose up`, a container's first name lookups can hang for
    seconds) is asked again, a GET being safe to repeat, until RETRY_SECONDS have passed."""
    request = urllib.request.Request(f"{PROXY_URL}/trade-api/v2/portfolio/balance")  # noqa: S310
    if TOKEN:
        request.add_header("Authorization", f"Bearer {TOKEN}")
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_SECONDS) as answer:  # noqa: S310
                return dict(json.load(answer))
        except urllib.error.HTTPError as exc:
            if exc.code not in (502, 503, 504) or time.monotonic() > deadline:
                raise
            print(f"HTTP {exc.code}, asking again: {exc.read().decode(errors='replace')}")
            time.sleep(1)


def main() -> int:
    """Ask for the balance through the proxy and print it."""
    wait_until_ready()
    try:
        answer = balance()
    except urllib.error.HTTPError as exc:
        print(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    print(f"balance: {answer['balance']} cents", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
