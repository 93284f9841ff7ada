"""`signing-proxy check [--online]`: what the configuration and key are, and, online, whether
Kalshi accepts the key, which host answered, how far the clock is off and the account's
rate-limit tier.

Online, three signed GETs at most: exchange/status (reachable? the clock, from its Date
header), portfolio/balance (is the key accepted?), account/limits (the tier; only once the
key is accepted). The exit code says which step failed (EXIT_* below; `check --help`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from signing_proxy import __version__
from signing_proxy.config import Config
from signing_proxy.config.network import DEFAULT_REST_URLS
from signing_proxy.kalshi.costs import LIMITS_PATH
from signing_proxy.kalshi.signer import Signer
from signing_proxy.ops.health import CLOCK_WARN_SECONDS, PROBE_PATH, clock_offset
from signing_proxy.proxy.upstream import classify, open_session

EXIT_OK = 0
# Kalshi answered, but not as hoped: a 5xx, a 429, an answer that is not Kalshi's.
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3  # no answer at all: DNS, connection refused, TLS, timeout
EXIT_KEY_REJECTED = 4  # Kalshi answered 401 (or 403) to the signed balance call

EXIT_CODES_HELP = (
    "exit status: 0 all good; 1 Kalshi answered with another error (5xx, 429); "
    f"2 configuration error; {EXIT_UNREACHABLE} (--online) upstream unreachable (DNS, "
    f"connection refused, TLS, timeout); {EXIT_KEY_REJECTED} (--online) key rejected by Kalshi"
)

BALANCE_PATH = "/trade-api/v2/portfolio/balance"
# Kalshi's hosts and the environment each belongs to (API_FACTS.md, "Hosts"): the
# recommended ones, and the older names that are still served.
KALSHI_HOSTS: dict[str, str] = {
    **{urlsplit(url).hostname or "": env for env, url in DEFAULT_REST_URLS.items()},
    "api.elections.kalshi.com": "production",
    "demo-api.kalshi.co": "demo",
}
_SHOWN_TEXT = 200  # at most this much of Kalshi's own error text is printed
_LABEL = 13  # width of the label column, as `check` prints it


@dataclass(slots=True)
class Report:
    """What `check` prints: (label, text) lines, and the exit code with its one-line reason."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    exit_code: int = EXIT_OK
    failure: str | None = None

    def add(self, label: str, text: str) -> None:
        """One line of the report."""
        self.lines.append((label, text))

    def fail(self, exit_code: int, failure: str) -> Report:
        """Mark the check failed with `exit_code`; returns the report."""
        self.exit_code, self.failure = exit_code, failure
        return self

    def render(self) -> str:
        """The lines, label column aligned."""
        return "".join(f"{label + ':':<{_LABEL}}{text}\n" for label, text in self.lines)


def offline_facts(config: Config, signer: Signer) -> Report:
    """The key and where it goes, as read from the configuration (nothing is sent)."""
    report = Report()
    info = signer.info
    report.add("key", f"{info.key_type} {info.key_size} bits")
    report.add("fingerprint", info.fingerprint)
    report.add("key id", signer.key_id)
    report.add("environment", config.environment)
    report.add("rest url", config.upstream.rest_url)
    report.add("ws url", config.upstream.ws_url)
    report.add("listen", f"{config.listen.host}:{config.listen.port}")
    return report


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    date: str | None
    body: bytes
    sent: float
    received: float


class _Unreachable(Exception):
    """No answer from the upstream; the message says why, in words."""


def check_online(config: Config, signer: Signer, report: Report) -> Report:
    """Make the signed calls and add what they showed to `report` (its exit code set)."""
    return asyncio.run(_check(config, signer, report))


async def _check(config: Config, signer: Signer, report: Report) -> Report:
    upstream = config.upstream
    timeout = aiohttp.ClientTimeout(total=upstream.timeout, sock_connect=upstream.connect_timeout)
    report.add("upstream", describe_host(upstream.rest_url, config.environment))
    async with open_session(4, timeout) as session:
        try:
            status = await _get(session, config, signer, PROBE_PATH)
            report.add("reachable", f"yes (GET {PROBE_PATH} answered {status.status})")
            offset = clock_offset(status.date, status.sent, status.received)
            report.add("clock", clock_text(offset))
            exchange = _exchange_state(status)
            if exchange:
                report.add("exchange", exchange)
            balance = await _get(session, config, signer, BALANCE_PATH)
            if not _key_verdict(report, balance, config, signer, offset):
                return report
            limits = await _get(session, config, signer, LIMITS_PATH)
        except _Unreachable as exc:
            report.add("reachable", f"NO: {exc}")
            return report.fail(EXIT_UNREACHABLE, f"cannot reach {upstream.rest_url}: {exc}")
    report.add("rate tier", tier_text(limits))
    return report


async def _get(session: aiohttp.ClientSession, config: Config, signer: Signer, path: str) -> _Reply:
    """One signed GET of `path`, read whole (Kalshi's answers here are small)."""
    headers = {**signer.headers("GET", path), "User-Agent": f"signing-proxy/{__version__} check"}
    url = URL(config.upstream.rest_url + path, encoded=True)
    sent = time.time()
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            received = time.time()
            return _Reply(response.status, response.headers.get("Date"), body, sent, received)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Unreachable(classify(exc, config.upstream.timeout).message) from None


def describe_host(rest_url: str, environment: str) -> str:
    """The upstream origin and whose it is: Kalshi's demo, production, or another host."""
    owner = KALSHI_HOSTS.get(urlsplit(rest_url).hostname or "")
    if owner is None:
        return f"{rest_url} (not a Kalshi host: a local or test upstream)"
    if owner != environment:
        return f"{rest_url} (Kalshi {owner}, although the environment is {environment})"
    return f"{rest_url} (Kalshi {owner})"


def clock_text(offset: float | None) -> str:
    """The clock offset in words: which way, how far, and whether Kalshi would mind."""
    if offset is None:
        return "unknown (the answer had no Date header)"
    measured = f"{offset:+.1f} s (this machine is {_apart(offset)} the upstream's clock; "
    measured += "the Date header has 1 s resolution)"
    if abs(offset) > CLOCK_WARN_SECONDS:
        return f"{measured}; TOO FAR: Kalshi refuses timestamps a few seconds off, sync the clock"
    return measured


def _apart(offset: float) -> str:
    """'1.5 s behind' or '2.0 s ahead of', for the upstream's clock minus ours."""
    return f"{abs(offset):.1f} s {'behind' if offset > 0 else 'ahead of'}"


def _exchange_state(reply: _Reply) -> str | None:
    body = _json(reply.body)
    if reply.status != 200 or not isinstance(body, dict) or "exchange_active" not in body:
        return None
    active = "active" if body.get("exchange_active") else "NOT active"
    trading = "trading active" if body.get("trading_active") else "trading paused"
    return f"{active}, {trading}"


def _key_verdict(
    report: Report, reply: _Reply, config: Config, signer: Signer, offset: float | None
) -> bool:
    """Add the key's verdict from the balance call; False (report failed) when not accepted."""
    said = kalshi_said(reply)
    if 200 <= reply.status < 300:
        report.add("key check", f"accepted (GET {BALANCE_PATH} answered {reply.status})")
        return True
    if reply.status in (401, 403):
        code = _error_field(_json(reply.body), "details") or _error_field(_json(reply.body), "code")
        report.add("key check", f"REJECTED: Kalshi answered {reply.status} {said}")
        cause = likely_cause(code, reply.status, config, signer.key_id, offset)
        report.add("cause", cause)
        report.fail(EXIT_KEY_REJECTED, f"the upstream rejected the key: {reply.status} {said}")
        return False
    report.add("key check", f"unknown: GET {BALANCE_PATH} answered {reply.status} {said}")
    report.fail(EXIT_FAILED, f"GET {BALANCE_PATH} answered {reply.status} {said}")
    return False


def likely_cause(
    code: str | None, status: int, config: Config, key_id: str, offset: float | None
) -> str:
    """What most likely made Kalshi refuse the key, for its error `code`."""
    env = KALSHI_HOSTS.get(urlsplit(config.upstream.rest_url).hostname or "")
    other = {"demo": "production", "production": "demo"}.get(env or "")
    if status == 403:
        return "the key lacks the scope this call needs (a key made without 'read')"
    if code == "header_timestamp_expired":
        if offset is not None and abs(offset) > CLOCK_WARN_SECONDS:
            return f"the clock: this machine is {_apart(offset)} Kalshi's; sync it (NTP)"
        return "the clock: the timestamp was outside Kalshi's window; sync the clock (NTP)"
    if code == "NOT_FOUND":
        where = f"Kalshi's {env}" if env else "the upstream"
        switch = f"; a {other} key works only on {other} (--env {other})" if other else ""
        return (
            f"{where} does not know key id {key_id}: a typo in the key id, a deleted key, "
            f"or a key of the other environment{switch}"
        )
    if code == "INCORRECT_API_KEY_SIGNATURE":
        return (
            f"the private key is not the one made with key id {key_id}: another key's PEM, "
            "or a PEM changed when pasted (check KALSHI_PRIVATE_KEY_FILE / KALSHI_PRIVATE_KEY)"
        )
    if code == "signature_is_missing_from_headers":
        return "the signature headers did not arrive: something on the way removed them"
    return "see Kalshi's error code above"


def kalshi_said(reply: _Reply) -> str:
    """Kalshi's error code, message and details as one short printable line."""
    body = _json(reply.body)
    parts = [_error_field(body, name) for name in ("code", "message", "details")]
    said = " / ".join(part for part in parts if part)
    if not said:
        return "(no Kalshi error in the answer)"
    clean = "".join(c if c.isprintable() else "?" for c in said)
    return f"({clean[:_SHOWN_TEXT]})"


def tier_text(reply: _Reply) -> str:
    """The account's rate-limit tier and buckets from GET /account/limits."""
    body = _json(reply.body)
    if reply.status != 200 or not isinstance(body, dict):
        return f"unknown (GET {LIMITS_PATH} answered {reply.status})"
    tier = str(body.get("usage_tier") or "unknown")[:40]
    rates = []
    for bucket in ("read", "write"):
        limits = body.get(bucket)
        rate = limits.get("refill_rate") if isinstance(limits, dict) else None
        if isinstance(rate, int | float) and not isinstance(rate, bool):
            rates.append(f"{bucket} {rate:g} tokens/s")
    return f"{tier} ({', '.join(rates)})" if rates else tier


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _error_field(body: Any, name: str) -> str | None:
    """A field of Kalshi's error: nested {"error": {...}}, or flat."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    value = error.get(name) if isinstance(error, dict) else None
    return str(value) if value not in (None, "") else None
