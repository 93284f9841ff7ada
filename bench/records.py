"""The run's context and one result record per scenario, compared with its baseline."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import Watch, stop
from report import fmt_num
from servers import Proxy, Upstream, proxy_log_summary

# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every scenario needs: the arguments, the temp dir, the key, the results so far."""

    args: argparse.Namespace
    tmp: Path
    key_id: str
    key: Path
    pub: Path
    loadgen: str  # "wrk" or "python"
    results: list[dict[str, Any]] = field(default_factory=list)
    proxy_logs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stop_proxy(self, name: str, proxy: Proxy) -> None:
        """Stop the proxy, then count what it logged (warnings and errors would be suspect)."""
        stop(proxy.proc)
        self.proxy_logs[name] = proxy_log_summary(proxy.log)

    @property
    def duration(self) -> float:
        """Seconds per scenario."""
        return float(self.args.duration)

    def add(self, result: dict[str, Any]) -> dict[str, Any]:
        """Keep `result` and print its one-line summary."""
        self.results.append(result)
        print(f"  {result['label']:<46} {_summary(result)}", flush=True)
        return result

    def get(self, key: str) -> dict[str, Any] | None:
        """The result of scenario `key`, if it ran."""
        return next((r for r in self.results if r["key"] == key), None)


def _summary(r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    parts = [f"{fmt_num(r.get('throughput'))} {r.get('unit', '')}"]
    if r.get("p50_ms") is not None:
        parts.append(f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
    if (r.get("proxy") or {}).get("peak_rss_mib"):
        parts.append(f"proxy RSS {r['proxy']['peak_rss_mib']:.1f} MiB")
    if r.get("problems"):
        parts.append("PROBLEMS: " + "; ".join(r["problems"]))
    return "  ".join(parts)


def upstream_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counters: after - before. Maxima (`*_max_ms`): as read after, since `before` was read
    with reset_max=True."""
    out: dict[str, Any] = {}
    for k, v in after.items():
        if k.endswith("_max_ms"):
            out[k] = v
        elif isinstance(v, int | float):
            out[k] = round(v - (before.get(k) or 0), 3)
    return out


def measure(
    upstream: Upstream, proxy: Proxy | None, load: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], Watch, dict[str, Any]]:
    """Run `load` with the proxy watched: its result, the watch, the upstream's counters."""
    before = upstream.stats(reset_max=True)
    with Watch(proxy.pid if proxy else None) as watch:
        res = load()
    return res, watch, upstream_delta(before, upstream.stats())


def http_result(
    ctx: Ctx,
    key: str,
    label: str,
    group: str,
    via: str,
    concurrency: int,
    res: dict[str, Any],
    watch: Watch,
    delta: dict[str, int],
    baseline: str | None,
    method: str,
    url: str,
) -> dict[str, Any]:
    """The record of a request/answer scenario, its problems, and its ratios to the baseline."""
    problems = []
    if res.get("errors"):
        problems.append(f"{res['errors']} socket errors")
    if res.get("non2xx"):
        problems.append(f"{res['non2xx']} non-2xx answers")
    if delta.get("verified_bad"):
        problems.append(f"upstream rejected {delta['verified_bad']} signatures")
    if via == "proxy" and delta.get("unsigned"):
        problems.append(f"{delta['unsigned']} requests reached the upstream unsigned")
    result = {
        "key": key,
        "label": label,
        "group": group,
        "via": via,
        "method": method,
        "url": url,
        "concurrency": concurrency,
        "loadgen": res.get("client"),
        "throughput": res["rps"],
        "unit": "req/s",
        "rps": res["rps"],
        "p50_ms": res.get("p50_ms"),
        "p99_ms": res.get("p99_ms"),
        "requests": res.get("requests"),
        "errors": res.get("errors", 0),
        "non2xx": res.get("non2xx", 0),
        "proxy": watch.as_dict() if watch.pid else None,
        "upstream": delta,
        "baseline": baseline,
        "problems": problems,
        "raw": {k: v for k, v in res.items() if k != "raw"},
    }
    compare(ctx, result)
    return result


def compare(ctx: Ctx, result: dict[str, Any]) -> None:
    """Add the throughput ratio and the added p50/p99 to `result`'s baseline, if it ran."""
    base = ctx.get(result["baseline"]) if result.get("baseline") else None
    if not base or base.get("skipped"):
        return
    if base.get("throughput") and result.get("throughput") is not None:
        result["ratio_throughput"] = result["throughput"] / base["throughput"]
    if base.get("p50_ms") is not None and result.get("p50_ms") is not None:
        result["added_p50_ms"] = result["p50_ms"] - base["p50_ms"]
        result["ratio_p50"] = result["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None
    if base.get("p99_ms") is not None and result.get("p99_ms") is not None:
        result["added_p99_ms"] = result["p99_ms"] - base["p99_ms"]
