"""Trade through signing-proxy from Python with plain `requests`: no key, no signing code.

    pip install requests
    python3 examples/python_requests.py [PROXY_URL]     (default http://127.0.0.1:8080)

Asks for the balance, finds an open market, places a 1-cent bid for 1 contract on it
(far below the market, so it rests) and cancels it at once. PROXY_TOKEN, when set, is
sent as "Authorization: Bearer ...". Exits 1 at the first answer that is not 2xx. Try it
with `signing-proxy sandbox`; against production this places a real order (and cancels
it).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

import requests


class Kalshi:
    """Unsigned calls to Kalshi's Trade API v2 through the proxy."""

    def __init__(self, proxy_url: str, token: str | None = None) -> None:
        self.base = proxy_url.rstrip("/") + "/trade-api/v2"
        self.session = requests.Session()  # keep-alive to the proxy
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send one request, print its outcome, and return the JSON body (exit on non-2xx)."""
        answer = self.session.request(method, self.base + path, timeout=30, **kwargs)
        print(f"{method} {answer.request.path_url} -> {answer.status_code}")
        print(answer.text)
        if not answer.ok:
            # Kalshi's errors and the proxy's own share one shape: {"error": {"code", ...}}.
            sys.exit(f"python_requests.py: {method} {path} answered {answer.status_code}")
        body: dict[str, Any] = answer.json()
        return body


def main(proxy_url: str) -> None:
    """Balance, one order, one cancel."""
    kalshi = Kalshi(proxy_url, os.environ.get("PROXY_TOKEN"))

    balance = kalshi.call("GET", "/portfolio/balance")
    print(f"balance: {balance['balance_dollars']} dollars")

    markets = kalshi.call("GET", "/markets", params={"status": "open", "limit": 1})["markets"]
    if not markets:
        sys.exit("python_requests.py: no open market")
    order = {
        "ticker": markets[0]["ticker"],
        "side": "bid",
        "count": "1.00",
        "price": "0.0100",
        "client_order_id": str(uuid.uuid4()),
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
    }
    placed = kalshi.call("POST", "/portfolio/events/orders", json=order)
    canceled = kalshi.call("DELETE", f"/portfolio/events/orders/{placed['order_id']}")
    print(json.dumps({"placed": placed["order_id"], "reduced_by": canceled["reduced_by"]}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
