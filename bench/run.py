#!/usr/bin/env python3
"""signing-proxy benchmark harness (issue 7): one command, one table.

    /work/venv/bin/python bench/run.py [--quick] [--save [PATH]]

Starts local upstreams (bench/upstream.py), the proxy (`signing-proxy run` with a throwaway
0600 key whose public half the upstreams verify), and a load generator (wrk when installed,
else bench/loadgen.py), measures each scenario, and prints one table with PASS/FAIL lines
for the targets of issue 7. Results go to bench/results/latest.json (and --save PATH), a
chart to bench/results/latest.png when matplotlib is importable. See bench/README.md.

Only 127.0.0.1 is ever contacted. Every child process is stopped on exit.
"""
# ruff: noqa: S603, S607 - starting the proxy, the upstreams, wrk and git is the whole point

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
MIB = 1 << 20
HOST = "127.0.0.1"

BALANCE_PATH = "/trade-api/v2/portfolio/balance"
ORDERS_PATH = "/trade-api/v2/portfolio/orders"  # pre-signed by default in the proxy
# A write route with the same upstream cost that the proxy does not pre-sign by default:
# it shows what the same order costs when signed on demand.
BATCHED_PATH = "/trade-api/v2/portfolio/orders/batched"
STREAM_PATH = "/trade-api/v2/bench/stream"
WS_PATH = "/trade-api/ws/v2"
ORDER_BODY = json.dumps(
    {
        "ticker": "KXBENCH-26JUN11-T1",
        "side": "yes",
        "action": "buy",
        "count": 1,
        "type": "limit",
        "yes_price": 1,
        "client_order_id": "0b6c7f1e-5a4d-4c3b-9e2f-1a0d9c8b7e6f",
    },
    separators=(",", ":"),
)

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
# Kalshi accepts a timestamp about 5 s old; a signature older than half that is suspect.
T_SIG_AGE_MAX_MS = 2500.0
PRESIGN_COUNTERS = {
    "used": "signing_proxy_presigned_used_total",
    "discarded": "signing_proxy_presigned_discarded_total",
}


# --- child processes -------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen[bytes]] = []


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the harness dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    _CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)


def stop_all() -> None:
    for proc in list(_CHILDREN):
        with contextlib.suppress(Exception):
            stop(proc)


atexit.register(stop_all)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --- /proc -----------------------------------------------------------------------------------


def proc_status_kib(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, echo 5 > clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Watch:
    """Peak RSS (VmHWM after a reset, and VmRSS sampled every 20 ms) and CPU of one process."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.rss_before_kib: int | None = None
        self.hwm_before_kib: int | None = None
        self.hwm_after_kib: int | None = None
        self.sampled_peak_kib = 0
        self.hwm_reset = False
        self.cpu_s: float | None = None
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        if self.pid is None:
            return self
        self.hwm_reset = reset_hwm(self.pid)
        self.rss_before_kib = proc_status_kib(self.pid, "VmRSS")
        self.hwm_before_kib = proc_status_kib(self.pid, "VmHWM")
        self._cpu0 = proc_cpu_s(self.pid)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        assert self.pid is not None
        for _ in range(100_000):  # 20 ms * 100k = 33 min at most
            rss = proc_status_kib(self.pid, "VmRSS")
            if rss is not None:
                self.sampled_peak_kib = max(self.sampled_peak_kib, rss)
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc: object) -> None:
        if self.pid is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.wall_s = time.perf_counter() - self._t0
        self.hwm_after_kib = proc_status_kib(self.pid, "VmHWM")
        cpu1 = proc_cpu_s(self.pid)
        if cpu1 is not None and self._cpu0 is not None:
            self.cpu_s = cpu1 - self._cpu0

    @property
    def peak_mib(self) -> float | None:
        if self.pid is None:
            return None
        values = [self.sampled_peak_kib]
        if self.hwm_reset and self.hwm_after_kib is not None:
            values.append(self.hwm_after_kib)
        return max(values) / 1024 if max(values) else None

    @property
    def cpu_pct(self) -> float | None:
        if self.cpu_s is None or not self.wall_s:
            return None
        return 100 * self.cpu_s / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        def kib(v: int | None) -> float | None:
            return None if v is None else round(v / 1024, 2)

        return {
            "peak_rss_mib": None if self.peak_mib is None else round(self.peak_mib, 2),
            "rss_before_mib": kib(self.rss_before_kib),
            "hwm_before_mib": kib(self.hwm_before_kib),
            "hwm_after_mib": kib(self.hwm_after_kib),
            "sampled_peak_rss_mib": kib(self.sampled_peak_kib),
            "hwm_reset": self.hwm_reset,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
            "cpu_pct": None if self.cpu_pct is None else round(self.cpu_pct, 1),
        }


# --- keys and certificates -------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_signing_key(tmp: Path) -> tuple[str, Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path, pub_path = tmp / "kalshi-bench.pem", tmp / "kalshi-bench.pub.pem"
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(uuid.uuid4()), key_path, pub_path


def make_tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (RSA-2048, like most sites)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signing-proxy bench CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return ca_path, cert_path, key_path


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Upstream:
    proc: subprocess.Popen[bytes]
    port: int
    scheme: str
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    def stats(self, reset_max: bool = False) -> dict[str, Any]:
        """The upstream's counters; reset_max=True also starts a new window for its maxima
        (read it so before a scenario, and the maxima read after it are the scenario's)."""
        query = "?reset_max=1" if reset_max else ""
        with urllib.request.urlopen(  # noqa: S310 - loopback only
            f"{self.url}/_bench/stats{query}", timeout=5, context=self.ssl_context
        ) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data


@dataclass
class Proxy:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def presign_counters(self) -> tuple[dict[str, float], str | None]:
        """The pre-signing counters from GET /metrics, and why some are missing (or None)."""
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as r:  # noqa: S310
                text = r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return {}, f"GET /metrics answered {exc.code}"
        except OSError as exc:
            return {}, f"GET /metrics failed ({type(exc).__name__})"
        found: dict[str, float] = {}
        for short, name in PRESIGN_COUNTERS.items():
            # Summed over label sets, should the counters ever get labels (e.g. per route).
            values = re.findall(rf"^{name}(?:\{{[^}}]*\}})?[ \t]+(\S+)", text, re.M)
            with contextlib.suppress(ValueError):
                if values:
                    found[short] = sum(float(v) for v in values)
        missing = [n for short, n in PRESIGN_COUNTERS.items() if short not in found]
        return found, (f"{' and '.join(missing)} not exposed at /metrics" if missing else None)


def proxy_log_summary(log: Path) -> dict[str, Any]:
    levels: dict[str, int] = {}
    problems: dict[str, int] = {}
    lines = 0
    with contextlib.suppress(OSError), log.open(errors="replace") as f:
        for lines, line in enumerate(f, 1):  # noqa: B007 - the count is used below
            try:
                event = json.loads(line)
            except ValueError:
                levels["unparsed"] = levels.get("unparsed", 0) + 1
                continue
            level = str(event.get("level", "?"))
            levels[level] = levels.get(level, 0) + 1
            if level in ("warning", "error", "critical"):
                detail = event.get("exception") or event.get("error") or event.get("status")
                what = f"{event.get('event')}: {detail}"
                problems[what] = problems.get(what, 0) + 1
    return {"lines": lines, "levels": levels, "warnings": problems}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def start_upstream(
    tmp: Path,
    name: str,
    key_id: str,
    pub: Path,
    *,
    verify_every: int = 1,
    sandbox: bool = False,
    tls: tuple[Path, Path, Path] | None = None,
    uvloop: bool = True,
) -> Upstream:
    ready = tmp / f"{name}.ready"
    cmd = [
        PY,
        str(BENCH / "upstream.py"),
        "--ready-file",
        str(ready),
        "--public-key",
        str(pub),
        "--key-id",
        key_id,
        "--verify-every",
        str(verify_every),
        "--max-seconds",
        "900",
    ]
    if sandbox:
        cmd.append("--sandbox")
    if uvloop:
        cmd.append("--uvloop")
    ssl_context = None
    if tls:
        ca, cert, key = tls
        cmd += ["--cert", str(cert), "--key", str(key)]
        ssl_context = ssl.create_default_context(cafile=str(ca))
    log = tmp / f"{name}.log"
    proc = spawn(cmd, log=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready.exists():
            port = json.loads(ready.read_text())["port"]
            return Upstream(proc, port, "https" if tls else "http", ssl_context)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"upstream {name} did not start:\n{_tail(log)}")


def proxy_command() -> list[str]:
    script = Path(PY).parent / "signing-proxy"
    return [str(script)] if script.exists() else [PY, "-m", "signing_proxy"]


def start_proxy(
    tmp: Path,
    name: str,
    upstream: Upstream,
    key_id: str,
    key: Path,
    log_level: str,
    extra_env: dict[str, str] | None = None,
) -> Proxy:
    # A clean environment: no configuration or key of the user's may leak into the bench.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KALSHI_", "SIGNING_PROXY_", "SSL_CERT_"))
    }
    env.update(
        {
            "KALSHI_API_KEY_ID": key_id,
            "KALSHI_PRIVATE_KEY_FILE": str(key),
            "KALSHI_ENV": "demo",
            "SIGNING_PROXY_LOG_FORMAT": "json",
            "SIGNING_PROXY_LOG_LEVEL": log_level,
        }
    )
    env.update(extra_env or {})
    port = free_port()
    log = tmp / f"{name}.log"
    cmd = [*proxy_command(), "run", "--host", HOST, "--port", str(port), "--upstream", upstream.url]
    proc = spawn(cmd, log=log, env=env, cwd=tmp)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            health = f"http://{HOST}:{port}/healthz"
            with urllib.request.urlopen(health, timeout=2) as r:
                if r.status == 200:
                    return Proxy(proc, port, log)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"proxy {name} did not start (exit {proc.poll()}):\n{_tail(log)}")


def warm_up(
    url: str,
    n: int = 50,
    method: str = "GET",
    body: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """A few keep-alive requests; the first answer must be 2xx (checks the setup)."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"context": ssl_context} if parts.scheme == "https" else {}
    conn = cls(parts.hostname or HOST, parts.port, timeout=10, **kwargs)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json"} if body else {}
    try:
        for i in range(n):
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if i == 0 and not 200 <= r.status < 300:
                raise RuntimeError(f"{method} {url} answered {r.status}: {data[:300]!r}")
    finally:
        conn.close()


# --- load generators -------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk_version() -> str | None:
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


def run_loadgen(mode: str, *args: str, timeout: float) -> dict[str, Any]:
    cmd = [PY, str(BENCH / "loadgen.py"), mode, "--uvloop", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen {mode} failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Ctx:
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
        return float(self.args.duration)

    def add(self, result: dict[str, Any]) -> dict[str, Any]:
        self.results.append(result)
        print(f"  {result['label']:<46} {_summary(result)}", flush=True)
        return result

    def get(self, key: str) -> dict[str, Any] | None:
        return next((r for r in self.results if r["key"] == key), None)


def _summary(r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    parts = [f"{_fmt_num(r.get('throughput'))} {r.get('unit', '')}"]
    if r.get("p50_ms") is not None:
        parts.append(f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
    if (r.get("proxy") or {}).get("peak_rss_mib"):
        parts.append(f"proxy RSS {r['proxy']['peak_rss_mib']:.1f} MiB")
    if r.get("problems"):
        parts.append("PROBLEMS: " + "; ".join(r["problems"]))
    return "  ".join(parts)


def _upstream_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counters: after - before. Maxima (`*_max_ms`): as read after, since `before` was read
    with reset_max=True."""
    out: dict[str, Any] = {}
    for k, v in after.items():
        if k.endswith("_max_ms"):
            out[k] = v
        elif isinstance(v, int | float):
            out[k] = round(v - (before.get(k) or 0), 3)
    return out


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
    loadgen = loadgen or ctx.loadgen
    before = upstream.stats(reset_max=True)
    with Watch(proxy.pid if proxy else None) as watch:
        if loadgen == "wrk":
            res = run_wrk(url, concurrency, ctx.duration, ctx.tmp, method, body)
        else:
            extra = ["--method", method] + (["--body", body] if body else [])
            res = run_loadgen(
                "http",
                "--url",
                url,
                "--concurrency",
                str(concurrency),
                "--duration",
                str(ctx.duration),
                *extra,
                timeout=ctx.duration + 60,
            )
    delta = _upstream_delta(before, upstream.stats())
    return ctx.add(
        _http_result(
            ctx, key, label, group, via, concurrency, res, watch, delta, baseline, method, url
        )
    )


def _http_result(
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
    _compare(ctx, result)
    return result


def _compare(ctx: Ctx, result: dict[str, Any]) -> None:
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
) -> dict[str, Any]:
    """Open loop at --paced-rate on one keep-alive connection (bench/loadgen.py http --rate).

    `presigned`: whether the proxy should send this route with pre-made signatures (True),
    must not (False), or it does not matter (None); checked with the proxy's counters.
    """
    rate = float(ctx.args.paced_rate)
    extra = ["--method", method] + (["--body", body] if body else [])
    counters_before = proxy.presign_counters() if proxy else ({}, None)
    before = upstream.stats(reset_max=True)
    with Watch(proxy.pid if proxy else None) as watch:
        res = run_loadgen(
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
        )
    delta = _upstream_delta(before, upstream.stats())
    result = _http_result(
        ctx, key, label, "paced", via, 1, res, watch, delta, baseline, method, url
    )
    result["rate"] = rate
    result["service_p50_ms"] = res["service"]["p50_ms"]
    result["service_p99_ms"] = res["service"]["p99_ms"]
    if res.get("unsent"):
        result["problems"].append(f"{res['unsent']} requests never sent (far behind schedule)")
    if res.get("connects", 1) > 1:
        result["problems"].append(f"the connection was opened {res['connects']} times")
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
    if proxy is not None:
        counters_after, why = proxy.presign_counters()
        why = why or counters_before[1]
        if why:
            result["presign"] = {"unavailable": why}
        else:
            used = counters_after["used"] - counters_before[0]["used"]
            discarded = counters_after["discarded"] - counters_before[0]["discarded"]
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
    return ctx.add(result)


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
    before = upstream.stats(reset_max=True)
    args = ["--url", url, "--concurrency", "1", "--duration", str(ctx.duration)]
    if cafile:
        args += ["--cafile", str(cafile)]
    with Watch(proxy.pid if proxy else None) as watch:
        res = run_loadgen("oneshot", *args, timeout=ctx.duration + 60)
    delta = _upstream_delta(before, upstream.stats())
    return ctx.add(
        _http_result(ctx, key, label, "one-shot", via, 1, res, watch, delta, baseline, "GET", url)
    )


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
    _compare(ctx, result)
    return ctx.add(result)


def idle_scenario(ctx: Ctx, key: str, label: str, proxy: Proxy, connections: int) -> dict[str, Any]:
    url = f"{proxy.url}{BALANCE_PATH}"
    hold = 60.0
    cmd = [
        PY,
        str(BENCH / "loadgen.py"),
        "idle",
        "--uvloop",
        "--url",
        url,
        "--connections",
        str(connections),
        "--hold",
        str(hold),
    ]
    rss_idle_kib = proc_status_kib(proxy.pid, "VmRSS")
    problems: list[str] = []
    with Watch(proxy.pid) as watch:
        gen = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _CHILDREN.append(gen)  # type: ignore[arg-type]
        try:
            ready = _readline(gen, timeout=60)
            time.sleep(min(1.0, ctx.duration / 2))  # let the proxy settle with all of them open
            rss_open_kib = proc_status_kib(proxy.pid, "VmRSS")
            out, err = gen.communicate(input="done\n", timeout=hold + 30)
        finally:
            stop(gen)  # type: ignore[arg-type]
    lines = [line for line in out.splitlines() if line.strip()]
    if gen.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen idle failed: {err[-2000:]}")
    res = json.loads(lines[-1])
    res["ready"] = ready
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


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    stdout = proc.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        raise RuntimeError(f"no READY line from the load generator within {timeout:g} s")
    return box[0].strip()


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
    before = upstream.stats(reset_max=True)
    with Watch(proxy.pid if proxy else None) as watch:
        res = run_loadgen("ws", *args, timeout=3 * half + 90)
    delta = _upstream_delta(before, upstream.stats())
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
    if not res.get("ok"):
        status = res.get("handshake_status")
        if via == "proxy" and status == 404:
            result["skipped"] = (
                "the proxy answers 404 at /trade-api/ws/v2 (WebSocket relay not there yet)"
            )
        else:
            result["problems"].append(f"handshake failed: status {status}, {res.get('error')}")
            result["skipped"] = f"handshake failed (status {status})"
        return ctx.add(result)
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
    _compare(ctx, result)
    return ctx.add(result)


def sandbox_scenario(ctx: Ctx, upstream: Upstream, proxy: Proxy) -> dict[str, Any]:
    url = f"{proxy.url}{BALANCE_PATH}"
    before = upstream.stats(reset_max=True)
    with Watch(proxy.pid) as watch:
        if ctx.loadgen == "wrk":
            res = run_wrk(url, 16, ctx.duration, ctx.tmp)
        else:
            res = run_loadgen(
                "http",
                "--url",
                url,
                "--concurrency",
                "16",
                "--duration",
                str(ctx.duration),
                timeout=ctx.duration + 60,
            )
    delta = _upstream_delta(before, upstream.stats())
    result = _http_result(
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


# --- the run ---------------------------------------------------------------------------------


def paced_group(ctx: Ctx, up: Upstream, px: Proxy) -> None:
    """c=1 latency, open loop at --paced-rate: GET balance, and POST orders pre-signed vs not."""
    rate = f"{ctx.args.paced_rate:g}/s"
    orders = (f"{up.url}{ORDERS_PATH}", f"{px.url}{ORDERS_PATH}")
    for u in (*orders, f"{up.url}{BATCHED_PATH}", f"{px.url}{BATCHED_PATH}"):
        warm_up(u, n=5, method="POST", body=ORDER_BODY)
    time.sleep(0.2)  # let the proxy refill its pre-signed pool after the warm-up
    paced_scenario(
        ctx,
        "direct_paced_get",
        f"direct GET balance, {rate} paced",
        f"{up.url}{BALANCE_PATH}",
        via="direct",
        upstream=up,
    )
    paced_scenario(
        ctx,
        "proxy_paced_get",
        f"proxy  GET balance, {rate} paced",
        f"{px.url}{BALANCE_PATH}",
        via="proxy",
        upstream=up,
        proxy=px,
        baseline="direct_paced_get",
    )
    post: dict[str, Any] = {"method": "POST", "body": ORDER_BODY, "upstream": up}
    paced_scenario(
        ctx,
        "direct_paced_post",
        f"direct POST orders, {rate} paced",
        orders[0],
        via="direct",
        **post,
    )
    paced_scenario(
        ctx,
        "proxy_paced_post",
        f"proxy  POST orders (pre-signed), {rate}",
        orders[1],
        via="proxy",
        proxy=px,
        baseline="direct_paced_post",
        presigned=True,
        **post,
    )
    paced_scenario(
        ctx,
        "proxy_paced_batched",
        f"proxy  POST orders/batched, on demand, {rate}",
        f"{px.url}{BATCHED_PATH}",
        via="proxy",
        proxy=px,
        baseline="direct_paced_post",
        presigned=False,
        **post,
    )


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="signing-proxy benchmark harness (issue 7)")
    parser.add_argument("--quick", action="store_true", help="about 2 s per scenario")
    parser.add_argument("--duration", type=float, help="seconds per scenario (default 5, quick 2)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="keep-alive load generator (auto: wrk when installed)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 16, 64],
        help="keep-alive concurrencies (default 1,16,64)",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=100.0,
        help="req/s of the open-loop c=1 latency scenarios (default 100)",
    )
    parser.add_argument(
        "--verify-every",
        type=int,
        default=1,
        help="the fast upstream verifies 1 signed request in N (1 = all, 0 = none)",
    )
    parser.add_argument("--stream-mib", type=int, default=200)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument(
        "--proxy-log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="run the upstreams and the Python load generator on asyncio's loop",
    )
    parser.add_argument(
        "--only", help="comma list of groups: keepalive,paced,stream,idle,ws,oneshot,sandbox"
    )
    parser.add_argument(
        "--save",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write the JSON here (default bench/results/YYYY-MM-DD.json)",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--keep-tmp", action="store_true", help="keep keys and logs for a look")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    if args.duration <= 0 or args.duration > 120:
        parser.error("--duration must be in (0, 120]")
    if not 1 <= args.paced_rate <= 5000:
        parser.error("--paced-rate must be in [1, 5000]")

    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C stops the run even when the harness was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle_connections * 2 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    try:
        report = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; child processes stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    text = json.dumps(report, indent=2, default=str)
    latest.write_text(text + "\n")
    saved = None
    if args.save is not None:
        saved = Path(args.save or RESULTS / f"{dt.date.today().isoformat()}.json")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(text + "\n")
    print()
    print(render(report))
    print()
    print(f"results: {latest}" + (f" and {saved}" if saved else ""))
    if not args.no_chart:
        print(chart(report, RESULTS / "latest.png"))
        if saved:
            chart(report, saved.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
