"""bench/loadgen.py's long-lived modes: one large stream, idle connections, a WebSocket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from loadgen_http import IO_TIMEOUT, latency_summary, read_response

# --- stream: one large body -------------------------------------------------------------------


async def run_stream(a: argparse.Namespace) -> dict[str, Any]:
    """One GET of a large body, read and discarded: bytes, MiB/s, time to the first byte."""
    timeout = aiohttp.ClientTimeout(total=a.duration, sock_read=IO_TIMEOUT)
    received = 0
    status = None
    first_byte = None
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        try:
            async with session.get(a.url) as r:
                status = r.status
                async for chunk in r.content.iter_any():
                    if first_byte is None:
                        first_byte = time.perf_counter() - started
                    received += len(chunk)
            error = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    return {
        "client": "python-aiohttp",
        "status": status,
        "bytes": received,
        "complete": received == a.expect_bytes and status == 200,
        "error": error,
        "elapsed_s": elapsed,
        "ttfb_ms": first_byte * 1000 if first_byte is not None else None,
        "mib_s": received / (1 << 20) / elapsed if elapsed > 0 else 0.0,
    }


# --- idle: many open connections --------------------------------------------------------------


async def run_idle(a: argparse.Namespace) -> dict[str, Any]:
    """Open --connections connections, one request each, and hold them until told on stdin."""
    url = urlsplit(a.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = (
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: bench-idle\r\n\r\n"
    ).encode()
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(64)  # the listen backlog is finite: open them in waves

    async def open_one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), IO_TIMEOUT
                )
                writer.write(request)
                status, _ = await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
                errors[type(exc).__name__] += 1
                return
            statuses[status] += 1
            opened.append((reader, writer))

    started = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(a.connections)))
    open_s = time.perf_counter() - started
    print(json.dumps({"ready": True, "opened": len(opened)}), flush=True)

    # Hold until the harness writes a line (or closes stdin), at most --hold seconds.
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
    )
    try:
        await asyncio.wait_for(stdin.readline(), a.hold)
    except TimeoutError:
        pass
    finally:
        transport.close()
    still_open = sum(1 for reader, _ in opened if not reader.at_eof())
    for _, writer in opened:
        writer.close()
    return {
        "client": "python-asyncio raw sockets",
        "requested": a.connections,
        "opened": len(opened),
        "still_open": still_open,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "statuses": {str(k): v for k, v in statuses.items()},
        "open_s": open_s,
    }


# --- ws: one session --------------------------------------------------------------------------

FRAME = json.dumps(
    {
        "type": "ticker",
        "sid": 1,
        "seq": 0,
        "msg": {
            "market_ticker": "KXBENCH-26JUN11-T1",
            "price_dollars": "0.4800",
            "yes_bid_dollars": "0.4700",
            "yes_ask_dollars": "0.4900",
            "volume_fp": "1200.00",
            "ts": 1779000000,
        },
    },
    separators=(",", ":"),
)


def signed_headers(key_file: str, key_id: str, path: str) -> dict[str, str]:
    from signing_proxy.kalshi.signer import Signer, parse_private_key

    key = parse_private_key(Path(key_file).read_bytes(), None, key_file)
    return Signer(key_id, key).headers("GET", path)


async def run_ws(a: argparse.Namespace) -> dict[str, Any]:
    """One WebSocket session: round trips, echo throughput, then server-push frames/s."""
    headers: dict[str, str] = {}
    if a.key_file:
        headers = signed_headers(a.key_file, a.key_id, urlsplit(a.url).path)
    timeout = aiohttp.ClientWSTimeout(ws_receive=IO_TIMEOUT, ws_close=2.0)
    async with aiohttp.ClientSession() as session:
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(
                    a.url, headers=headers, timeout=timeout, autoping=True, max_msg_size=1 << 20
                ),
                IO_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as exc:
            return {"handshake_status": exc.status, "ok": False, "error": str(exc)}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return {"handshake_status": None, "ok": False, "error": f"{type(exc).__name__}"}
        try:
            return {"handshake_status": 101, "ok": True, **await _ws_measure(ws, a)}
        finally:
            await ws.close()


async def _ws_measure(ws: aiohttp.ClientWebSocketResponse, a: argparse.Namespace) -> dict[str, Any]:
    rtts, rtt_error = await _ws_round_trips(ws, a)
    if rtt_error is not None:
        return {"error": rtt_error}
    sent, received, elapsed, error = await _ws_echo(ws, a)
    feed = await _ws_feed(ws, a) if error is None else {}
    summary = latency_summary(rtts)
    return {
        "client": "python-aiohttp websocket",
        "frame_bytes": len(FRAME),
        "frames_sent": sent,
        "frames_echoed": received,
        "echo_elapsed_s": elapsed,
        "echo_frames_per_s": received / elapsed if elapsed > 0 else 0.0,
        "window": a.window,
        **feed,
        "error": error or feed.get("feed_error"),
        "rtt_p50_ms": summary["p50_ms"],
        "rtt_p99_ms": summary["p99_ms"],
        "rtt_samples": summary["samples"],
    }


async def _ws_round_trips(
    ws: aiohttp.ClientWebSocketResponse, a: argparse.Namespace
) -> tuple[list[float], str | None]:
    """Round trips: one frame at a time; the times, or why they stopped."""
    rtts: list[float] = []
    deadline = time.perf_counter() + a.rtt_seconds
    while time.perf_counter() < deadline and len(rtts) < a.rtt_count:
        started = time.perf_counter()
        await ws.send_str(FRAME)
        msg = await ws.receive(timeout=IO_TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return rtts, f"unexpected {msg.type.name} during round trips"
        rtts.append(time.perf_counter() - started)
    return rtts, None


async def _ws_echo(
    ws: aiohttp.ClientWebSocketResponse, a: argparse.Namespace
) -> tuple[int, int, float, str | None]:
    """Throughput: keep up to --window frames in flight, for --echo-seconds at most;
    frames sent, echoes received, seconds to the last echo, and what went wrong."""
    window = asyncio.Semaphore(a.window)
    sent = received = 0
    sending_done = False
    all_echoed = asyncio.Event()
    started = time.perf_counter()
    last = started

    async def receiver() -> None:
        nonlocal received, last
        while True:
            msg = await ws.receive(timeout=IO_TIMEOUT)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            received += 1
            last = time.perf_counter()
            window.release()
            if sending_done and received >= sent:
                all_echoed.set()
                return

    receiving = asyncio.create_task(receiver())
    deadline = started + a.echo_seconds
    try:
        while time.perf_counter() < deadline and sent < a.max_frames and not receiving.done():
            try:
                await asyncio.wait_for(window.acquire(), IO_TIMEOUT)
            except TimeoutError:
                break
            await ws.send_str(FRAME)
            sent += 1
    finally:
        sending_done = True
    error = await _ws_echo_end(receiving, all_echoed, sent, lambda: received)
    return sent, received, last - started, error


async def _ws_echo_end(
    receiving: asyncio.Task[None],
    all_echoed: asyncio.Event,
    sent: int,
    received: Callable[[], int],
) -> str | None:
    """Wait for the echoes still in flight, stop the receiver; what went wrong, if anything."""
    error = None
    if received() < sent and not receiving.done():
        try:
            await asyncio.wait_for(all_echoed.wait(), IO_TIMEOUT)
        except TimeoutError:
            error = f"{sent - received()} echoes missing after {IO_TIMEOUT:g} s"
    if not receiving.done():
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
    elif receiving.exception() is not None:
        error = f"{type(receiving.exception()).__name__} while receiving echoes"
    if received() < sent and error is None:
        error = f"{sent - received()} echoes missing (session ended)"
    return error


async def _ws_feed(ws: aiohttp.ClientWebSocketResponse, a: argparse.Namespace) -> dict[str, Any]:
    """Server push: ask the upstream for a burst of frames and count them as they arrive."""
    command = {"cmd": "feed", "n": a.max_frames, "seconds": a.feed_seconds, "frame": FRAME}
    started = time.perf_counter()
    await ws.send_str(json.dumps(command, separators=(",", ":")))
    received = 0
    announced = None
    error = None
    # Bounded: the upstream stops after n frames or `seconds`; each receive has a timeout.
    for _ in range(a.max_frames + 1):
        msg = await ws.receive(timeout=IO_TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            error = f"feed ended by {msg.type.name}"
            break
        if msg.data.startswith('{"type":"done"'):
            announced = json.loads(msg.data)["sent"]
            break
        received += 1
    elapsed = time.perf_counter() - started
    if error is None and announced != received:
        error = f"feed: upstream sent {announced} frames, {received} arrived"
    return {
        "feed_frames": received,
        "feed_elapsed_s": elapsed,
        "frames_per_s": received / elapsed if elapsed > 0 else 0.0,
        "feed_error": error,
    }
