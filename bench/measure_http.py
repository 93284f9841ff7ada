"""Request/answer scenarios: keep-alive at a concurrency, paced (open loop), one-shot, sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clients import closed_loop, run_loadgen
from common import BALANCE_PATH, T_SIG_AGE_MAX_MS
from records import Ctx, http_result, measure
from servers import Proxy, Upstream


def http_scenario(
    ctx: Ctx,
    key: str,
    label: str,
    url: str,
    concurrency: int,
    *,
    via: str,
    upstream: Upstream,
    proxy: Proxy | None = None,
    baseline: str | None = None,
    method: str = "GET",
    body: str | None = None,
    loadgen: str | None = None,
    group: str = "keep-alive",
) -> dict[str, Any]:
    """Closed loop at `concurrency` on keep-alive connections (wrk or bench/loadgen.py)."""
    loadgen = loadgen or ctx.loadgen
    res, watch, delta = measure(
        upstream,
        proxy,
        lambda: closed_loop(loadgen, url, concurrency, ctx.duration, ctx.tmp, method, body),
    )
    return ctx.add(
        http_result(
            ctx, key, label, group, via, concurrency, res, watch, delta, baseline, method, url
        )
    )


def paced_scenario(
    ctx: Ctx,
    key: str,
    label: str,
    url: str,
    *,
    via: str,
    upstream: Upstream,
    proxy: Proxy | None = None,
    baseline: str | None = None,
    method: str = "GET",
    body: str | None = None,
    presigned: bool | None = None,
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Open loop at --paced-rate on one keep-alive connection (bench/loadgen.py http --rate).

    `presigned`: whether the proxy should send this route with pre-made signatures (True),
    must not (False), or it does not matter (None); checked with the proxy's counters.
    """
    rate = float(ctx.args.paced_rate)
    extra = ["--method", method] + (["--body", body] if body else [])
    for header in headers:
        extra += ["--header", header]
    counters_before = proxy.presign_counters() if proxy else ({}, None)
    res, watch, delta = measure(
        upstream,
        proxy,
        lambda: run_loadgen(
            "http",
            "--url",
            url,
            "--rate",
            f"{rate:g}",
            "--duration",
            str(ctx.duration),
            "--max-requests",
            str(int(rate * ctx.duration) + 1),
            *extra,
            timeout=ctx.duration + 60,
        ),
    )
    result = http_result(ctx, key, label, "paced", via, 1, res, watch, delta, baseline, method, url)
    result["rate"] = rate
    result["service_p50_ms"] = res["service"]["p50_ms"]
    result["service_p99_ms"] = res["service"]["p99_ms"]
    if res.get("unsent"):
        result["problems"].append(f"{res['unsent']} requests never sent (far behind schedule)")
    if res.get("connects", 1) > 1:
        result["problems"].append(f"the connection was opened {res['connects']} times")
    if proxy is not None:
        # The other rows send one signature made at the start (scenarios.client_signed):
        # its age says nothing.
        _signature_age(result, delta)
        _presign_check(result, delta, counters_before, proxy.presign_counters(), presigned)
    return ctx.add(result)


def _signature_age(result: dict[str, Any], delta: dict[str, Any]) -> None:
    """The age of the signatures the upstream saw; a problem when one was too old."""
    if delta.get("sig_age_count"):
        age = {
            "max_ms": round(delta["sig_age_max_ms"], 1),
            "mean_ms": round(delta["sig_age_sum_ms"] / delta["sig_age_count"], 2),
            "count": delta["sig_age_count"],
        }
        result["signature_age"] = age
        if age["max_ms"] > T_SIG_AGE_MAX_MS:
            result["problems"].append(
                f"the upstream saw a signature {age['max_ms']:.0f} ms old "
                f"(> {T_SIG_AGE_MAX_MS:.0f} ms; Kalshi allows about 5 s)"
            )


def _presign_check(
    result: dict[str, Any],
    delta: dict[str, Any],
    counters_before: tuple[dict[str, float], str | None],
    counters_after: tuple[dict[str, float], str | None],
    presigned: bool | None,
) -> None:
    """Pre-signed signatures used and discarded over the scenario, against `presigned`."""
    why = counters_after[1] or counters_before[1]
    if why:
        result["presign"] = {"unavailable": why}
        return
    used = counters_after[0]["used"] - counters_before[0]["used"]
    discarded = counters_after[0]["discarded"] - counters_before[0]["discarded"]
    result["presign"] = {"used": int(used), "discarded": int(discarded)}
    if presigned is True and used == 0:
        result["problems"].append(
            f"pre-signing was not used ({delta.get('signed', 0)} requests signed on demand)"
        )
    elif presigned is False and used > 0:
        result["problems"].append(
            f"{used:.0f} pre-signed signatures used on a route the bench assumes is "
            "signed on demand"
        )


def oneshot_scenario(
    ctx: Ctx,
    key: str,
    label: str,
    url: str,
    *,
    via: str,
    upstream: Upstream,
    proxy: Proxy | None,
    baseline: str | None,
    cafile: Path | None = None,
) -> dict[str, Any]:
    """A new connection per call at c=1, `Connection: close` (bench/loadgen.py oneshot)."""
    args = ["--url", url, "--concurrency", "1", "--duration", str(ctx.duration)]
    if cafile:
        args += ["--cafile", str(cafile)]
    res, watch, delta = measure(
        upstream, proxy, lambda: run_loadgen("oneshot", *args, timeout=ctx.duration + 60)
    )
    return ctx.add(
        http_result(ctx, key, label, "one-shot", via, 1, res, watch, delta, baseline, "GET", url)
    )


def sandbox_scenario(ctx: Ctx, upstream: Upstream, proxy: Proxy) -> dict[str, Any]:
    """GET balance through the proxy to the sandbox upstream, closed loop at c=16."""
    url = f"{proxy.url}{BALANCE_PATH}"
    res, watch, delta = measure(
        upstream, proxy, lambda: closed_loop(ctx.loadgen, url, 16, ctx.duration, ctx.tmp)
    )
    result = http_result(
        ctx,
        "sandbox_proxy_c16",
        "proxy  GET balance, sandbox upstream",
        "sandbox",
        "proxy",
        16,
        res,
        watch,
        delta,
        None,
        "GET",
        url,
    )
    result["note"] = (
        "the sandbox verifies every signature and keeps Kalshi-like state; "
        "no direct baseline (it refuses unsigned requests)"
    )
    return ctx.add(result)
