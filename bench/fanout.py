"""The shared WebSocket feed's fan-out: one upstream feed, 1, 10 and 50 clients.

Three parts, each run where it belongs:
- `kalshi_subscribe` (in bench/upstream.py's process): answers Kalshi's `subscribe` and
  pushes `ticker` messages stamped with their send time, paced, for a market named
  BENCH-R<rate>-N<count>-D<delay ms>: after the delay (so every client has subscribed),
  <count> messages at <rate> per second.
- `run_fanout` (bench/loadgen.py fanout): C clients subscribe to that market and count what
  arrives and how late (receive time minus the stamp: same machine, same clock).
- `fanout_group` (bench/run.py): a proxy with websocket.mode: shared in front of the fast
  upstream; direct with one client (signed) as the anchor, then 1, 10, 50 via the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

_ticker_sid = iter(range(1, 1 << 30))
# Lateness values each receiver reports for merging (of up to a million measured).
_SAMPLE = 20_000


async def kalshi_subscribe(ws: Any, doc: dict[str, Any]) -> asyncio.Task[None] | None:
    """Answer a subscribe; for a BENCH-R..-N..-D.. ticker market, start its paced feed."""
    if doc.get("cmd") != "subscribe":
        return None
    params = doc.get("params") or {}
    sid = next(_ticker_sid)
    reply = {"id": doc.get("id"), "type": "subscribed", "msg": {"channel": "ticker", "sid": sid}}
    await ws.send_str(json.dumps(reply))
    markets = params.get("market_tickers") or [params.get("market_ticker")]
    market = next((m for m in markets if isinstance(m, str) and m.startswith("BENCH-R")), None)
    if market is None:
        return None
    rate, count, delay = (int(part[1:]) for part in market.split("-")[1:4])
    return asyncio.create_task(_push(ws, sid, market, rate, count, delay / 1000))


async def _push(ws: Any, sid: int, market: str, rate: int, count: int, delay: float) -> None:
    await asyncio.sleep(delay)
    start = time.monotonic()
    head = f'{{"type":"ticker","sid":{sid},"msg":{{"market_ticker":"{market}","ts_ns":'
    for sent in range(count):
        due = start + sent / rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await ws.send_str(f'{head}{time.time_ns()},"price_dollars":"0.5000"}}}}')


async def run_fanout(a: argparse.Namespace) -> dict[str, Any]:
    """C clients subscribe to one feed; frames received, per second, and their lateness."""
    market = f"BENCH-R{a.feed_rate}-N{a.feed_count}-D{a.feed_delay_ms}"
    headers: dict[str, str] = {}
    if a.key_file:
        from loadgen_streams import signed_headers

        headers = signed_headers(a.key_file, a.key_id, urlsplit(a.url).path)
    late: list[float] = []
    counts: list[int] = []
    first_last = [float("inf"), 0.0]
    timeout = a.feed_count / a.feed_rate + a.feed_delay_ms / 1000 + 10
    async with aiohttp.ClientSession() as session:
        clients = [
            await session.ws_connect(a.url, headers=headers, max_msg_size=1 << 20)
            for _ in range(a.concurrency)
        ]
        for ws in clients:
            params = {"channels": ["ticker"], "market_ticker": market}
            await ws.send_str(json.dumps({"id": 1, "cmd": "subscribe", "params": params}))
        results = await asyncio.gather(
            *(_receive(ws, a.feed_count, timeout, late, first_last) for ws in clients)
        )
        counts.extend(results)
        for ws in clients:
            await ws.close()
    late.sort()
    total = sum(counts)
    seconds = max(first_last[1] - first_last[0], 1e-9)
    return {
        "clients": a.concurrency,
        "expected": a.feed_count * a.concurrency,
        "frames": total,
        "seconds": round(seconds, 3),
        "frames_per_s": round(total / seconds, 1),
        "late_p50_ms": _pct(late, 0.5),
        "late_p99_ms": _pct(late, 0.99),
        # Every k-th of the sorted lateness: enough to merge receivers' percentiles.
        "late_sample": late[:: max(1, len(late) // _SAMPLE)],
    }


def merge_fanout(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from receivers that ran side by side: frames summed over the longest
    span, lateness percentiles from the union of their samples."""
    late = sorted(v for part in parts for v in part["late_sample"])
    frames = sum(part["frames"] for part in parts)
    seconds = max(part["seconds"] for part in parts)
    return {
        "clients": sum(part["clients"] for part in parts),
        "expected": sum(part["expected"] for part in parts),
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": round(frames / seconds, 1),
        "late_p50_ms": _pct(late, 0.5),
        "late_p99_ms": _pct(late, 0.99),
        "receivers": len(parts),
        "late_sample": [],
    }


async def _receive(
    ws: aiohttp.ClientWebSocketResponse,
    expected: int,
    seconds: float,
    late: list[float],
    first_last: list[float],
) -> int:
    got = 0
    deadline = time.monotonic() + seconds
    while got < expected and time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        now_ns = time.time_ns()
        if '"ts_ns":' not in message.data:
            continue
        stamp = int(message.data.split('"ts_ns":', 1)[1].split(",", 1)[0])
        late.append((now_ns - stamp) / 1e6)
        got += 1
        moment = time.monotonic()
        first_last[0] = min(first_last[0], moment)
        first_last[1] = max(first_last[1], moment)
    return got


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def fanout_result(
    ctx: Any,
    key: str,
    label: str,
    via: str,
    res: dict[str, Any],
    baseline: str | None,
    watch: Any = None,
) -> dict[str, Any]:
    """One fan-out row: frames/s delivered in all, how late they arrived, and the proxy's
    CPU (in all, and per frame delivered: what the proxy itself costs, whoever receives)."""
    proxy = watch.as_dict() if watch is not None and watch.pid else None
    if proxy is not None and proxy["cpu_s"] and res["frames"]:
        res["proxy_cpu_us_per_frame"] = round(proxy["cpu_s"] * 1e6 / res["frames"], 2)
    result: dict[str, Any] = {
        "key": key,
        "label": label,
        "group": "websocket",
        "via": via,
        "url": "",
        "concurrency": res["clients"],
        "loadgen": "python-aiohttp websocket (fanout)",
        "unit": "frames/s",
        "throughput": res["frames_per_s"],
        "p50_ms": res["late_p50_ms"],
        "p99_ms": res["late_p99_ms"],
        "proxy": proxy,
        "upstream": {},
        "baseline": baseline,
        "problems": [],
        "raw": {k: v for k, v in res.items() if k != "late_sample"},
    }
    if res["frames"] < res["expected"]:
        result["problems"].append(f"{res['expected'] - res['frames']} frames never arrived")
    return result
