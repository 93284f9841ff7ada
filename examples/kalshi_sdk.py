"""Kalshi's official Python SDK (kalshi-python-sync) pointed at signing-proxy, with no key.

    pip install kalshi-python-sync
    python3 examples/kalshi_sdk.py [PROXY_URL]      (default http://127.0.0.1:8080)

The SDK signs only when it is given a key: `KalshiClient` builds its signer only when
its Configuration carries `api_key_id` and `private_key_pem`. Given neither, it sends
unsigned requests to `Configuration.host`, and the proxy signs them. PROXY_TOKEN, when
set, goes out as "Authorization: Bearer ..." through the SDK's own `set_bearer_token`.

Asks for the balance and a few open markets, places a 1-cent YES bid for 1 contract
(far below the market, so it rests) and cancels it at once. SDK 3.2.0's answer models
lag Kalshi's wire format (see the comments), so only get_balance() is fully typed here.
Try it with `signing-proxy sandbox`; against production this places a real order (and
cancels it).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

from kalshi_python_sync import Configuration, KalshiClient
from kalshi_python_sync.models.create_order_request import CreateOrderRequest


def body(response: Any, what: str) -> dict[str, Any]:
    """The JSON of a raw (`*_without_preload_content`) answer; exit unless it is 2xx."""
    if not 200 <= response.status < 300:
        sys.exit(f"kalshi_sdk.py: {what} answered {response.status}: {response.data!r}")
    result: dict[str, Any] = json.loads(response.data)
    return result


def main(proxy_url: str) -> None:
    """Balance, markets, one order, one cancel: all through the proxy, none signed here."""
    # host is the SDK's base URL, /trade-api/v2 included. No api_key_id, no private key.
    config = Configuration(host=proxy_url.rstrip("/") + "/trade-api/v2")
    client = KalshiClient(config)
    if client.kalshi_auth is not None:
        sys.exit("kalshi_sdk.py: the SDK found a key and would sign; the proxy should")
    if token := os.environ.get("PROXY_TOKEN"):
        client.set_bearer_token(token)

    # Typed, and raises kalshi_python_sync.exceptions.ApiException on a 4xx or 5xx.
    balance = client.get_balance()
    print(f"balance: {balance.balance} cents")

    # SDK 3.2.0's Market model still requires cent-integer fields (liquidity, tick_size,
    # ...) that Kalshi no longer sends, so the typed get_markets() fails against Kalshi
    # itself. The raw variant skips that model: same request, JSON body.
    raw = client.get_markets_without_preload_content(limit=3, status="open")
    markets = body(raw, "GET /markets")["markets"]
    for market in markets:
        print(f"market: {market['ticker']} {market['title']}")
    if not markets:
        sys.exit("kalshi_sdk.py: no open market")

    # The request model is current; the Order answer model is not (it wants integer
    # yes_price / remaining_count, Kalshi now sends *_dollars / *_fp): raw variants again.
    request = CreateOrderRequest(
        ticker=markets[0]["ticker"],
        side="yes",
        action="buy",
        count=1,
        yes_price=1,
        client_order_id=str(uuid.uuid4()),
        time_in_force="good_till_canceled",
    )
    raw = client.create_order_without_preload_content(request)
    placed = body(raw, "POST /portfolio/orders")["order"]
    print(f"placed: {placed['order_id']} {placed['status']}")
    raw = client.cancel_order_without_preload_content(placed["order_id"])
    canceled = body(raw, "DELETE /portfolio/orders/{id}")["order"]
    print(f"canceled: {canceled['order_id']} {canceled['status']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
