"""The load generators as the harness runs them: wrk, and bench/loadgen.py in a subprocess."""

# ruff: noqa: S603 - running wrk and the load generator is the whole point

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from common import BENCH, PY

# --- load generators -------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    """A wrk duration ("812.00us", "1.20ms", "2.00s") in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk_version() -> str | None:
    """`wrk x.y.z` when wrk is installed, else None."""
    exe = shutil.which("wrk")
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()
    m = re.match(r"wrk \S+", first[0]) if first else None
    return m.group(0) if m else "wrk"


def run_wrk(
    url: str,
    concurrency: int,
    duration: float,
    tmp: Path,
    method: str = "GET",
    body: str | None = None,
) -> dict[str, Any]:
    """One wrk run (one thread, keep-alive, closed loop), parsed into the harness's figures."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    if method != "GET" or body:
        script = tmp / "post.lua"
        script.write_text(
            f"wrk.method = {json.dumps(method)}\n"
            f"wrk.body = {json.dumps(body or '')}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        cmd += ["-s", str(script)]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or text}")
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M))
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(\w+),", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if not (pct and total and rps):
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    requests = int(total.group(1))
    errors = sum(int(x) for x in sock.groups()) if sock else 0
    bad = int(non2xx.group(1)) if non2xx else 0
    return {
        "client": f"wrk -t1 -c{concurrency} (keep-alive)",
        "requests": requests,
        "ok": requests - bad,
        "non2xx": bad,
        "errors": errors,
        "elapsed_s": _ms(total.group(2) + total.group(3)) / 1000,
        "rps": float(rps.group(1)),
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "mean_ms": _ms(lat.group(1)) if lat else None,
        "max_ms": _ms(lat.group(3)) if lat else None,
        "raw": text,
    }


def loadgen_command(mode: str, *args: str) -> list[str]:
    """The command line of bench/loadgen.py in `mode`."""
    return [PY, str(BENCH / "loadgen.py"), mode, "--uvloop", *args]


def run_loadgen(mode: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run bench/loadgen.py in `mode` to its end; the JSON line it printed last."""
    out = subprocess.run(
        loadgen_command(mode, *args), capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen {mode} failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def closed_loop(
    loadgen: str,
    url: str,
    concurrency: int,
    duration: float,
    tmp: Path,
    method: str = "GET",
    body: str | None = None,
) -> dict[str, Any]:
    """Keep-alive closed loop at `concurrency` for `duration` s: wrk, or bench/loadgen.py."""
    if loadgen == "wrk":
        return run_wrk(url, concurrency, duration, tmp, method, body)
    extra = ["--method", method] + (["--body", body] if body else [])
    return run_loadgen(
        "http",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        *extra,
        timeout=duration + 60,
    )
