"""Signatures off the critical path: pre-signed hot routes, and adaptive inline/thread signing.

Kalshi signs only timestamp + METHOD + path and accepts timestamps a few seconds old, so
for fixed routes such as POST /trade-api/v2/portfolio/events/orders a signature can be made
before the order arrives. Each pre-made signature is used at most once and thrown away
when older than `max_age` (well inside Kalshi's window), so order entry pays no signing
latency. Read routes a client polls (balance, positions, one market) are learned and
pre-signed the same way while they stay hot. Other calls are signed inline when the
proxy is idle (a thread hop would only add latency) and on a worker thread under load
(cryptography releases the GIL, so the event loop keeps relaying while a core signs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from signing_proxy.kalshi.signer import Signer

# Calls in flight at or below which signing stays on the event loop.
INLINE_BELOW = 2
# A read route asked for this often within LEARN_WINDOW seconds is pre-signed from then on,
# and forgotten after FORGET_AFTER seconds without a call.
LEARN_HITS = 3
LEARN_WINDOW = 1.0
FORGET_AFTER = 5.0
_LEARNABLE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class _Presigned:
    signer: Signer
    made: float
    headers: dict[str, str]


class SigningEngine:
    """Hands out signed headers for (method, path), as cheaply as the moment allows."""

    def __init__(
        self,
        current_signer: Callable[[], Signer],
        routes: tuple[tuple[str, str], ...] = (),
        max_age: float = 1.0,
        depth: int = 2,
        threads: int = 2,
        max_learned: int = 0,
    ) -> None:
        self._current_signer = current_signer
        self._max_age = max_age
        self._depth = depth
        self._pools: dict[tuple[str, str], deque[_Presigned]] = {r: deque() for r in routes}
        # Learned hot read routes: route -> time of its last call.
        self._max_learned = max_learned
        self._learned: dict[tuple[str, str], float] = {}
        self._hits: dict[tuple[str, str], tuple[float, int]] = {}
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="signing")
        self._wake = asyncio.Event()
        # A signature was taken: the pool is refilled when the call that took it has its
        # answer (call_ended), not while it is in flight, when the background signature
        # would take a core from the answer's way (measured: about 0.1 ms of an order's p50
        # on two shared cores). The refill loop's own timer refills it in any case.
        self._refill_due = False
        self._task: asyncio.Task[None] | None = None
        self.in_flight = 0
        self.presigned_used = 0
        self.presigned_discarded = 0

    def take_presigned(self, method: str, path: str) -> dict[str, str] | None:
        """A fresh, never-used signature for a hot route, or None."""
        route = (method, path)
        pool = self._pools.get(route)
        if route in self._learned:
            self._learned[route] = time.monotonic()
        if not pool:
            return None
        signer = self._current_signer()
        oldest_allowed = time.monotonic() - self._max_age
        while pool:
            entry = pool.pop()  # newest first: the most time left inside Kalshi's window
            if entry.signer is signer and entry.made >= oldest_allowed:
                self.presigned_used += 1
                self._refill_due = True
                return entry.headers
            self.presigned_discarded += 1
        self._wake.set()
        return None

    def call_ended(self) -> None:
        """A call has its answer: refill what it took from the pre-signed pools now."""
        if self._refill_due:
            self._refill_due = False
            self._wake.set()

    async def headers(self, method: str, path: str) -> dict[str, str]:
        """Signed headers for `method` on `path`: pre-signed, inline, or on a thread."""
        presigned = self.take_presigned(method, path)
        if presigned is not None:
            return presigned
        if self._max_learned and method in _LEARNABLE_METHODS:
            self._count_hit((method, path))
        signer = self._current_signer()
        if self.in_flight <= INLINE_BELOW:
            return signer.headers(method, path)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, signer.headers, method, path)

    def _count_hit(self, route: tuple[str, str]) -> None:
        """Learn `route` as hot once it is asked for LEARN_HITS times within LEARN_WINDOW."""
        now = time.monotonic()
        since, hits = self._hits.get(route, (now, 0))
        if now - since > LEARN_WINDOW:
            since, hits = now, 0
        hits += 1
        if hits < LEARN_HITS:
            self._hits[route] = (since, hits)
            if len(self._hits) > 1024:  # bounded: unique paths (order ids) never pile up
                self._hits.clear()
            return
        self._hits.pop(route, None)
        if route not in self._pools and len(self._learned) < self._max_learned:
            self._learned[route] = now
            self._pools[route] = deque()
            self._wake.set()
            self.start()

    def _forget_idle(self, now: float) -> None:
        for route, last in list(self._learned.items()):
            if now - last > FORGET_AFTER:
                del self._learned[route]
                self.presigned_discarded += len(self._pools.pop(route, ()))

    def start(self) -> None:
        """Begin keeping the pre-signed pools full (a no-op without hot routes)."""
        if self._pools and self._task is None:
            self._task = asyncio.create_task(self._refill_forever())

    async def close(self) -> None:
        """Stop refilling and release the worker threads."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _refill_forever(self) -> None:
        loop = asyncio.get_running_loop()
        # Refresh when the newest signature is half its life old, so one is always young.
        refresh_after = self._max_age / 2
        while True:
            signer = self._current_signer()
            now = time.monotonic()
            self._forget_idle(now)
            for (method, path), pool in list(self._pools.items()):
                while pool and (pool[0].made < now - self._max_age or pool[0].signer is not signer):
                    pool.popleft()
                    self.presigned_discarded += 1
                stale = not pool or pool[-1].made < now - refresh_after
                while len(pool) < self._depth or stale:
                    headers = await loop.run_in_executor(
                        self._executor, signer.headers, method, path
                    )
                    pool.append(_Presigned(signer, time.monotonic(), headers))
                    if len(pool) > self._depth:
                        pool.popleft()
                    stale = False
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(refresh_after):
                    await self._wake.wait()
