"""Kalshi's official Python SDK (kalshi-python-sync) pointed at signing-proxy, with no key.

    pip install kalshi-python-sync
    python3 examples/kalshi_sdk.py [PROXY_URL]      (default http://127.0.0.1:8080)

The SDK signs only when it is given a key: `KalshiClient` builds its signer only when
its Configuration carries `api_key_id` and `private_key_pem`. Given neither, it sends
unsigned requests to `Configuration.host`, and the proxy signs them. PROXY_TOKEN, when
set, goes out as "Authorization: Bearer ..." through the SDK's own `set_bearer_token`.

Asks for the balance and a few open markets, places a 1-cent YES bid for 1 contract
(far below the market, so it rests) and cancels it at once. SDK 3.2.0's answer models
lag Kalshi's wire format (see the comments), so only get_balance() is fully typed here,
and its order methods call the V1 order routes Kalshi removed in 2026: orders go through
the SDK's own raw call to the V2 routes instead.
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


def body(response: Any, what: str) -> dict[str, Any]:
    """The JSON of a raw (`*_without_preload_content`) answer; exit unless it is 2xx."""
    if not 200 <= response.status < 300:
        sys.exit(f"kalshi_sdk.py: {what} answered {response.status}: {response.data!r}")
    result: dict[str, Any] = json.loads(response.data)
    return result


def raw_call(client: KalshiClient, method: str, path: str, payload: Any = None) -> Any:
    """One call through the SDK's own HTTP client (its headers and token), answer unread."""
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    params = client.param_serialize(
        method=method, resource_path=path, header_params=headers, body=payload
    )
    response = client.call_api(*params)
    response.read()
    return response


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

    # SDK 3.2.0's create_order() and cancel_order() call the removed V1 routes (the
    # proxy answers them 410, or translates them with compat.v1_orders: translate).
    # The V2 order: a bid on the YES book, price and count as strings.
    order = {
        "ticker": markets[0]["ticker"],
        "side": "bid",
        "price": "0.0100",
        "count": "1.00",
        "client_order_id": str(uuid.uuid4()),
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
    }
    raw = raw_call(client, "POST", "/portfolio/events/orders", order)
    placed = body(raw, "POST /portfolio/events/orders")
    status = "resting" if placed["remaining_count"] != "0.00" else "executed"
    print(f"placed: {placed['order_id']} {status}")
    raw = raw_call(client, "DELETE", f"/portfolio/events/orders/{placed['order_id']}")
    canceled = body(raw, "DELETE /portfolio/events/orders/{id}")
    print(f"canceled: {canceled['order_id']} canceled (reduced by {canceled['reduced_by']})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
