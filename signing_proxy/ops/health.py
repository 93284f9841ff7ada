"""Upstream health: key acceptance, recent answers, clock offset, and 401 diagnosis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from signing_proxy.kalshi.signer import Signer
from signing_proxy.ops.logging import get_logger
from signing_proxy.proxy.live import Live
from signing_proxy.proxy.upstream import UpstreamSessions, classify

PROBE_PATH = "/trade-api/v2/exchange/status"
# An answer this recent means the upstream is reachable; older, and /readyz probes again.
FRESH_FOR = 30.0
CLOCK_WARN_SECONDS = 2.0
# At most one 401 diagnosis event in this many seconds; the rest are counted.
DIAGNOSIS_EVERY = 30.0
_PROBE_TIMEOUT = 5.0
# What a Kalshi error code looks like (NOT_FOUND, header_timestamp_expired).
_PLAIN_CODE = re.compile(r"[A-Za-z0-9_]{1,64}")

_HINTS = {
    "INCORRECT_API_KEY_SIGNATURE": (
        "the signature did not verify: the private key does not belong to this key id, "
        "or a demo key is used on production (or the reverse)"
    ),
    "NOT_FOUND": "Kalshi does not know this key id in this environment (demo and production "
    "keys are separate)",
    "header_timestamp_expired": "the timestamp was outside Kalshi's window: check the clock",
    "signature_is_missing_from_headers": "the signature header did not arrive",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe of the upstream."""

    ok: bool
    reason: str


def clock_offset(date_header: str | None, sent: float, received: float) -> float | None:
    """Upstream clock minus ours, in seconds, from a Date header (1 s resolution)."""
    if not date_header:
        return None
    try:
        upstream = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    # Date is truncated to the second: compare with the middle of our request, plus 0.5 s.
    return round(upstream + 0.5 - (sent + received) / 2, 3)


class UpstreamMonitor:
    """Tracks whether the upstream answers and whether our clock agrees with its."""

    def __init__(self, live: Live, sessions: UpstreamSessions) -> None:
        self._live = live
        self._sessions = sessions
        self.last_answer: float | None = None
        self.offset: float | None = None
        # The signer whose key a probe saw accepted; None until then, after any 401 and after
        # a failed probe, so readiness probes before it says ready. Compared with the live
        # signer, so a key reload needs a new acceptance too.
        self._accepted: Signer | None = None
        self._probe: asyncio.Task[ProbeResult] | None = None
        self._last_diagnosis = -DIAGNOSIS_EVERY
        self._suppressed = 0
        self._log = get_logger()

    def saw_answer(self) -> None:
        """Record that the upstream just answered a request."""
        self.last_answer = time.monotonic()

    def fresh(self) -> bool:
        """Whether the upstream answered within FRESH_FOR seconds."""
        return self.last_answer is not None and time.monotonic() - self.last_answer < FRESH_FOR

    def key_refused(self) -> None:
        """Record a 401 from the upstream: readiness probes again before it says ready."""
        self._accepted = None

    async def readiness(self) -> ProbeResult:
        """Ready when the upstream accepted this key and answered recently; else probe (shared)."""
        if self._accepted is self._live.current.signer and self.fresh():
            return ProbeResult(True, "upstream accepts the key and answered recently")
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self.probe())
        return await asyncio.shield(self._probe)

    async def probe(self) -> ProbeResult:
        """A signed GET of exchange/status: reachability, key acceptance and clock offset."""
        snapshot = self._live.current
        origin = snapshot.config.upstream.rest_url
        headers = snapshot.signer.headers("GET", PROBE_PATH)
        sent = time.time()
        try:
            async with (
                asyncio.timeout(_PROBE_TIMEOUT),
                self._sessions.rest.get(
                    URL(origin + PROBE_PATH, encoded=True), headers=headers, allow_redirects=False
                ) as resp,
            ):
                body = await resp.content.read(4096)
                received = time.time()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._accepted = None
            reason = classify(exc, _PROBE_TIMEOUT).message
            return ProbeResult(False, f"upstream not reachable: {reason}")
        self.saw_answer()
        self.check_clock(resp.headers.get("Date"), sent, received)
        if resp.status == 401:
            self.key_refused()
            self.diagnose_401(
                body,
                f"{headers['KALSHI-ACCESS-TIMESTAMP']}GET{PROBE_PATH}",
                resp.headers.get("Date"),
                sent,
                received,
            )
            code = kalshi_error_code(body)
            # /readyz shows the reason to anyone: only a plain code travels, never other text.
            shown = code if code and _PLAIN_CODE.fullmatch(code) else "without a known code"
            reason = f"upstream rejects the key (401 {shown}): {_hint(code)}"
            return ProbeResult(False, reason)
        # 2xx, or a 4xx other than 401 (Kalshi checks the signature first): key accepted. A
        # redirect or 5xx says nothing about the key.
        if not (200 <= resp.status < 300 or 400 <= resp.status < 500):
            self._accepted = None
            return ProbeResult(False, f"upstream answered {resp.status}")
        self._accepted = snapshot.signer
        return ProbeResult(True, f"upstream accepts the key (answered {resp.status})")

    def check_clock(self, date_header: str | None, sent: float, received: float) -> None:
        """Remember the clock offset and warn when it exceeds CLOCK_WARN_SECONDS."""
        offset = clock_offset(date_header, sent, received)
        if offset is None:
            return
        self.offset = offset
        if abs(offset) > CLOCK_WARN_SECONDS:
            self._log.warning(
                "clock_offset",
                offset_s=offset,
                host=self._live.current.config.upstream.rest_url,
                message="the local clock differs from the upstream's; Kalshi rejects "
                "timestamps a few seconds off (sync the clock, e.g. with NTP)",
            )

    def diagnose_401(
        self,
        body: bytes,
        signed_message: str,
        date_header: str | None,
        sent: float,
        received: float,
    ) -> None:
        """Log why the upstream may have refused the signature (rate-limited)."""
        now = time.monotonic()
        if now - self._last_diagnosis < DIAGNOSIS_EVERY:
            self._suppressed += 1
            return
        self._last_diagnosis = now
        snapshot = self._live.current
        code = kalshi_error_code(body)
        self._log.error(
            "upstream_401",
            kalshi_code=code,
            hint=_hint(code),
            key_id=snapshot.signer.key_id,
            fingerprint=snapshot.signer.info.fingerprint,
            signed_message=signed_message,
            environment=snapshot.config.environment,
            host=snapshot.config.upstream.rest_url,
            clock_offset_s=clock_offset(date_header, sent, received),
            suppressed_since_last=self._suppressed,
        )
        self._suppressed = 0

    async def run(self, interval: float) -> None:
        """Probe at start and every `interval` seconds, so clock drift and key trouble show."""
        while True:
            result = await self.probe()
            if not result.ok:
                self._log.warning("upstream_probe_failed", reason=result.reason)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Stop a probe in flight."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


def _hint(code: str | None) -> str:
    return _HINTS.get(code or "", "see Kalshi's error code")


def kalshi_error_code(body: bytes) -> str | None:
    """Kalshi's `details` or `code` from an error body, when it has one."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict):
        value = error.get("details") or error.get("code")
        return str(value) if value else None
    return None
