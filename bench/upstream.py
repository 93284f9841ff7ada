"""Benchmark upstreams, each run as its own process by bench/run.py.

fast     a minimal aiohttp upstream: a small JSON answer for any /trade-api/v2/ path,
         201 and the same small order for every POST (
         .../portfolio/events/orders and .../portfolio/order_groups/create cost the same, so
         pre-signed and on-demand write routes compare fairly), a streamed body of N
         bytes at /trade-api/v2/bench/stream?bytes=N, and a WebSocket echo at
         /trade-api/ws/v2 whose handshake must carry a valid Kalshi signature (the text
         frame {"cmd":"feed","n":N,"seconds":S,"frame":F} makes it push F N times instead).
         Signed REST requests are verified (every one, 1 in N, or none:
         --verify-every); unsigned ones are answered without verification (the direct
         baseline cannot sign). The age of every signature (receive time minus its
         KALSHI-ACCESS-TIMESTAMP) is recorded, verified or not: count, sum and maximum.
sandbox  signing_proxy.sandbox.create_sandbox_app, the realistic Kalshi-like upstream
         that verifies every signature.

Counters are served at /_bench/stats (outside /trade-api/v2/, so the proxy never
forwards it); /_bench/stats?reset_max=1 answers and then starts a new window for the
maxima (sig_age_max_ms), so the harness reads a per-scenario maximum. The port is
written as JSON to --ready-file once the socket is bound. The process stops
by itself when its parent goes away or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from common import STREAM_PATH, WS_PATH, loop_factory
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fanout import kalshi_subscribe

from signing_proxy.kalshi.protocol import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    signed_message,
)
from signing_proxy.kalshi.verifier import parse_ms, verify_signature

REST_PREFIX = "/trade-api/v2/"
_WINDOW_MS = 30_000

BALANCE = json.dumps(
    {
        "balance": 10000000,
        "balance_dollars": "100000.0000",
        "portfolio_value": 0,
        "updated_ts": 1779000000,
    },
    separators=(",", ":"),
).encode()
ORDER = json.dumps(
    {
        "order": {
            "order_id": "8f6a7c52-3b7e-4a8d-9b1e-2f0c5d7e9a11",
            "status": "resting",
            "ticker": "KXBENCH-26JUN11-T1",
            "side": "yes",
            "action": "buy",
            "yes_price_dollars": "0.0100",
            "remaining_count_fp": "1.00",
        }
    },
    separators=(",", ":"),
).encode()
FEED_COMMAND = '{"cmd":"feed"'
_STREAM_CHUNK = bytes(256 * 1024)
_MAX_STREAM = 1 << 31


class Stats:
    """What the upstream saw; read by the harness before and after each scenario."""

    def __init__(self) -> None:
        self.requests = 0
        self.unsigned = 0
        self.signed = 0
        self.verified_ok = 0
        self.verified_bad = 0
        self.ws_sessions = 0
        self.ws_handshake_bad = 0
        self.ws_frames = 0
        # Signature age in ms (receive time - KALSHI-ACCESS-TIMESTAMP); the timestamp has
        # millisecond resolution, so an on-demand signature reads 0-1 ms.
        self.sig_age_count = 0
        self.sig_age_sum_ms = 0.0
        self.sig_age_max_ms: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """The counters, as served at /_bench/stats."""
        return dict(vars(self))

    def record_age(self, timestamp: str | None) -> None:
        """Count the age of a signature made at `timestamp` (ms), if it is one."""
        sent_ms = parse_ms(timestamp)
        if sent_ms is None:
            return
        age = time.time_ns() / 1_000_000 - sent_ms
        self.sig_age_count += 1
        self.sig_age_sum_ms += age
        if self.sig_age_max_ms is None or age > self.sig_age_max_ms:
            self.sig_age_max_ms = age


def verify(
    public_key: RSAPublicKey | None, key_id: str, headers: object, method: str, raw_path: str
) -> bool:
    """Kalshi's check: key id known, timestamp fresh, RSA-PSS over ts+METHOD+path."""
    get = headers.get  # type: ignore[attr-defined]
    if public_key is None or get(HEADER_KEY) != key_id:
        return False
    timestamp = get(HEADER_TIMESTAMP) or ""
    sent_ms = parse_ms(timestamp)
    if sent_ms is None or abs(time.time_ns() // 1_000_000 - sent_ms) > _WINDOW_MS:
        return False
    path = raw_path.partition("?")[0]
    message = signed_message(timestamp, method, path)
    return verify_signature(public_key, message, get(HEADER_SIGNATURE) or "")


def fast_app(public_key: RSAPublicKey | None, key_id: str, verify_every: int) -> web.Application:
    """The fast upstream: small answers, a stream, a WebSocket; counts what it saw."""
    stats = Stats()

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = request.raw_path
        if raw.startswith("/_bench/stats"):
            answer = web.json_response(stats.as_dict())
            if request.query.get("reset_max"):
                stats.sig_age_max_ms = None
            return answer
        if raw.partition("?")[0] == WS_PATH:
            return await websocket(request, stats, public_key, key_id)
        stats.requests += 1
        if not raw.startswith(REST_PREFIX):
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        if HEADER_SIGNATURE in request.headers:
            stats.signed += 1
            stats.record_age(request.headers.get(HEADER_TIMESTAMP))
            if verify_every and stats.signed % verify_every == 0:
                if verify(public_key, key_id, request.headers, request.method, raw):
                    stats.verified_ok += 1
                else:
                    stats.verified_bad += 1
                    return web.json_response(
                        {
                            "error": {
                                "code": "authentication_error",
                                "details": "INCORRECT_API_KEY_SIGNATURE",
                            }
                        },
                        status=401,
                    )
        else:
            stats.unsigned += 1
        path = raw.partition("?")[0]
        if path == STREAM_PATH:
            return await stream(request)
        if request.method == "POST":
            # Every write route gets the same answer: events/orders, order_groups/create, ...
            await request.read()
            return web.Response(status=201, body=ORDER, content_type="application/json")
        return web.Response(body=BALANCE, content_type="application/json")

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def stream(request: web.Request) -> web.StreamResponse:
    """?bytes=N zero bytes, streamed in 256 KiB chunks."""
    try:
        size = min(int(request.query.get("bytes", "0")), _MAX_STREAM)
    except ValueError:
        size = 0
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    view = memoryview(_STREAM_CHUNK)
    left = size
    while left > 0:
        n = min(left, len(view))
        await response.write(view[:n])
        left -= n
    await response.write_eof()
    return response


async def websocket(
    request: web.Request, stats: Stats, public_key: RSAPublicKey | None, key_id: str
) -> web.StreamResponse:
    """A signed WebSocket handshake, then echo, or a feed on a feed command."""
    # The handshake must be signed: GET + /trade-api/ws/v2, exactly as Kalshi checks it.
    if not verify(public_key, key_id, request.headers, "GET", request.raw_path):
        stats.ws_handshake_bad += 1
        return web.json_response({"error": {"code": "authentication_error"}}, status=401)
    stats.ws_sessions += 1
    ws = web.WebSocketResponse(max_msg_size=1 << 20, autoping=True)
    await ws.prepare(request)
    pushing: list[asyncio.Task[None]] = []
    async for msg in ws:
        if msg.type == WSMsgType.TEXT and msg.data.startswith(FEED_COMMAND):
            await feed(ws, json.loads(msg.data), stats)
        elif msg.type == WSMsgType.TEXT and '"subscribe"' in msg.data:
            # Kalshi's subscribe (the shared feed's fan-out bench): a paced ticker feed.
            task = await kalshi_subscribe(ws, json.loads(msg.data))
            if task is not None:
                pushing.append(task)
        elif msg.type == WSMsgType.TEXT:
            stats.ws_frames += 1
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            stats.ws_frames += 1
            await ws.send_bytes(msg.data)
        else:
            break
    for task in pushing:
        task.cancel()
    return ws


async def feed(ws: web.WebSocketResponse, command: dict[str, object], stats: Stats) -> None:
    """Server push, like Kalshi's market data: `n` frames, then a "done" frame."""
    # `n` frames as fast as the socket takes them (bounded by count and time), then one
    # "done" frame with the count.
    frame = str(command.get("frame", ""))
    n = min(int(command.get("n", 0)), 10_000_000)  # type: ignore[call-overload]
    deadline = time.monotonic() + min(float(command.get("seconds", 1)), 60.0)  # type: ignore[arg-type]
    sent = 0
    while sent < n:
        await ws.send_str(frame)
        sent += 1
        if sent % 512 == 0 and time.monotonic() > deadline:
            break
    stats.ws_frames += sent
    await ws.send_str(json.dumps({"type": "done", "sent": sent}, separators=(",", ":")))


def sandbox_app(public_key: RSAPublicKey, key_id: str) -> web.Application:
    """signing_proxy's sandbox, with a request count at /_bench/stats."""
    from signing_proxy.sandbox import create_sandbox_app

    app = create_sandbox_app({key_id: public_key})
    requests = {"n": 0}

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.raw_path.startswith("/_bench/stats"):
            return web.json_response({"requests": requests["n"]})
        requests["n"] += 1
        return await handler(request)

    app.middlewares.append(count)
    return app


def load_public_key(path: str | None) -> RSAPublicKey | None:
    """The PEM public key at `path`, if any."""
    if not path:
        return None
    loaded = serialization.load_pem_public_key(Path(path).read_bytes())
    assert isinstance(loaded, RSAPublicKey)
    return loaded


def write_ready(path: str, port: int) -> None:
    """Tell the harness the port, atomically."""
    tmp = path + ".tmp"
    Path(tmp).write_text(json.dumps({"port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> None:
    """Serve until a signal, the parent's exit, or --max-seconds."""
    public_key = load_public_key(args.public_key)
    if args.sandbox:
        assert public_key is not None, "--sandbox needs --public-key"
        app = sandbox_app(public_key, args.key_id)
    else:
        app = fast_app(public_key, args.key_id, args.verify_every)
    ssl_context = None
    if args.cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.cert, args.key)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context, backlog=2048)
    await site.start()
    server: Any = getattr(site, "_server", None)  # the only way to learn a port-0 bind
    port = server.sockets[0].getsockname()[1]
    write_ready(args.ready_file, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = time.monotonic() + args.max_seconds
    try:
        # Bounded: stops on a signal, when the parent is gone, or at the deadline.
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await runner.cleanup()


def main() -> int:
    """Run the upstream the arguments ask for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--public-key", help="PEM public key registered for --key-id")
    parser.add_argument("--key-id", default="")
    parser.add_argument(
        "--verify-every", type=int, default=1, help="verify 1 signed request in N (1: all, 0: none)"
    )
    parser.add_argument("--sandbox", action="store_true")
    parser.add_argument("--cert", help="serve TLS with this certificate chain (PEM)")
    parser.add_argument("--key", help="private key of --cert")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--uvloop", action="store_true", help="use uvloop when installed")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.uvloop)) as runner:
        runner.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
