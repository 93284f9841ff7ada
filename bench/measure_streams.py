"""Long-lived connection scenarios: one large stream, many idle connections, a WebSocket."""

# ruff: noqa: S603 - starting the load generator is the whole point

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from clients import loadgen_command, run_loadgen
from common import BALANCE_PATH
from processes import Watch, proc_status_kib, read_line, stop, track
from records import Ctx, compare, measure
from servers import Proxy, Upstream


def stream_scenario(
    ctx: Ctx,
    key: str,
    label: str,
    url: str,
    size: int,
    *,
    via: str,
    proxy: Proxy | None,
    baseline: str | None,
) -> dict[str, Any]:
    """One GET of a `size`-byte body, read and discarded: MiB/s and the proxy's memory."""
    with Watch(proxy.pid if proxy else None) as watch:
        res = run_loadgen(
            "stream", "--url", url, "--expect-bytes", str(size), "--duration", "120", timeout=180
        )
    problems = (
        []
        if res.get("complete")
        else [
            f"incomplete: {res.get('bytes')} of {size} bytes, status {res.get('status')}, "
            f"{res.get('error')}"
        ]
    )
    result: dict[str, Any] = {
        "key": key,
        "label": label,
        "group": "stream",
        "via": via,
        "url": url,
        "concurrency": 1,
        "loadgen": res.get("client"),
        "throughput": res["mib_s"],
        "unit": "MiB/s",
        "p50_ms": None,
        "p99_ms": None,
        "bytes": res.get("bytes"),
        "proxy": watch.as_dict() if watch.pid else None,
        "baseline": baseline,
        "problems": problems,
        "raw": res,
    }
    if watch.pid:
        # VmHWM was reset to the current RSS just before the stream started.
        before = watch.hwm_before_kib if watch.hwm_reset else watch.rss_before_kib
        peak = watch.peak_mib
        if before is not None and peak is not None:
            result["stream_rss_growth_mib"] = round(peak - before / 1024, 2)
    compare(ctx, result)
    return ctx.add(result)


def idle_scenario(ctx: Ctx, key: str, label: str, proxy: Proxy, connections: int) -> dict[str, Any]:
    """`connections` client connections, one request each, then held open and idle."""
    url = f"{proxy.url}{BALANCE_PATH}"
    rss_idle_kib = proc_status_kib(proxy.pid, "VmRSS")
    with Watch(proxy.pid) as watch:
        res, rss_open_kib = _hold_idle(ctx, proxy, url, connections)
    problems: list[str] = []
    if res["opened"] < connections:
        problems.append(
            f"only {res['opened']} of {connections} connections opened ({res.get('error_kinds')})"
        )
    if res["still_open"] < res["opened"]:
        problems.append(f"the proxy closed {res['opened'] - res['still_open']} idle connections")
    rss_open = (rss_open_kib or 0) / 1024
    result = {
        "key": key,
        "label": label,
        "group": "idle",
        "via": "proxy",
        "url": url,
        "concurrency": connections,
        "loadgen": res.get("client"),
        "throughput": None,
        "unit": "",
        "p50_ms": None,
        "p99_ms": None,
        "rss_idle_mib": round((rss_idle_kib or 0) / 1024, 2),
        "rss_open_mib": round(rss_open, 2),
        "per_connection_kib": round(((rss_open_kib or 0) - (rss_idle_kib or 0)) / connections, 1),
        "proxy": watch.as_dict(),
        "baseline": None,
        "problems": problems,
        "raw": res,
    }
    return ctx.add(result)


def _hold_idle(
    ctx: Ctx, proxy: Proxy, url: str, connections: int
) -> tuple[dict[str, Any], int | None]:
    """Open the idle connections, read the proxy's RSS with all of them open, close them."""
    hold = 60.0
    cmd = loadgen_command(
        "idle", "--url", url, "--connections", str(connections), "--hold", str(hold)
    )
    gen = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    track(gen)
    try:
        ready = read_line(gen, timeout=60)
        time.sleep(min(1.0, ctx.duration / 2))  # let the proxy settle with all of them open
        rss_open_kib = proc_status_kib(proxy.pid, "VmRSS")
        out, err = gen.communicate(input="done\n", timeout=hold + 30)
    finally:
        stop(gen)
    lines = [line for line in out.splitlines() if line.strip()]
    if gen.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen idle failed: {err[-2000:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    res["ready"] = ready
    return res, rss_open_kib


def ws_scenario(
    ctx: Ctx,
    key: str,
    label: str,
    url: str,
    *,
    via: str,
    upstream: Upstream,
    proxy: Proxy | None,
    baseline: str | None,
    sign: bool,
) -> dict[str, Any]:
    """One WebSocket session: frame round trip, echo with a window, server-push frames/s."""
    half = max(1.0, ctx.duration / 2)
    args = [
        "--url",
        url,
        "--rtt-seconds",
        str(half),
        "--echo-seconds",
        str(half),
        "--feed-seconds",
        str(half),
        "--window",
        "256",
    ]
    if sign:
        args += ["--key-file", str(ctx.key), "--key-id", ctx.key_id]
    res, watch, delta = measure(
        upstream, proxy, lambda: run_loadgen("ws", *args, timeout=3 * half + 90)
    )
    result: dict[str, Any] = {
        "key": key,
        "label": label,
        "group": "websocket",
        "via": via,
        "url": url,
        "concurrency": 1,
        "loadgen": res.get("client", "python-aiohttp websocket"),
        "unit": "frames/s",
        "throughput": None,
        "p50_ms": None,
        "p99_ms": None,
        "proxy": watch.as_dict() if watch.pid else None,
        "upstream": delta,
        "baseline": baseline,
        "problems": [],
        "raw": res,
    }
    if _ws_handshake_failed(result, res, via):
        return ctx.add(result)
    _ws_figures(result, res, delta)
    compare(ctx, result)
    return ctx.add(result)


def _ws_handshake_failed(result: dict[str, Any], res: dict[str, Any], via: str) -> bool:
    """Whether the session never opened; then `result` says why it was skipped."""
    if res.get("ok"):
        return False
    status = res.get("handshake_status")
    if via == "proxy" and status == 404:
        result["skipped"] = (
            "the proxy answers 404 at /trade-api/ws/v2 (WebSocket relay not there yet)"
        )
    else:
        result["problems"].append(f"handshake failed: status {status}, {res.get('error')}")
        result["skipped"] = f"handshake failed (status {status})"
    return True


def _ws_figures(result: dict[str, Any], res: dict[str, Any], delta: dict[str, Any]) -> None:
    """Frames/s and round trip into `result`; lost frames and a bad handshake as problems."""
    result.update(
        throughput=res["frames_per_s"], p50_ms=res["rtt_p50_ms"], p99_ms=res["rtt_p99_ms"]
    )
    if res.get("error"):
        result["problems"].append(res["error"])
    expected = sum(res.get(k) or 0 for k in ("rtt_samples", "frames_sent", "feed_frames"))
    if delta.get("ws_frames", 0) < expected:
        result["problems"].append(
            f"only {delta.get('ws_frames', 0)} of {expected} frames reached the upstream"
        )
    if delta.get("ws_handshake_bad"):
        result["problems"].append("the upstream rejected the handshake signature")
