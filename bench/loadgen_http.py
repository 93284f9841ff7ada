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
