"""The operator's side of the admin API: `signing-proxy halt`, `resume`, `status` and
`journal`, talking to the running proxy found from the configuration's listen address."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from signing_proxy.config import Config
from signing_proxy.config.journal import resolve
from signing_proxy.errors import ConfigError
from signing_proxy.gateway import journal

_TIMEOUT: Final = 60.0  # a halt that cancels thousands of orders takes a while
_RELATIVE: Final = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_TABLE: Final = (
    ("time", 23), ("client", 12), ("kind", 12), ("decision", 9), ("state", 7),
    ("status", 6), ("ticker", 22), ("side", 4), ("count", 8), ("price", 6),
    ("notional", 9), ("order_id", 36), ("error", 30),
)  # fmt: skip


class AdminCallFailed(Exception):
    """The proxy could not be reached, or refused the call: the message says which."""


def base_url(config: Config, url: str | None) -> str:
    """The proxy's address: `url` if given, else the configuration's listen address."""
    if url:
        return url.rstrip("/")
    host = config.listen.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.listen.port}"


def admin_token(config: Config) -> str | None:
    """The first admin token of the configuration (None when no tokens are configured)."""
    if not config.access.tokens:
        return None
    for token in config.access.tokens:
        if token.admin:
            return token.token
    raise ConfigError("access.tokens: no token has admin: true, so the admin API is closed")


def call(config: Config, url: str | None, method: str, path: str, body: Any = None) -> Any:
    """One admin call; its JSON answer, or AdminCallFailed with the proxy's message."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's proxy
        f"{base_url(config, url)}/proxy/v1/{path}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    token = admin_token(config)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    # Straight to the proxy, never through an HTTP proxy from the environment
    # (http_proxy): that would hand it the admin token, and the halt would not arrive.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=_TIMEOUT) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        raise AdminCallFailed(_message(refused.code, refused.read())) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminCallFailed(
            f"cannot reach the proxy at {base_url(config, url)}: {reason}"
        ) from None


def _message(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"{status} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"the proxy answered {status}"


def since_value(text: str | None, now: datetime | None = None) -> str | None:
    """--since: an ISO time or date (UTC), or a span back from now such as 15m, 2h, 1d."""
    if text is None:
        return None
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return journal.iso((now or datetime.now(UTC)) - span)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since: must be an ISO time such as 2026-11-30T09:00 or a span such as "
            f"15m, 2h, 1d; got {text!r}"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return journal.iso(moment)


def journal_rows(config: Config, since: str | None, client: str | None, limit: int) -> list[Any]:
    """The journal's rows from the file the configuration names."""
    path = resolve(config.journal.path, config.environment)
    if path is None:
        raise ConfigError("journal.path: is null, so there is no journal to read")
    if not Path(path).is_file():
        raise ConfigError(f"journal.path: no journal at {path} (has the proxy run yet?)")
    return journal.read(path, since=since, client=client, limit=limit)


def print_rows(rows: list[Any], as_json: bool) -> None:
    """JSON lines, or a table a person can read."""
    if as_json:
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
        return
    print("  ".join(name.ljust(width) for name, width in _TABLE).rstrip())
    for row in rows:
        cells = ("" if row[name] is None else str(row[name]) for name, _ in _TABLE)
        print("  ".join(c[:w].ljust(w) for c, (_, w) in zip(cells, _TABLE, strict=True)).rstrip())
    print(f"({len(rows)} rows)", file=sys.stderr)
