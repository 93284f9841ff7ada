"""Request bodies: read whole within access.max_body_bytes, and within one budget of bytes
held in memory across all clients."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from signing_proxy.proxy.calls import CallRecord


class BodyTooLarge(Exception):
    """The client's body exceeds access.max_body_bytes."""


class BodyBudgetSpent(Exception):
    """Holding this body would pass limits.body_memory_bytes across all clients."""


class BodyBudget:
    """Bytes of request bodies held in memory at once, across all clients.

    Each body is read whole before it goes upstream; without this bound, max_connections
    clients each trickling a body just under max_body_bytes would hold both multiplied.
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int, hold: list[int]) -> None:
        """Reserve `size` bytes, noted in `hold` so they can be given back; or raise."""
        if self.held + size > self.limit:
            raise BodyBudgetSpent
        self.held += size
        hold[0] += size

    def give_back(self, hold: list[int]) -> None:
        """Return what `hold` reserved."""
        self.held -= hold[0]
        hold[0] = 0


async def request_body(
    request: web.Request, record: CallRecord, max_body: int, bodies: BodyBudget, hold: list[int]
) -> aiohttp.StreamReader | bytes | None:
    """The body: in memory (bounded by `max_body` and the shared budget), or the stream."""
    if not request.body_exists:
        return None
    length = request.content_length
    if length is not None:
        if max_body and length > max_body:
            raise BodyTooLarge
        record.bytes_in = length
        if not max_body:
            return request.content  # no limit set: it streams through as it arrives
        # Read whole before any upstream connection is taken, so a client that trickles
        # its body holds no connection that other calls (cancels) need; it gets 408.
        bodies.take(length, hold)
        return await request.content.readexactly(length)
    if not max_body:
        return request.content
    # Chunked: buffer up to the limit so an oversized body never reaches Kalshi at all.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge
        bodies.take(len(chunk), hold)
        chunks.append(chunk)
    record.bytes_in = size
    return b"".join(chunks)
