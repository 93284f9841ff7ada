"""The printed table with its notes and targets, the saved JSON, and the PNG chart."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from common import RESULTS

# --- output ----------------------------------------------------------------------------------


def fmt_num(v: float | None) -> str:
    """A throughput for the table: thousands separated from 100 up, one decimal below."""
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def render(report: dict[str, Any]) -> str:
    """The whole printed report: header, table, notes and targets."""
    lines = _header_lines(report)
    lines += _table_lines(report["scenarios"])
    lines.append("")
    lines.append("notes:")
    lines += _note_lines(report)
    lines.append("")
    lines.append("targets (issues 7 and 15):")
    for t in report["targets"]:
        note = f"  [{t['note']}]" if t["note"] else ""
        lines.append(f"  {t['status']:<4}  {t['target']}: {t['value']}{note}")
    return "\n".join(lines)


def _header_lines(report: dict[str, Any]) -> list[str]:
    """When, where and how the run was made."""
    m = report["machine"]
    return [
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


def _table_lines(scenarios: list[dict[str, Any]]) -> list[str]:
    """The table: one row per scenario, its problems under it."""
    header = (
        f"{'scenario':<46} {'conc':>5} {'throughput':>16} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'proxy RSS':>10} {'proxy CPU':>9} {'x direct':>8} {'+p50 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in scenarios:
        if r.get("skipped"):
            lines.append(f"{r['label']:<46} {r['concurrency']:>5} skipped: {r['skipped']}")
            continue
        lines.append(_row(r))
        for problem in r.get("problems", []):
            lines.append(f"{'':<6}! {problem}")
    return lines


def _row(r: dict[str, Any]) -> str:
    """One scenario's row of the table."""
    thr = "-" if r.get("throughput") is None else f"{fmt_num(r['throughput'])} {r['unit']}"
    if r["group"] == "idle":
        thr = f"{r['raw']['still_open']} open"
    p = r.get("proxy") or {}
    rss = f"{p['peak_rss_mib']:.1f} MiB" if p.get("peak_rss_mib") else "-"
    cpu = f"{p['cpu_pct']:.0f}%" if p.get("cpu_pct") is not None else "-"
    ratio = f"{r['ratio_throughput']:.2f}x" if r.get("ratio_throughput") else "-"
    added = f"{r['added_p50_ms']:+.3f}" if r.get("added_p50_ms") is not None else "-"
    p50 = f"{r['p50_ms']:.3f}" if r.get("p50_ms") is not None else "-"
    p99 = f"{r['p99_ms']:.3f}" if r.get("p99_ms") is not None else "-"
    return (
        f"{r['label']:<46} {r['concurrency']:>5} {thr:>16} {p50:>8} {p99:>8} "
        f"{rss:>10} {cpu:>9} {ratio:>8} {added:>8}"
    )


def _note_lines(report: dict[str, Any]) -> list[str]:
    """The notes under the table."""
    lines: list[str] = []
    for r in report["scenarios"]:
        lines += _scenario_notes(r)
    lines += _paced_notes(report["scenarios"])
    lines += _log_notes(report.get("proxy_logs", {}))
    lines.append(
        "  one-shot: "
        + next((r["loadgen"] for r in report["scenarios"] if r["group"] == "one-shot"), "not run")
        + "; wrk cannot open a connection per request"
    )
    lines.append(
        "  proxy RSS = peak during the scenario (VmHWM reset before it, and VmRSS "
        "sampled every 20 ms); proxy CPU = CPU time / wall time (100% = one core)"
    )
    return lines


def _scenario_notes(r: dict[str, Any]) -> list[str]:
    """A scenario's notes: stream memory, idle memory, or what the upstream verified."""
    lines: list[str] = []
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
    # The paced rows that bypass the proxy sign too (measure_http.client_signed).
    verified = r["via"] == "proxy" or r["group"] == "paced"
    if r["group"] in ("keep-alive", "paced") and verified and r.get("upstream"):
        lines.append(_verified_note(r))
    per_frame = r.get("raw", {}).get("proxy_cpu_us_per_frame")
    if per_frame is not None:
        receivers = r["raw"].get("receivers", 1)
        lines.append(
            f"  {r['key']}: proxy CPU {r['proxy']['cpu_s']} s for {r['raw']['frames']:,} frames "
            f"delivered = {per_frame} us a frame; {receivers} receiving process(es)"
        )
    return lines


def _verified_note(r: dict[str, Any]) -> str:
    """What the upstream verified of a proxied scenario, signature age and pre-signing."""
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
    return line


def _paced_notes(scenarios: list[dict[str, Any]]) -> list[str]:
    """How the paced rows were paced, and their service times."""
    paced = [r for r in scenarios if r["group"] == "paced" and not r.get("skipped")]
    if not paced:
        return []
    lags = [r["raw"].get("send_lag_p99_ms") or 0 for r in paced]
    late = sum(r["raw"].get("late_sends", 0) for r in paced)
    rounds = max(r.get("rounds", 1) for r in paced)
    in_turn = [r["key"] for r in paced if r.get("rounds", 1) > 1]
    notes = [
        f"  paced rows: open loop at {paced[0]['rate']:g} req/s on one keep-alive connection "
        "(bench/loadgen.py http --rate), latency from the scheduled send time; "
        f"generator send lag p99 <= {max(lags):.3f} ms; {late} sends due while the "
        "previous answer was outstanding",
        "    service time p50 (from the actual send): "
        + ", ".join(f"{r['key']} {r['service_p50_ms']:.3f}" for r in paced)
        + " ms",
    ]
    if in_turn:
        notes.append(
            f"    run in turn ({rounds} rounds, each row once a round, samples pooled): "
            + ", ".join(in_turn)
        )
    return notes


def _log_notes(proxy_logs: dict[str, dict[str, Any]]) -> list[str]:
    """The warnings each proxy logged, if any."""
    lines: list[str] = []
    for name, summary in proxy_logs.items():
        if summary["warnings"]:
            worst = "; ".join(f"{k} x{v}" for k, v in list(summary["warnings"].items())[:3])
            lines.append(f"  ! {name} logged warnings: {worst}")
            if any("closing transport" in k for k in summary["warnings"]):
                lines.append(
                    "    (requests still in flight when the load generator closed its "
                    "connections at the end of a timed run; the proxy logs them as 500)"
                )
    return lines


def save(report: dict[str, Any], save_to: str | None) -> tuple[Path, Path | None]:
    """Write bench/results/latest.json, and with --save also PATH (or a dated file)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    text = json.dumps(report, indent=2, default=str)
    latest.write_text(text + "\n")
    saved = None
    if save_to is not None:
        saved = Path(save_to or RESULTS / f"{dt.date.today().isoformat()}.json")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(text + "\n")
    return latest, saved


def chart(report: dict[str, Any], path: Path) -> str:
    """Draw p50/p99 and req/s per scenario to `path`; what happened, in one line."""
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
