"""Paths, the loopback host, the Kalshi routes and the order body every part of the bench shares."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
MIB = 1 << 20
HOST = "127.0.0.1"

BALANCE_PATH = "/trade-api/v2/portfolio/balance"
ORDERS_PATH = "/trade-api/v2/portfolio/events/orders"  # pre-signed by default in the proxy
# A write route the proxy does not pre-sign, answered alike by the bench's upstream: it
# shows what the same POST costs when signed on demand.
ON_DEMAND_PATH = "/trade-api/v2/portfolio/order_groups/create"
STREAM_PATH = "/trade-api/v2/bench/stream"
WS_PATH = "/trade-api/ws/v2"
ORDER_BODY = json.dumps(
    {
        "ticker": "KXBENCH-26JUN11-T1",
        "side": "bid",
        "count": "1.00",
        "price": "0.0100",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        "client_order_id": "0b6c7f1e-5a4d-4c3b-9e2f-1a0d9c8b7e6f",
    },
    separators=(",", ":"),
)


# Kalshi accepts a timestamp about 5 s old; a signature older than half that is suspect.
T_SIG_AGE_MAX_MS = 2500.0


def loop_factory(want_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when wanted and installed, else None (asyncio's)."""
    if want_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            pass
    return None
