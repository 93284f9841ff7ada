"""The upstreams and the proxy under test: started as child processes, ready-checked, read."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH, HOST, PY
from processes import spawn

PRESIGN_COUNTERS = {
    "used": "signing_proxy_presigned_used_total",
    "discarded": "signing_proxy_presigned_discarded_total",
}


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Upstream:
    """A running bench/upstream.py."""

    proc: subprocess.Popen[bytes]
    port: int
    scheme: str
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        """The upstream's base URL (http:// or https://)."""
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
    """A running `signing-proxy run`."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The proxy's process id."""
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
    """Count the proxy's JSON log lines by level, and its warnings and errors by event."""
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
    """A TCP port on 127.0.0.1 that is free now."""
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
    """Start bench/upstream.py (fast, sandbox or TLS) and wait until it is bound."""
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
    """The `signing-proxy` command of this Python environment."""
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
    """Start `signing-proxy run` in front of `upstream` and wait until /healthz answers."""
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
            # Its own journal in the run's directory: never the user's state directory.
            "SIGNING_PROXY_JOURNAL": str(tmp / f"{name}-journal.sqlite3"),
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
    headers: tuple[str, ...] = (),
) -> None:
    """A few keep-alive requests; the first answer must be 2xx (checks the setup)."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"context": ssl_context} if parts.scheme == "https" else {}
    conn = cls(parts.hostname or HOST, parts.port, timeout=10, **kwargs)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sent = {"Content-Type": "application/json"} if body else {}
    sent.update(dict(header.split(": ", 1) for header in headers))
    try:
        for i in range(n):
            conn.request(method, target, body=body, headers=sent)
            r = conn.getresponse()
            data = r.read()
            if i == 0 and not 200 <= r.status < 300:
                raise RuntimeError(f"{method} {url} answered {r.status}: {data[:300]!r}")
    finally:
        conn.close()
