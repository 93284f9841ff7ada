"""bench/loadgen.py's request/answer modes: http (closed loop or --rate paced), oneshot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    """p50, p90, p99, max and mean in ms of latencies in seconds, and their count."""
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
    """--header "Name: value" arguments as a dict."""
    headers: dict[str, str] = {}
    for item in args_headers:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()
    return headers


async def _closed_loop(
    a: argparse.Namespace,
    call: Callable[[], Awaitable[int]],
    failures: tuple[type[BaseException], ...],
) -> tuple[list[float], Counter[int], Counter[str], float]:
    """--concurrency workers, each making its next `call` as soon as the last one answered,
    for --duration seconds or --max-requests calls: latencies, statuses, errors, elapsed."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    issued = 0
    deadline = time.perf_counter() + a.duration

    async def worker() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < a.max_requests:
            issued += 1
            started = time.perf_counter()
            try:
                status = await call()
            except failures as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    elapsed = time.perf_counter() - started
    return latencies, statuses, errors, elapsed


# --- http: keep-alive, fixed concurrency ------------------------------------------------------


async def run_http(a: argparse.Namespace) -> dict[str, Any]:
    """Closed loop on keep-alive aiohttp connections at --concurrency."""
    body = a.body.encode() if a.body is not None else None
    headers = parse_headers(a.header)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    connector = aiohttp.TCPConnector(limit=a.concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=IO_TIMEOUT)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
    ) as session:

        async def call() -> int:
            async with session.request(a.method, a.url, data=body, headers=headers) as r:
                await r.read()
                return r.status

        latencies, statuses, errors, elapsed = await _closed_loop(
            a, call, (aiohttp.ClientError, TimeoutError, OSError)
        )
    return http_summary(latencies, statuses, errors, elapsed, "python-aiohttp keep-alive")


def http_summary(
    latencies: list[float],
    statuses: Counter[int],
    errors: Counter[str],
    elapsed: float,
    client: str,
) -> dict[str, Any]:
    """Counts, rate and latency percentiles of one run (or of merged runs' samples)."""
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
        """Connect, with TCP_NODELAY, and count it."""
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1


@dataclass
class _Paced:
    """What a paced run measured, in seconds."""

    latencies: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unsent: int = 0
    elapsed: float = 0.0


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

    def one() -> int:
        conn.request(a.method, target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    try:
        warmup_errors = _warm_up(conn, one, a.warmup)
        paced = _send_on_schedule(conn, one, planned, interval, a.duration)
    finally:
        conn.close()
    return _paced_result(a, paced, planned, interval, conn.connects, warmup_errors)


def _warm_up(conn: _Connection, one: Callable[[], int], n: int) -> int:
    """`n` unmeasured requests (they open the connection); how many failed."""
    warmup_errors = 0
    for _ in range(max(0, n)):
        try:
            one()
        except (OSError, http.client.HTTPException):
            warmup_errors += 1
            conn.close()
    return warmup_errors


def _send_on_schedule(
    conn: _Connection, one: Callable[[], int], planned: int, interval: float, duration: float
) -> _Paced:
    """Send request i at start + i * interval, whatever happened before."""
    latencies: list[float] = []
    service: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    start = time.perf_counter() + interval
    stop_sending = start + duration + IO_TIMEOUT
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
    return _Paced(latencies, service, lags, statuses, errors, unsent, elapsed)


def _paced_result(
    a: argparse.Namespace,
    paced: _Paced,
    planned: int,
    interval: float,
    connects: int,
    warmup_errors: int,
) -> dict[str, Any]:
    result = http_summary(
        paced.latencies,
        paced.statuses,
        paced.errors,
        paced.elapsed,
        f"python http.client paced, open loop, {a.rate:g} req/s on 1 keep-alive connection",
    )
    lag_ms = sorted(v * 1000 for v in paced.lags)
    result.update(
        {
            "rate": a.rate,
            "planned": planned,
            "unsent": paced.unsent,
            "connects": connects,
            "warmup_errors": warmup_errors,
            "service": latency_summary(paced.service),
            "send_lag_p50_ms": percentile(lag_ms, 50),
            "send_lag_p99_ms": percentile(lag_ms, 99),
            "send_lag_max_ms": lag_ms[-1] if lag_ms else None,
            # Sends due while the previous answer was still outstanding: the backlog that
            # a closed loop would silently not have sent.
            "late_sends": sum(1 for v in paced.lags if v > interval),
        }
    )
    if a.samples:  # for merging rounds (bench/measure_http.py paced_in_turn)
        result["samples_s"] = {"latency": paced.latencies, "service": paced.service}
    return result


# --- oneshot: a new connection per call -----------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one HTTP/1.1 answer: its status and the length of its body."""
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
    """A new connection (and TLS handshake for https://) per call, Connection: close."""
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

    async def one() -> int:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
        )
        try:
            writer.write(request)
            await writer.drain()
            status, _ = await read_response(reader)
            await reader.read()  # the server closes after the answer
            return status
        finally:
            writer.close()
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    failures = (
        TimeoutError,
        OSError,
        ssl.SSLError,
        ValueError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    )
    latencies, statuses, errors, elapsed = await _closed_loop(
        a, lambda: asyncio.wait_for(one(), IO_TIMEOUT), failures
    )
    kind = "TLS 1.3 full handshake" if ssl_context else "plain TCP"
    return http_summary(
        latencies, statuses, errors, elapsed, f"python-asyncio one-shot ({kind}, Connection: close)"
    )
