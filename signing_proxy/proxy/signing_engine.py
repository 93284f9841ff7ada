"""Signatures off the critical path: pre-signed hot routes, and adaptive inline/thread signing.

Kalshi signs only timestamp + METHOD + path and accepts timestamps a few seconds old, so
for fixed routes such as POST /trade-api/v2/portfolio/events/orders a signature can be made
before the order arrives. Each pre-made signature is used at most once and thrown away
when older than `max_age` (well inside Kalshi's window), so order entry pays no signing
latency. Read routes a client polls (balance, positions, one market) are learned and
pre-signed the same way while they stay hot. Other calls are signed inline when the
proxy is idle (a thread hop would only add latency) and on a worker thread under load
(cryptography releases the GIL, so the event loop keeps relaying while a core signs).

The pools are kept full by a thread of their own, which puts each new signature in its
pool itself: the event loop is not woken for it. A pool that a burst finds empty is
deepened (up to MAX_PRESIGN_DEPTH), so that under steady load calls find their signature ready
instead of waiting for one, and made shallow again once the load has passed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from signing_proxy.config.signing import MAX_PRESIGN_DEPTH
from signing_proxy.kalshi.signer import Signer

# Calls in flight at or below which signing stays on the event loop.
INLINE_BELOW = 2
# A read route asked for this often within LEARN_WINDOW seconds is pre-signed from then on,
# and forgotten after FORGET_AFTER seconds without a call.
LEARN_HITS = 3
LEARN_WINDOW = 1.0
FORGET_AFTER = 5.0
_LEARNABLE_METHODS = frozenset({"GET", "HEAD"})
Route = tuple[str, str]


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
        routes: tuple[Route, ...] = (),
        max_age: float = 1.0,
        depth: int = 2,
        threads: int = 2,
        max_learned: int = 0,
    ) -> None:
        self._current_signer = current_signer
        self._max_age = max_age
        # presign_depth has no upper bound of its own: a pool never grows beyond the maximum
        # (nor does a miss's doubling leave it shallower than the configured depth).
        self._depth = min(depth, MAX_PRESIGN_DEPTH)
        self._pools: dict[Route, deque[_Presigned]] = {r: deque() for r in routes}
        # A deepened route's depth, and when a take last found its pool empty.
        self._depths: dict[Route, int] = {}
        self._last_miss: dict[Route, float] = {}
        # Learned hot read routes: route -> time of its last call.
        self._max_learned = max_learned
        self._learned: dict[Route, float] = {}
        self._hits: dict[Route, tuple[float, int]] = {}
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="signing")
        # The pools are shared with the refill threads: every change to them is made under
        # this lock (held for a few list operations, never while signing).
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # A signature was taken: the pool is refilled when the call that took it has its
        # answer (call_ended), not while it is in flight, when the background signature
        # would take a core from the answer's way (measured: about 0.1 ms of an order's p50
        # on two shared cores). The refill threads' own timer refills it in any case; a
        # take that finds the pool empty wakes them at once.
        self._refill_due = False
        # Threads that keep the pools full, each signing for the route next in turn.
        self._refillers = threads
        self._threads: list[threading.Thread] = []
        self._signing: dict[Route, int] = {}  # signatures being made, per route
        self._turn = 0
        self._stopping = False
        self.in_flight = 0
        self.presigned_used = 0
        self.presigned_discarded = 0

    def take_presigned(self, method: str, path: str) -> dict[str, str] | None:
        """A fresh, never-used signature for a hot route, or None."""
        route = (method, path)
        pool = self._pools.get(route)
        if pool is None:
            return None
        now = time.monotonic()
        signer = self._current_signer()
        oldest_allowed = now - self._max_age
        with self._lock:
            if self._pools.get(route) is not pool:
                # Forgotten by a refill thread since the get above (its signatures counted
                # as discarded): it must leave no entry behind, or the tables would grow.
                return None
            if route in self._learned:
                self._learned[route] = now
            while pool:
                entry = pool.pop()  # newest first: the most time left inside Kalshi's window
                if entry.signer is signer and entry.made >= oldest_allowed:
                    self.presigned_used += 1
                    self._refill_due = True
                    return entry.headers
                self.presigned_discarded += 1
            # Empty: calls come faster than the pool was deep enough for.
            self._depths[route] = min(MAX_PRESIGN_DEPTH, 2 * self._depths.get(route, self._depth))
            self._last_miss[route] = now
        self._wake.set()
        return None

    def call_ended(self) -> None:
        """A call has its answer: refill what it took once that answer is on its way."""
        if self._refill_due:
            self._refill_due = False
            # Woken after this loop turn, in which aiohttp writes the answer: a refill thread
            # woken at once took the other core while the client was being woken for the
            # answer (measured: about 0.1 ms of an order's p50, alternating rounds).
            asyncio.get_running_loop().call_soon(self._wake.set)

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

    def _count_hit(self, route: Route) -> None:
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
            with self._lock:
                self._learned[route] = now
                self._pools[route] = deque()
            self._wake.set()
            self.start()

    def _forget_idle(self, now: float) -> None:
        """Drop learned routes not called for FORGET_AFTER seconds (the lock held)."""
        for route, last in list(self._learned.items()):
            if now - last > FORGET_AFTER:
                del self._learned[route]
                self._depths.pop(route, None)
                self._last_miss.pop(route, None)
                self.presigned_discarded += len(self._pools.pop(route, ()))

    def start(self) -> None:
        """Begin keeping the pre-signed pools full (a no-op without hot routes)."""
        if self._pools and not self._threads and not self._stopping:
            self._wake.set()  # fill them now
            for n in range(self._refillers):
                thread = threading.Thread(
                    target=self._refill_forever, name=f"presigning-{n}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    async def close(self) -> None:
        """Stop refilling and release the worker threads."""
        with self._lock:  # see _refill_forever: a refill thread cannot clear this wake-up
            self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        for thread in self._threads:
            # At most the signature it is making: well under a millisecond.
            await loop.run_in_executor(None, thread.join)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _refill_forever(self) -> None:
        """A refill thread: top the pools up when woken, and every max_age / 2 anyway."""
        while True:
            self._wake.wait(self._max_age / 2)
            with self._lock:
                # Checked and cleared under the lock close() sets _stopping under: a thread
                # clearing close()'s wake-up would leave another, between its check and its
                # wait, asleep for max_age / 2 (close() waiting for it).
                if self._stopping:
                    return
                self._wake.clear()
            self._refill()

    def _refill(self) -> None:
        """Sign until every pool is as deep as its route needs, the routes in turn (a busy
        read route never starves order entry)."""
        signer = self._current_signer()
        with self._lock:
            self._forget_idle(time.monotonic())
        while not self._stopping:
            if self._current_signer() is not signer:
                self._wake.set()  # the key was replaced: start again with the new one
                return
            route = self._claim(signer)
            if route is None:
                return
            # Aged from before its timestamp is taken: a thread held up after signing (the
            # GIL, the lock, a busy core) must not make an old signature look fresh.
            made = time.monotonic()
            headers = signer.headers(*route)
            with self._lock:
                # Only routes being signed are counted: a forgotten one leaves no entry.
                if self._signing[route] == 1:
                    del self._signing[route]
                else:
                    self._signing[route] -= 1
                pool = self._pools.get(route)
                if pool is not None:  # not forgotten meanwhile
                    pool.append(_Presigned(signer, made, headers))

    def _claim(self, signer: Signer) -> Route | None:
        """The next route in turn whose pool needs a signature, counted as being signed."""
        with self._lock:
            routes = list(self._pools)
            for offset in range(len(routes)):
                route = routes[(self._turn + offset) % len(routes)]
                if self._wanted(route, self._pools[route], signer):
                    self._turn = (self._turn + offset + 1) % len(routes)
                    self._signing[route] = self._signing.get(route, 0) + 1
                    return route
        return None

    def _wanted(self, route: Route, pool: deque[_Presigned], signer: Signer) -> bool:
        """Whether `route`'s pool needs another signature (the lock held): it is below its
        depth, or its newest is half its life old; unusable ones are dropped first."""
        now = time.monotonic()
        while pool and (pool[0].made < now - self._max_age or pool[0].signer is not signer):
            pool.popleft()
            self.presigned_discarded += 1
        depth = self._depths.get(route, self._depth)
        # Refresh when the newest signature is half its life old, so one is always young.
        refresh_after = self._max_age / 2
        if depth > self._depth and now - self._last_miss.get(route, now) > refresh_after:
            # No empty pool for a while: half as deep, one step per refresh.
            depth = self._depths[route] = max(self._depth, depth // 2)
            self._last_miss[route] = now
        while len(pool) > depth:
            pool.popleft()
            self.presigned_discarded += 1
        signing = self._signing.get(route, 0)
        if len(pool) + signing < depth:
            return True
        return not signing and (not pool or pool[-1].made < now - refresh_after)
