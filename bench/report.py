"""The printed table with its notes and targets, and the PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# --- output ----------------------------------------------------------------------------------


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"signing-proxy benchmark  {report['date']}  ({report['mode']}, "
        f"{report['duration_per_scenario_s']:g} s per scenario, {report['wall_s']:g} s total)",
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB, "
        f"Linux {m['kernel']}; Python {m['python']}, aiohttp {m['aiohttp']}, "
        f"cryptography {m['cryptography']}; signing-proxy {m['signing_proxy']} "
        f"@ {m['git_commit']}{' (+local changes)' if m['signing_proxy_dirty'] else ''}",
        f"load generator: {m['wrk'] or 'python'} ({m['loadgen']}) closed loop; paced rows: "
        f"python open loop at {report['settings']['paced_rate']:g} req/s; load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end "
        "(generator, proxy and upstream share these CPUs)",
        f"upstream: {report['settings']['upstream']}; "
        f"{report['settings']['upstream_verification']}",
        "",
    ]
    header = (
        f"{'scenario':<46} {'conc':>5} {'throughput':>16} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'proxy RSS':>10} {'proxy CPU':>9} {'x direct':>8} {'+p50 ms':>8}"
    )
    lines += [header, "-" * len(header)]
    for r in report["scenarios"]:
        if r.get("skipped"):
            lines.append(f"{r['label']:<46} {r['concurrency']:>5} skipped: {r['skipped']}")
            continue
        thr = "-" if r.get("throughput") is None else f"{_fmt_num(r['throughput'])} {r['unit']}"
        if r["group"] == "idle":
            thr = f"{r['raw']['still_open']} open"
        p = r.get("proxy") or {}
        rss = f"{p['peak_rss_mib']:.1f} MiB" if p.get("peak_rss_mib") else "-"
        cpu = f"{p['cpu_pct']:.0f}%" if p.get("cpu_pct") is not None else "-"
        ratio = f"{r['ratio_throughput']:.2f}x" if r.get("ratio_throughput") else "-"
        added = f"{r['added_p50_ms']:+.3f}" if r.get("added_p50_ms") is not None else "-"
        p50 = f"{r['p50_ms']:.3f}" if r.get("p50_ms") is not None else "-"
        p99 = f"{r['p99_ms']:.3f}" if r.get("p99_ms") is not None else "-"
        lines.append(
            f"{r['label']:<46} {r['concurrency']:>5} {thr:>16} {p50:>8} {p99:>8} "
            f"{rss:>10} {cpu:>9} {ratio:>8} {added:>8}"
        )
        for problem in r.get("problems", []):
            lines.append(f"{'':<6}! {problem}")
    lines.append("")
    lines.append("notes:")
    for r in report["scenarios"]:
        if r["group"] == "stream" and r["via"] == "proxy" and r.get("proxy"):
            p = r["proxy"]
            lines.append(
                f"  stream: proxy VmHWM {p['hwm_before_mib']} MiB before -> "
                f"{p['hwm_after_mib']} MiB after (reset before: {p['hwm_reset']}); "
                f"growth {r.get('stream_rss_growth_mib')} MiB"
            )
        if r["group"] == "idle":
            lines.append(
                f"  idle: proxy RSS {r['rss_idle_mib']} MiB before -> "
                f"{r['rss_open_mib']} MiB with {r['raw']['still_open']} connections "
                f"open ({r['per_connection_kib']} KiB each); each did one request"
            )
        if r["group"] in ("keep-alive", "paced") and r["via"] == "proxy" and r.get("upstream"):
            u = r["upstream"]
            line = (
                f"  {r['key']}: upstream verified {u.get('verified_ok', 0)} of "
                f"{u.get('signed', 0)} signed requests, {u.get('verified_bad', 0)} bad"
            )
            if r.get("signature_age"):
                a = r["signature_age"]
                line += f"; signature age max {a['max_ms']:.1f} ms, mean {a['mean_ms']:.1f} ms"
            presign = r.get("presign")
            if presign and "used" in presign:
                line += f"; pre-signed used {presign['used']}, discarded {presign['discarded']}"
            elif presign:
                line += f"; pre-signed used/discarded unknown: {presign['unavailable']}"
            lines.append(line)
    paced = [r for r in report["scenarios"] if r["group"] == "paced" and not r.get("skipped")]
    if paced:
        lags = [r["raw"].get("send_lag_p99_ms") or 0 for r in paced]
        late = sum(r["raw"].get("late_sends", 0) for r in paced)
        lines.append(
            f"  paced rows: open loop at {paced[0]['rate']:g} req/s on one keep-alive connection "
            "(bench/loadgen.py http --rate), latency from the scheduled send time; "
            f"generator send lag p99 <= {max(lags):.3f} ms; {late} sends due while the "
            "previous answer was outstanding"
        )
        lines.append(
            "    service time p50 (from the actual send): "
            + ", ".join(f"{r['key']} {r['service_p50_ms']:.3f}" for r in paced)
            + " ms"
        )
    for name, summary in report.get("proxy_logs", {}).items():
        if summary["warnings"]:
            worst = "; ".join(f"{k} x{v}" for k, v in list(summary["warnings"].items())[:3])
            lines.append(f"  ! {name} logged warnings: {worst}")
            if any("closing transport" in k for k in summary["warnings"]):
                lines.append(
                    "    (requests still in flight when the load generator closed its "
                    "connections at the end of a timed run; the proxy logs them as 500)"
                )
    lines.append(
        "  one-shot: "
        + next((r["loadgen"] for r in report["scenarios"] if r["group"] == "one-shot"), "not run")
        + "; wrk cannot open a connection per request"
    )
    lines.append(
        "  proxy RSS = peak during the scenario (VmHWM reset before it, and VmRSS "
        "sampled every 20 ms); proxy CPU = CPU time / wall time (100% = one core)"
    )
    lines.append("")
    lines.append("targets (issue 7):")
    for t in report["targets"]:
        note = f"  [{t['note']}]" if t["note"] else ""
        lines.append(f"  {t['status']:<4}  {t['target']}: {t['value']}{note}")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not importable (pip install matplotlib)"
    rows = [r for r in report["scenarios"] if not r.get("skipped") and r.get("p50_ms") is not None]
    # Paced rows run at a fixed rate: their req/s is the schedule, not a capacity.
    http_rows = [r for r in rows if r["unit"] == "req/s" and r["group"] != "paced"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 9), constrained_layout=True)
    labels = [r["label"] for r in rows]
    xs = range(len(rows))
    width = 0.4
    ax1.bar([x - width / 2 for x in xs], [r["p50_ms"] for r in rows], width, label="p50")
    ax1.bar([x + width / 2 for x in xs], [r["p99_ms"] for r in rows], width, label="p99")
    ax1.set_yscale("log")
    ax1.set_ylabel("latency, ms (log; WebSocket: frame round trip)")
    ax1.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
    ax1.legend()
    ax1.set_title(
        f"signing-proxy benchmark {report['date']} "
        f"({report['machine']['nproc']} CPUs, {report['mode']})"
    )
    bars = ax2.bar(
        range(len(http_rows)),
        [r["rps"] for r in http_rows],
        color=["tab:gray" if r["via"] == "direct" else "tab:blue" for r in http_rows],
    )
    ax2.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax2.set_ylabel("req/s (grey: direct, blue: proxy)")
    ax2.set_xticks(
        range(len(http_rows)), [r["label"] for r in http_rows], rotation=30, ha="right", fontsize=8
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"chart: {path}"
