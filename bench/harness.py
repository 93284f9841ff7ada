"""One run: the machine, the throwaway key, the upstreams and proxies, every group, the report."""

# ruff: noqa: S603, S607 - starting the proxy, the upstreams, wrk and git is the whole point

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from certs import make_signing_key
from clients import wrk_version
from common import MIB, ROOT
from processes import debian_tool, stop_all
from records import Ctx
from scenarios import FAST_GROUPS, fast_groups, oneshot_group, sandbox_group
from targets import targets

# fanout (many WebSocket clients on the shared feed) runs when named: --only fanout.
ALL_GROUPS = {"keepalive", "paced", "gateway", "stream", "idle", "ws", "oneshot", "sandbox"}


def machine_info(loadgen: str) -> dict[str, Any]:
    """CPUs, memory, kernel, versions and the git commit, for the report's header."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / MIB, 1)

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--", "signing_proxy"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "mem_total_gib": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "cryptography": version("cryptography"),
        "uvloop": version("uvloop"),
        "signing_proxy": version("signing-proxy"),
        "git_commit": commit,
        "signing_proxy_dirty": dirty,
        "wrk": wrk_version(),
        "loadgen": loadgen,
        "loadavg_start": os.getloadavg(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every chosen group, with all processes stopped at the end; the report."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    loadgen = choose_loadgen(args.loadgen)
    info = machine_info(loadgen)
    groups = chosen_groups(args.only)
    print(
        f"signing-proxy bench: {args.duration:g} s per scenario, load generator {loadgen}; "
        f"groups: {', '.join(sorted(groups))}",
        flush=True,
    )

    with contextlib.ExitStack() as stack:
        tmp = temp_dir(stack, args.keep_tmp)
        stack.callback(stop_all)
        key_id, key, pub = make_signing_key(tmp)
        ctx = Ctx(args, tmp, key_id, key, pub, loadgen)
        if groups & set(FAST_GROUPS):
            fast_groups(ctx, groups, info)
        if "oneshot" in groups:
            oneshot_group(ctx)
        if "sandbox" in groups:
            sandbox_group(ctx)

    info["loadavg_end"] = os.getloadavg()
    report = build_report(args, ctx, info, now, time.monotonic() - started)
    report["targets"] = targets(ctx)
    return report


def choose_loadgen(choice: str) -> str:
    """The closed-loop load generator: "wrk" or "python" (auto: wrk, installed from Debian's
    packages when missing; python when it cannot be had)."""
    if choice == "python":
        return choice
    if debian_tool("wrk", "wrk") is not None:
        return "wrk"
    if choice == "wrk":
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
    return "python"


def chosen_groups(only: str | None) -> set[str]:
    """The groups --only names ("post" is the older name of "paced"), or all of them."""
    return (
        {"paced" if g == "post" else g for g in only.split(",")}  # "post": older name
        if only
        else set(ALL_GROUPS)
    )


def temp_dir(stack: contextlib.ExitStack, keep: bool) -> Path:
    """A temp dir for keys and logs: removed when `stack` closes, unless `keep`."""
    if keep:
        tmp = Path(tempfile.mkdtemp(prefix="signing-proxy-bench-"))
        print(f"temp dir kept: {tmp}")
        return tmp
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signing-proxy-bench-")))


def build_report(
    args: argparse.Namespace, ctx: Ctx, info: dict[str, Any], now: dt.datetime, wall_s: float
) -> dict[str, Any]:
    """The JSON report of the run, without its targets."""
    return {
        "date": now.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "duration_per_scenario_s": ctx.duration,
        "wall_s": round(wall_s, 1),
        "machine": info,
        "settings": {
            "upstream": "bench/upstream.py (aiohttp"
            + ("" if args.no_uvloop else " + uvloop")
            + ", separate process)",
            "upstream_verification": _verify_text(args.verify_every),
            "proxy": "signing-proxy run (subprocess), RSA-2048 throwaway key, logs "
            f"{args.proxy_log_level} as JSON to a file",
            "loadgen": ctx.loadgen,
            "paced_rate": args.paced_rate,
            "stream_mib": args.stream_mib,
            "idle_connections": args.idle_connections,
        },
        "scenarios": ctx.results,
        "proxy_logs": ctx.proxy_logs,
    }


def _verify_text(every: int) -> str:
    """What the header says of the fast upstream's verification."""
    if every <= 0:
        return "signatures are not verified by the fast upstream"
    if every == 1:
        return "every signed request verified by the fast upstream (RSA-PSS verify, same CPUs)"
    return f"1 in {every} signed requests verified by the fast upstream"
