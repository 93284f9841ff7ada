"""Request/answer scenarios: keep-alive at a concurrency, paced (open loop), one-shot, sandbox."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clients import closed_loop, run_loadgen
from common import BALANCE_PATH, T_SIG_AGE_MAX_MS
from loadgen_http import http_summary, latency_summary
from processes import Watch, merge_watches
from records import Ctx, http_result, measure
from servers import Proxy, Upstream

from signing_proxy.kalshi.signer import Signer, parse_private_key


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


_WARMUP_IN_TURN = 5


@dataclass(frozen=True)
class PacedRow:
    """One paced row: where its calls go and what its record is compared with."""

    key: str
    label: str
    url: str
    via: str
    proxy: Proxy | None = None
    baseline: str | None = None
    # Whether the proxy should send this route with pre-made signatures (True), must not
    # (False), or it does not matter (None); checked with the proxy's counters.
    presigned: bool | None = None
    headers: tuple[str, ...] = ()
    # The row's client signs its calls itself, as a direct client of Kalshi does (the rows
    # that bypass the signing proxy): one signature per run, made as the run starts.
    client_signs: bool = False


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
    client_signs: bool = False,
) -> dict[str, Any]:
    """Open loop at --paced-rate on one keep-alive connection (bench/loadgen.py http --rate)."""
    row = PacedRow(key, label, url, via, proxy, baseline, presigned, headers, client_signs)
    return paced_in_turn(ctx, [row], upstream, method=method, body=body, rounds=1)[0]


def paced_in_turn(
    ctx: Ctx,
    rows: list[PacedRow],
    upstream: Upstream,
    *,
    method: str = "GET",
    body: str | None = None,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """The rows in turn, `rounds` rounds of --duration/rounds s each, every row once a round,
    then each row's samples and counters merged: this VM's latency drifts within a run,
    and in turn the drift falls on every row alike. Baselines go first in `rows`."""
    runs: dict[str, list[tuple[dict[str, Any], Watch, dict[str, Any]]]] = {r.key: [] for r in rows}
    # Pre-signed signatures used and discarded during each row's own runs (a proxy may serve
    # two rows, one pre-signed and one not).
    presign = {row.key: _Presign() for row in rows}
    for _ in range(rounds):
        for row in rows:
            before = row.proxy.presign_counters() if row.proxy else ({}, None)
            run = _paced_run(ctx, row, upstream, method, body, ctx.duration / rounds, rounds > 1)
            if row.proxy is not None:
                presign[row.key].add(before, row.proxy.presign_counters())
            runs[row.key].append(run)
    results = []
    for row in rows:
        res, watch, delta = merge_runs(runs[row.key])
        result = http_result(
            ctx, row.key, row.label, "paced", row.via, 1, res, watch, delta, row.baseline,
            method, row.url,
        )  # fmt: skip
        result["rate"] = float(ctx.args.paced_rate)
        result["rounds"] = rounds
        result["service_p50_ms"] = res["service"]["p50_ms"]
        result["service_p99_ms"] = res["service"]["p99_ms"]
        if res.get("unsent"):
            result["problems"].append(f"{res['unsent']} requests never sent (far behind schedule)")
        if res.get("connects", 1) > 1:
            result["problems"].append(f"the connection was opened {res['connects']} times")
        if row.proxy is not None:
            # The other rows send one signature made as each run starts (client_signed):
            # its age says nothing.
            _signature_age(result, delta)
            counted = presign[row.key]
            _presign_check(result, delta, counted.before(), counted.after(), row.presigned)
        results.append(ctx.add(result))
    return results


class _Presign:
    """A proxy's pre-signing counters summed over one row's runs."""

    def __init__(self) -> None:
        self.used = self.discarded = 0.0
        self.unavailable: str | None = None

    def add(
        self,
        before: tuple[dict[str, float], str | None],
        after: tuple[dict[str, float], str | None],
    ) -> None:
        """Add one run's counts (`after` - `before`), or note why there are none."""
        why = after[1] or before[1]
        if why:
            self.unavailable = why
            return
        self.used += after[0]["used"] - before[0]["used"]
        self.discarded += after[0]["discarded"] - before[0]["discarded"]

    def before(self) -> tuple[dict[str, float], str | None]:
        """Zero, as counters read before the first run."""
        return {"used": 0.0, "discarded": 0.0}, self.unavailable

    def after(self) -> tuple[dict[str, float], str | None]:
        """The sums, as counters read after the last run."""
        return {"used": self.used, "discarded": self.discarded}, self.unavailable


def _paced_run(
    ctx: Ctx,
    row: PacedRow,
    upstream: Upstream,
    method: str,
    body: str | None,
    seconds: float,
    samples: bool,
) -> tuple[dict[str, Any], Watch, dict[str, Any]]:
    """One run of bench/loadgen.py http --rate for `seconds`, the proxy watched."""
    rate = float(ctx.args.paced_rate)
    extra = ["--method", method] + (["--body", body] if body else [])
    headers = row.headers
    if row.client_signs:
        headers += client_signed(ctx, method, urlsplit(row.url).path)
    for header in headers:
        extra += ["--header", header]
    if samples:
        # A row's turn starts after the others' (its connection new, its caches cold): a
        # few more unmeasured calls first, or each round's first call would be in the p99.
        extra += ["--samples", "--warmup", str(_WARMUP_IN_TURN)]
    return measure(
        upstream,
        row.proxy,
        lambda: run_loadgen(
            "http",
            "--url",
            row.url,
            "--rate",
            f"{rate:g}",
            "--duration",
            f"{seconds:g}",
            "--max-requests",
            str(int(rate * seconds) + 1),
            *extra,
            timeout=seconds + 60,
        ),
    )


def client_signed(ctx: Ctx, method: str, path: str) -> tuple[str, ...]:
    """A direct client's KALSHI-ACCESS-* headers for one route, made now. The paced rows
    that bypass the signing proxy send them, so the upstream verifies every row's calls as
    Kalshi verifies every client's: verification is not a cost the proxy adds."""
    private_key = parse_private_key(ctx.key.read_bytes(), None, str(ctx.key))
    made = Signer(ctx.key_id, private_key).headers(method, path)
    return tuple(f"{name}: {value}" for name, value in made.items())


def merge_runs(
    runs: list[tuple[dict[str, Any], Watch, dict[str, Any]]],
) -> tuple[dict[str, Any], Watch, dict[str, Any]]:
    """One row's runs as one: its samples pooled, counters summed, peaks the largest."""
    if len(runs) == 1:
        return runs[0]
    results = [res for res, _, _ in runs]
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for res in results:
        statuses.update({int(k): v for k, v in res["statuses"].items()})
        errors.update(res["error_kinds"])
    latency = [v for res in results for v in res["samples_s"]["latency"]]
    merged = http_summary(
        latency, statuses, errors, sum(r["elapsed_s"] for r in results), results[0]["client"]
    )
    merged.update(
        {
            "service": latency_summary([v for r in results for v in r["samples_s"]["service"]]),
            "unsent": sum(r.get("unsent", 0) for r in results),
            "connects": max(r.get("connects", 1) for r in results),
            "send_lag_p99_ms": max(r.get("send_lag_p99_ms") or 0 for r in results),
            "late_sends": sum(r.get("late_sends", 0) for r in results),
            "rounds": len(results),
        }
    )
    deltas = [delta for _, _, delta in runs]
    delta = {
        k: max(d.get(k) or 0 for d in deltas)
        if k.endswith("_max_ms")
        else sum(d.get(k) or 0 for d in deltas)
        for k in deltas[0]
    }
    return merged, merge_watches([watch for _, watch, _ in runs]), delta


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
