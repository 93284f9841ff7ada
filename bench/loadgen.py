"""Python load generator for bench/run.py, run as its own process; prints one JSON line.

http     keep-alive aiohttp client, fixed concurrency, for a duration (the fallback
         when wrk is not installed): a closed loop, each worker sends as soon as its
         previous answer arrived.
         With --rate R: paced, open loop. One keep-alive connection, request i is due at
         start + i/R whatever happened before; latency is measured from that scheduled
         time, so a slow answer also counts against the requests queued behind it
         (no coordinated omission). Service time (from the actual send) and send lag
         (actual send - scheduled) are reported too. Bounded by --duration (the
         schedule) and --max-requests, and stops sending at duration + 15 s.
oneshot  a new TCP connection per call (plus a full TLS handshake for https:// URLs,
         verified against --cafile, no session resumption), "Connection: close", the
         way curl or requests.get behave; raw asyncio streams, no client library
stream   one GET of a large body, read and discarded; bytes and MiB/s
idle     open N keep-alive connections, one request on each, then hold them idle;
         prints a READY line and waits for a line on stdin (or --hold seconds)
ws       one WebSocket session: p50/p99 round trip (ping-pong of one frame), echo
         frames/s with a bounded window of frames in flight, then server-push frames/s
         (the upstream sends a burst, like a market-data feed; the headline number)

Every loop is bounded by a duration and a count; every network wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import socket
import ssl
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

IO_TIMEOUT = 15.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: list[float]) -> dict[str, Any]:
    values = sorted(latencies_s)
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "mean_ms": sum(ms) / len(ms) if ms else None,
        "samples": len(ms),
    }


def parse_headers(args_headers: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in args_headers:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()
    return headers


# --- http: keep-alive, fixed concurrency ------------------------------------------------------


async def run_http(a: argparse.Namespace) -> dict[str, Any]:
    body = a.body.encode() if a.body is not None else None
    headers = parse_headers(a.header)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    connector = aiohttp.TCPConnector(limit=a.concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=IO_TIMEOUT)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    issued = 0
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
    ) as session:
        deadline = time.perf_counter() + a.duration

        async def worker() -> None:
            nonlocal issued
            while time.perf_counter() < deadline and issued < a.max_requests:
                issued += 1
                started = time.perf_counter()
                try:
                    async with session.request(a.method, a.url, data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        elapsed = time.perf_counter() - started
    return _http_result(latencies, statuses, errors, elapsed, "python-aiohttp keep-alive")


def _http_result(
    latencies: list[float],
    statuses: Counter[int],
    errors: Counter[str],
    elapsed: float,
    client: str,
) -> dict[str, Any]:
    ok = sum(n for s, n in statuses.items() if 200 <= s < 400)
    return {
        "client": client,
        "requests": len(latencies),
        "ok": ok,
        "non2xx": len(latencies) - ok,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        **latency_summary(latencies),
    }


# --- http --rate: paced, open loop, one keep-alive connection ------------------------------


class _Connection(http.client.HTTPConnection):
    """http.client keep-alive connection that counts its connects and sets TCP_NODELAY."""

    connects = 0

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1


def run_http_paced(a: argparse.Namespace) -> dict[str, Any]:
    """Open loop at a fixed rate on one connection; latency from the scheduled send time.

    A plain blocking client: with one connection and one request at a time the process
    has nothing else to do, so time.sleep() (nanosleep, ~50 us slack) keeps the schedule
    far more exactly than an event loop's millisecond timers, and costs no CPU.
    """
    url = urlsplit(a.url)
    if url.scheme != "http":
        raise SystemExit("--rate: only http:// URLs")
    target = url.path + (f"?{url.query}" if url.query else "")
    body = a.body.encode() if a.body is not None else None
    headers = {"User-Agent": "bench-paced", **parse_headers(a.header)}
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    interval = 1.0 / a.rate
    planned = max(1, min(a.max_requests, int(a.duration * a.rate)))
    conn = _Connection(url.hostname or "127.0.0.1", url.port or 80, timeout=IO_TIMEOUT)
    latencies: list[float] = []
    service: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    warmup_errors = 0

    def one() -> int:
        conn.request(a.method, target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    try:
        for _ in range(max(0, a.warmup)):  # unmeasured: opens the connection
            try:
                one()
            except (OSError, http.client.HTTPException):
                warmup_errors += 1
                conn.close()
        start = time.perf_counter() + interval
        stop_sending = start + a.duration + IO_TIMEOUT
        unsent = 0
        for i in range(planned):
            scheduled = start + i * interval
            now = time.perf_counter()
            if now < scheduled:
                time.sleep(scheduled - now)
            elif now > stop_sending:  # far behind schedule: give up on the rest
                unsent = planned - i
                break
            sent = time.perf_counter()
            try:
                status = one()
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] += 1
                conn.close()  # the next request reconnects
                continue
            done = time.perf_counter()
            latencies.append(done - scheduled)
            service.append(done - sent)
            lags.append(sent - scheduled)
            statuses[status] += 1
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    result = _http_result(
        latencies,
        statuses,
        errors,
        elapsed,
        f"python http.client paced, open loop, {a.rate:g} req/s on 1 keep-alive connection",
    )
    lag_ms = sorted(v * 1000 for v in lags)
    result.update(
        {
            "rate": a.rate,
            "planned": planned,
            "unsent": unsent,
            "connects": conn.connects,
            "warmup_errors": warmup_errors,
            "service": latency_summary(service),
            "send_lag_p50_ms": percentile(lag_ms, 50),
            "send_lag_p99_ms": percentile(lag_ms, 99),
            "send_lag_max_ms": lag_ms[-1] if lag_ms else None,
            # Sends due while the previous answer was still outstanding: the backlog that
            # a closed loop would silently not have sent.
            "late_sends": sum(1 for v in lags if v > interval),
        }
    )
    return result


# --- oneshot: a new connection per call -----------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        body = await reader.read()  # Connection: close delimits the body
        return status, len(body)
    await reader.readexactly(length)
    return status, length


async def run_oneshot(a: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(a.url)
    host = url.hostname or "127.0.0.1"
    port = url.port or (443 if url.scheme == "https" else 80)
    ssl_context: ssl.SSLContext | None = None
    if url.scheme == "https":
        # One context (CA loaded once) but a full handshake per call: no session is reused.
        ssl_context = ssl.create_default_context(cafile=a.cafile)
    target = url.path + (f"?{url.query}" if url.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: bench-oneshot\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    issued = 0
    deadline = time.perf_counter() + a.duration

    async def one() -> int:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
        )
        try:
            writer.write(request)
            await writer.drain()
            status, _ = await _read_response(reader)
            await reader.read()  # the server closes after the answer
            return status
        finally:
            writer.close()
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def worker() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < a.max_requests:
            issued += 1
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(one(), IO_TIMEOUT)
            except (
                TimeoutError,
                OSError,
                ssl.SSLError,
                ValueError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ) as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    elapsed = time.perf_counter() - started
    kind = "TLS 1.3 full handshake" if ssl_context else "plain TCP"
    return _http_result(
        latencies, statuses, errors, elapsed, f"python-asyncio one-shot ({kind}, Connection: close)"
    )


# --- stream: one large body -------------------------------------------------------------------


async def run_stream(a: argparse.Namespace) -> dict[str, Any]:
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
                status, _ = await asyncio.wait_for(_read_response(reader), IO_TIMEOUT)
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


def _signed_headers(key_file: str, key_id: str, path: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from signing_proxy.kalshi.signer import Signer

    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Signer(key_id, key).headers("GET", path)


async def run_ws(a: argparse.Namespace) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if a.key_file:
        headers = _signed_headers(a.key_file, a.key_id, urlsplit(a.url).path)
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
    # Round trips: one frame at a time.
    rtts: list[float] = []
    deadline = time.perf_counter() + a.rtt_seconds
    while time.perf_counter() < deadline and len(rtts) < a.rtt_count:
        started = time.perf_counter()
        await ws.send_str(FRAME)
        msg = await ws.receive(timeout=IO_TIMEOUT)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return {"error": f"unexpected {msg.type.name} during round trips"}
        rtts.append(time.perf_counter() - started)

    # Throughput: keep up to --window frames in flight, for --duration seconds at most.
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
    error = None
    if received < sent and not receiving.done():
        try:
            await asyncio.wait_for(all_echoed.wait(), IO_TIMEOUT)
        except TimeoutError:
            error = f"{sent - received} echoes missing after {IO_TIMEOUT:g} s"
    if not receiving.done():
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
    elif receiving.exception() is not None:
        error = f"{type(receiving.exception()).__name__} while receiving echoes"
    if received < sent and error is None:
        error = f"{sent - received} echoes missing (session ended)"
    elapsed = last - started
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


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("http", "oneshot", "stream", "idle", "ws"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument(
        "--rate",
        type=float,
        help="http: paced open loop at R requests/s on one keep-alive connection",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="http --rate: unmeasured requests first"
    )
    parser.add_argument("--cafile")
    parser.add_argument("--expect-bytes", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--key-file")
    parser.add_argument("--key-id", default="")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--max-frames", type=int, default=5_000_000)
    parser.add_argument("--rtt-seconds", type=float, default=1.0)
    parser.add_argument("--echo-seconds", type=float, default=1.0)
    parser.add_argument("--feed-seconds", type=float, default=1.0)
    parser.add_argument("--rtt-count", type=int, default=5000)
    parser.add_argument("--uvloop", action="store_true", help="use uvloop when installed")
    a = parser.parse_args()
    if a.rate is not None:
        if a.mode != "http":
            parser.error("--rate applies to the http mode only")
        if not 0 < a.rate <= 20_000 or not 0 < a.duration <= 600:
            parser.error("--rate must be in (0, 20000] and --duration in (0, 600]")
        result = run_http_paced(a)
        result["event_loop"] = "none (blocking client)"
        print(json.dumps(result), flush=True)
        return 0
    runner = {
        "http": run_http,
        "oneshot": run_oneshot,
        "stream": run_stream,
        "idle": run_idle,
        "ws": run_ws,
    }[a.mode]
    loop_factory = None
    if a.uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as r:
        result = r.run(runner(a))
    result["event_loop"] = "uvloop" if loop_factory else "asyncio"
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
