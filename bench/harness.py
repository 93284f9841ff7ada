"""One run: the machine, the throwaway key, the upstreams and proxies, every group, the report."""

# ruff: noqa: S603, S607 - starting the proxy, the upstreams, wrk and git is the whole point

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from certs import make_signing_key, make_tls
from clients import wrk_version
from common import BALANCE_PATH, HOST, MIB, ROOT, STREAM_PATH, WS_PATH
from measure_http import http_scenario, oneshot_scenario, sandbox_scenario
from measure_streams import idle_scenario, stream_scenario, ws_scenario
from processes import proc_status_kib, stop, stop_all
from records import Ctx
from scenarios import paced_group
from servers import start_proxy, start_upstream, warm_up
from targets import targets


def machine_info(loadgen: str) -> dict[str, Any]:
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
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
    info = machine_info(loadgen)
    groups = (
        {"paced" if g == "post" else g for g in args.only.split(",")}  # "post": older name
        if args.only
        else {"keepalive", "paced", "stream", "idle", "ws", "oneshot", "sandbox"}
    )
    print(
        f"signing-proxy bench: {args.duration:g} s per scenario, load generator {loadgen}; "
        f"groups: {', '.join(sorted(groups))}",
        flush=True,
    )

    with contextlib.ExitStack() as stack:
        if args.keep_tmp:
            tmp = Path(tempfile.mkdtemp(prefix="signing-proxy-bench-"))
            print(f"temp dir kept: {tmp}")
        else:
            tmp = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="signing-proxy-bench-"))
            )
        stack.callback(stop_all)
        key_id, key, pub = make_signing_key(tmp)
        ctx = Ctx(args, tmp, key_id, key, pub, loadgen)
        d = ctx.duration

        if groups & {"keepalive", "paced", "stream", "idle", "ws"}:
            up = start_upstream(
                tmp,
                "upstream-fast",
                key_id,
                pub,
                verify_every=args.verify_every,
                uvloop=not args.no_uvloop,
            )
            px = start_proxy(tmp, "proxy-fast", up, key_id, key, args.proxy_log_level)
            info["proxy_rss_after_start_mib"] = round(
                (proc_status_kib(px.pid, "VmRSS") or 0) / 1024, 2
            )
            direct, proxied = f"{up.url}{BALANCE_PATH}", f"{px.url}{BALANCE_PATH}"
            warm_up(direct)
            warm_up(proxied)
            if "keepalive" in groups:
                for c in args.concurrency:
                    http_scenario(
                        ctx,
                        f"direct_c{c}",
                        f"direct GET balance, c={c}",
                        direct,
                        c,
                        via="direct",
                        upstream=up,
                    )
                    http_scenario(
                        ctx,
                        f"proxy_c{c}",
                        f"proxy  GET balance, c={c}",
                        proxied,
                        c,
                        via="proxy",
                        upstream=up,
                        proxy=px,
                        baseline=f"direct_c{c}",
                    )
            if "paced" in groups:
                paced_group(ctx, up, px)
            if "stream" in groups:
                size = args.stream_mib * MIB
                q = f"{STREAM_PATH}?bytes={size}"
                stream_scenario(
                    ctx,
                    "direct_stream",
                    f"direct stream {args.stream_mib} MiB",
                    f"{up.url}{q}",
                    size,
                    via="direct",
                    proxy=None,
                    baseline=None,
                )
                stream_scenario(
                    ctx,
                    "proxy_stream",
                    f"proxy  stream {args.stream_mib} MiB",
                    f"{px.url}{q}",
                    size,
                    via="proxy",
                    proxy=px,
                    baseline="direct_stream",
                )
            if "idle" in groups:
                idle_scenario(
                    ctx,
                    "proxy_idle",
                    f"proxy  {args.idle_connections} idle connections",
                    px,
                    args.idle_connections,
                )
            if "ws" in groups:
                ws_scenario(
                    ctx,
                    "direct_ws",
                    "direct WebSocket feed + echo, 1 session",
                    f"ws://{HOST}:{up.port}{WS_PATH}",
                    via="direct",
                    upstream=up,
                    proxy=None,
                    baseline=None,
                    sign=True,
                )
                ws_scenario(
                    ctx,
                    "proxy_ws",
                    "proxy  WebSocket feed + echo, 1 session",
                    f"ws://{HOST}:{px.port}{WS_PATH}",
                    via="proxy",
                    upstream=up,
                    proxy=px,
                    baseline="direct_ws",
                    sign=False,
                )
            ctx.stop_proxy("proxy-fast", px)
            stop(up.proc)

        if "oneshot" in groups:
            tls = make_tls(tmp)
            up = start_upstream(
                tmp,
                "upstream-tls",
                key_id,
                pub,
                verify_every=args.verify_every,
                tls=tls,
                uvloop=not args.no_uvloop,
            )
            px = start_proxy(
                tmp,
                "proxy-tls",
                up,
                key_id,
                key,
                args.proxy_log_level,
                {"SSL_CERT_FILE": str(tls[0])},
            )
            direct, proxied = f"{up.url}{BALANCE_PATH}", f"{px.url}{BALANCE_PATH}"
            warm_up(direct, n=3, ssl_context=up.ssl_context)
            warm_up(proxied, n=3)
            oneshot_scenario(
                ctx,
                "direct_oneshot",
                "direct one-shot HTTPS, c=1",
                direct,
                via="direct",
                upstream=up,
                proxy=None,
                baseline=None,
                cafile=tls[0],
            )
            oneshot_scenario(
                ctx,
                "proxy_oneshot",
                "proxy  one-shot (http->pooled TLS), c=1",
                proxied,
                via="proxy",
                upstream=up,
                proxy=px,
                baseline="direct_oneshot",
            )
            ctx.stop_proxy("proxy-tls", px)
            stop(up.proc)

        if "sandbox" in groups:
            up = start_upstream(
                tmp, "upstream-sandbox", key_id, pub, sandbox=True, uvloop=not args.no_uvloop
            )
            px = start_proxy(tmp, "proxy-sandbox", up, key_id, key, args.proxy_log_level)
            warm_up(f"{px.url}{BALANCE_PATH}", n=20)
            sandbox_scenario(ctx, up, px)
            ctx.stop_proxy("proxy-sandbox", px)
            stop(up.proc)

    info["loadavg_end"] = os.getloadavg()
    report = {
        "date": now.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "duration_per_scenario_s": d,
        "wall_s": round(time.monotonic() - started, 1),
        "machine": info,
        "settings": {
            "upstream": "bench/upstream.py (aiohttp"
            + ("" if args.no_uvloop else " + uvloop")
            + ", separate process)",
            "upstream_verification": _verify_text(args.verify_every),
            "proxy": "signing-proxy run (subprocess), RSA-2048 throwaway key, logs "
            f"{args.proxy_log_level} as JSON to a file",
            "loadgen": loadgen,
            "paced_rate": args.paced_rate,
            "stream_mib": args.stream_mib,
            "idle_connections": args.idle_connections,
        },
        "scenarios": ctx.results,
        "proxy_logs": ctx.proxy_logs,
    }
    report["targets"] = targets(ctx)
    return report


def _verify_text(every: int) -> str:
    if every <= 0:
        return "signatures are not verified by the fast upstream"
    if every == 1:
        return "every signed request verified by the fast upstream (RSA-PSS verify, same CPUs)"
    return f"1 in {every} signed requests verified by the fast upstream"
