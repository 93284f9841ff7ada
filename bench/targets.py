"""The targets of issue 7: PASS, FAIL or SKIP for each, from the run's results."""

from __future__ import annotations

from typing import Any

from records import Ctx

# Targets of issue 7.
T_ADDED_P50_SIGNED_MS = 1.0
T_ADDED_P50_PRESIGNED_MS = 0.3
T_RPS_C16 = 1200.0
T_P99_C16_MS = 50.0
T_ONESHOT_SPEEDUP = 1.5
T_STREAM_FLAT_MIB = 20.0
T_IDLE_RSS_MIB = 100.0
T_WS_FPS = 20000.0
T_WS_ADDED_P50_MS = 0.3


# --- targets ---------------------------------------------------------------------------------


def targets(ctx: Ctx) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(
        name: str, ok: bool | None, value: str, note: str = "", problems: list[str] | None = None
    ) -> None:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        if problems and status == "PASS":
            status = "FAIL"
            note = (note + "; " if note else "") + "errors: " + "; ".join(problems)
        out.append({"target": name, "status": status, "value": value, "note": note})

    def probs(*results: dict[str, Any] | None) -> list[str]:
        return [p for r in results if r for p in r.get("problems", [])]

    rate = f"open loop {ctx.args.paced_rate:g} req/s"

    def p99_note(r: dict[str, Any]) -> str:
        added = r.get("added_p99_ms")
        return f"{rate}; added p99 {added:+.3f} ms" if added is not None else rate

    def presign_note(r: dict[str, Any]) -> str:
        presign = r.get("presign") or {}
        if "used" in presign:
            return f"pre-signed {presign['used']} of {r['upstream'].get('signed', 0)} signed calls"
        return f"pre-signing not verified: {presign.get('unavailable', 'no counters')}"

    r = ctx.get("proxy_paced_get")
    name = f"added p50 at c=1 with signing <= {T_ADDED_P50_SIGNED_MS} ms"
    if r and r.get("added_p50_ms") is not None:
        note = p99_note(r)
        if (r.get("presign") or {}).get("used"):
            # The proxy learns polled read routes and pre-signs them: then this is not
            # on-demand signing any more, and the note says so.
            note += f"; {presign_note(r)} (learned hot route, not signed on demand)"
        add(
            name,
            r["added_p50_ms"] <= T_ADDED_P50_SIGNED_MS,
            f"{r['added_p50_ms']:+.3f} ms",
            note,
            probs(r, ctx.get("direct_paced_get")),
        )
    else:
        add(name, None, "not run (group paced)")

    r = ctx.get("proxy_paced_post")
    name = f"added p50 at c=1 on a pre-signed route (POST orders) <= {T_ADDED_P50_PRESIGNED_MS} ms"
    if r and r.get("added_p50_ms") is not None:
        notes = [p99_note(r)]
        on_demand = ctx.get("proxy_paced_batched")
        if on_demand and on_demand.get("added_p50_ms") is not None:
            notes.append(f"signed on demand (orders/batched): {on_demand['added_p50_ms']:+.3f} ms")
        notes.append(presign_note(r))
        add(
            name,
            r["added_p50_ms"] <= T_ADDED_P50_PRESIGNED_MS,
            f"{r['added_p50_ms']:+.3f} ms",
            "; ".join(notes),
            probs(r, ctx.get("direct_paced_post")),
        )
    else:
        add(name, None, "not run (group paced)")

    r = ctx.get("proxy_c16")
    name = f">= {T_RPS_C16:,.0f} signed req/s at c=16 with p99 < {T_P99_C16_MS:g} ms"
    if r:
        add(
            name,
            r["rps"] >= T_RPS_C16 and r["p99_ms"] < T_P99_C16_MS,
            f"{r['rps']:,.0f} req/s, p99 {r['p99_ms']:.2f} ms",
            problems=probs(r),
        )
    else:
        add(name, None, "not run")

    r = ctx.get("proxy_oneshot")
    name = f"one-shot through the proxy >= {T_ONESHOT_SPEEDUP}x one-shot direct HTTPS (req/s)"
    if r and r.get("ratio_throughput") is not None:
        add(
            name,
            r["ratio_throughput"] >= T_ONESHOT_SPEEDUP,
            f"{r['ratio_throughput']:.2f}x (p50 {r['p50_ms']:.2f} vs "
            f"{(ctx.get('direct_oneshot') or {}).get('p50_ms', 0):.2f} ms)",
            problems=probs(r, ctx.get("direct_oneshot")),
        )
    else:
        add(name, None, "not run")

    r = ctx.get("proxy_stream")
    name = f"peak RSS within {T_STREAM_FLAT_MIB:g} MiB while streaming {ctx.args.stream_mib} MiB"
    if r and r.get("stream_rss_growth_mib") is not None:
        p = r["proxy"]
        add(
            name,
            r["stream_rss_growth_mib"] <= T_STREAM_FLAT_MIB,
            f"{r['stream_rss_growth_mib']:+.1f} MiB (VmHWM {p['hwm_before_mib']:.1f} -> "
            f"{p['hwm_after_mib']:.1f} MiB)",
            problems=probs(r),
        )
    else:
        add(name, None, "not run")

    r = ctx.get("proxy_idle")
    name = f"RSS < {T_IDLE_RSS_MIB:g} MiB with {ctx.args.idle_connections} open connections"
    if r:
        add(
            name,
            r["rss_open_mib"] < T_IDLE_RSS_MIB,
            f"{r['rss_open_mib']:.1f} MiB ({r['per_connection_kib']:.1f} KiB per connection)",
            problems=probs(r),
        )
    else:
        add(name, None, "not run")

    r = ctx.get("proxy_ws")
    name = f"WebSocket >= {T_WS_FPS:,.0f} frames/s and added p50 < {T_WS_ADDED_P50_MS} ms"
    if r and r.get("skipped"):
        add(name, None, "skipped", r["skipped"])
    elif r and r.get("added_p50_ms") is not None:
        add(
            name,
            r["throughput"] >= T_WS_FPS and r["added_p50_ms"] < T_WS_ADDED_P50_MS,
            f"{r['throughput']:,.0f} frames/s, {r['added_p50_ms']:+.3f} ms",
            problems=probs(r, ctx.get("direct_ws")),
        )
    else:
        add(name, None, "not run" if not r else "no baseline")
    return out
