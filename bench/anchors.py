"""Anchors measured in the same run as the proxy: nginx as a plain reverse proxy and a
minimal aiohttp reverse proxy (bench/minimal_proxy.py), both in front of the same upstream.
The proxy's added latency is then reported as a ratio to theirs."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from common import HOST, PY
from processes import debian_tool, spawn
from servers import Proxy, Upstream, free_port

_NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream kalshi {{ server {host}:{upstream_port}; keepalive 32; }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://kalshi;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx, installed from Debian's packages when missing and apt-get is here (as root)."""
    return debian_tool("nginx", "nginx-light", Path("/usr/sbin/nginx"))


def start_nginx(tmp: Path, upstream: Upstream) -> Proxy | None:
    """nginx in front of `upstream`, with its own prefix in `tmp`; None if not available."""
    binary = nginx_binary()
    if binary is None:
        return None
    prefix = tmp / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(tmp=prefix, host=HOST, upstream_port=upstream.port, port=port)
    )
    proc = spawn([binary, "-p", str(prefix), "-c", str(conf)], log=prefix / "out.log")
    return _ready(Proxy(proc, port, prefix / "out.log"))


def start_minimal(tmp: Path, upstream: Upstream) -> Proxy | None:
    """bench/minimal_proxy.py in front of `upstream`."""
    port = free_port()
    script = Path(__file__).with_name("minimal_proxy.py")
    log = tmp / "minimal-proxy.log"
    proc = spawn([PY, str(script), str(port), upstream.url], log=log)
    return _ready(Proxy(proc, port, log))


def _ready(proxy: Proxy) -> Proxy | None:
    """The anchor once it forwards a call (the upstream answers /trade-api/v2/ calls)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proxy.proc.poll() is not None:
            return None
        try:
            probe = f"{proxy.url}/trade-api/v2/portfolio/balance"
            with urllib.request.urlopen(probe, timeout=2):  # noqa: S310 - loopback http only
                return proxy
        except OSError:
            time.sleep(0.1)
    return None
