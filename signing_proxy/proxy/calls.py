"""One call as the proxy sees it: the record its log event reports, and the calls the
proxy makes upstream on a client's behalf (a V1 translation)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDict

from signing_proxy.proxy.live import Snapshot


@dataclass(slots=True)
class CallRecord:
    """What the per-call log event reports; filled in as the call progresses."""

    request_id: str
    client: str | None = None
    started: float = field(default_factory=time.perf_counter)
    bytes_in: int = 0
    bytes_out: int = 0
    upstream_ms: float | None = None
    retries: int = 0
    rate_wait_ms: float | None = None
    error: str | None = None
    # An order call sent with a journal: its answer is read whole (not gzipped), so the
    # journal gets its ids.
    read_whole: bool = False
    # An order call: it goes on the order lane (journal or not), its small answer read whole.
    on_lane: bool = False


CALL_RECORD = web.RequestKey("call_record", CallRecord)
# Answers that never carry a body, whatever the Response object holds.
_BODILESS_STATUSES = frozenset({204, 304})


def count_own_answer(record: CallRecord, method: str, response: web.StreamResponse) -> None:
    """Count the body of an answer the proxy wrote whole itself (its errors, probes, admin
    API), which no relay counted; a streamed or relayed answer was counted as it went."""
    if record.bytes_out or not isinstance(response, web.Response):
        return
    body = response.body
    if isinstance(body, bytes) and method != "HEAD" and response.status not in _BODILESS_STATUSES:
        record.bytes_out = len(body)


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream answer read whole, for calls the proxy makes on a client's behalf."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


class CallFailed(Exception):
    """A call the proxy made itself got no answer; `response` is the client's error."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class UpstreamCaller(Protocol):
    """Makes one signed call, sent once and read whole (the Forwarder does)."""

    async def call(
        self, snapshot: Snapshot, record: CallRecord, method: str, raw_path: str, body: bytes | None
    ) -> Answer:
        """The upstream's answer; raises CallFailed when there is none."""
        ...
