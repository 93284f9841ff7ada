"""Kalshi's WebSocket feed through signing-proxy with aiohttp: no key, no signed handshake.

    python3 examples/ws_client.py [PROXY_URL] [--market TICKER] [--count N] [--timeout S]

Connects to PROXY_URL's /trade-api/ws/v2 (the proxy signs the handshake), subscribes to
the `ticker` channel for one market (by default the first open one, found over REST) and
prints every message it receives as one JSON line, until N `ticker` messages have come
(default 3). aiohttp answers Kalshi's heartbeat pings by itself. PROXY_TOKEN, when set,
is sent as "Authorization: Bearer ..." on the REST call and the handshake.

Exit status: 0 after N ticker messages; 1 on an error message or when they do not come
within S seconds (default 30); 2 when the handshake is refused (the line says the HTTP
status).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proxy", nargs="?", default="http://127.0.0.1:8080")
    parser.add_argument("--market", help="market ticker (default: the first open market)")
    parser.add_argument("--count", type=int, default=3, help="ticker messages to wait for")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for them")
    return parser.parse_args(argv)


async def first_open_market(session: aiohttp.ClientSession, proxy: str) -> str:
    """The ticker of the first open market, over REST through the proxy."""
    url = f"{proxy}/trade-api/v2/markets"
    async with session.get(url, params={"status": "open", "limit": "1"}) as answer:
        answer.raise_for_status()
        markets: list[dict[str, Any]] = (await answer.json())["markets"]
    if not markets:
        raise SystemExit("ws_client.py: no open market")
    ticker: str = markets[0]["ticker"]
    return ticker


async def stream(args: argparse.Namespace) -> int:
    """Subscribe and print messages; the exit status."""
    proxy = args.proxy.rstrip("/")
    ws_url = "ws" + proxy.removeprefix("http") + "/trade-api/ws/v2"  # http->ws, https->wss
    token = os.environ.get("PROXY_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        market = args.market or await first_open_market(session, proxy)
        try:
            ws = await session.ws_connect(ws_url, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            print(f"ws_client.py: handshake refused: HTTP {exc.status} {exc.message}")
            return 2
        async with ws:
            await ws.send_json(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {
                        "channels": ["ticker"],
                        "market_tickers": [market],
                        # The market's current state at once, then its changes.
                        "send_initial_snapshot": True,
                    },
                }
            )
            tickers = 0
            try:
                async with asyncio.timeout(args.timeout):
                    async for message in ws:
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            break  # closed or failed
                        print(message.data, flush=True)
                        doc = json.loads(message.data)
                        if doc.get("type") == "error":
                            return 1
                        if doc.get("type") == "ticker":
                            tickers += 1
                            if tickers >= args.count:
                                return 0
            except TimeoutError:
                pass
    print(f"ws_client.py: {tickers} of {args.count} ticker messages in {args.timeout} s")
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    return asyncio.run(stream(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
