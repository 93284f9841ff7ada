"""Client-side token buckets that mirror Kalshi's, so clients wait here instead of seeing a 429."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from signing_proxy.config.rate_limit import (
    DEFAULT_COST,
    READ,
    WRITE,
    CostRule,
    RateLimitConfig,
    bucket_of,
)
from signing_proxy.kalshi.costs import BUILTIN_COSTS, AccountLimits

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


# Float refills never land exactly on a cost: this many tokens short still counts as enough,
# and a wait this far past a whole second still rounds down to it for Retry-After.
_EPSILON = 1e-9
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one acquire; `retry_after` (whole seconds) is set only when refused."""

    allowed: bool
    waited: float
    retry_after: int | None
    bucket: str
    cost: int


# --- cost table -------------------------------------------------------------------------


class _Node:
    """One path segment of the cost table, matched like Kalshi's router: static, :param, *rest."""

    __slots__ = ("catch_all", "cost", "param", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.catch_all: int | None = None
        self.cost: int | None = None

    def insert(self, segments: list[str], cost: int) -> None:
        node = self
        for index, segment in enumerate(segments):
            if segment.startswith("*"):
                if index != len(segments) - 1:
                    raise ValueError("a *catch-all segment must be the last one")
                node.catch_all = cost
                return
            if segment.startswith(":"):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        node.cost = cost

    def match(self, segments: list[str], index: int = 0) -> int | None:
        if index == len(segments):
            return self.cost
        segment = segments[index]
        # Most specific first, as routers do: a literal beats a parameter beats a catch-all,
        # and a dead end backs off to the next candidate (orders/batched vs orders/:order_id).
        child = self.static.get(segment)
        if child is not None and (found := child.match(segments, index + 1)) is not None:
            return found
        if (
            self.param is not None
            and segment
            and (found := self.param.match(segments, index + 1)) is not None
        ):
            return found
        return self.catch_all


def _segments(path: str) -> list[str]:
    path = path.partition("?")[0]
    # A trailing slash reaches the same handler (or a redirect to it); charge it the same.
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    parts = path.split("/")[1:]
    # Upstream routes on the decoded path; decode per segment so %2F stays inside one.
    return [unquote(p) if "%" in p else p for p in parts]


class CostTable:
    """Kalshi's costs with user rules on top, compiled once into per-method trees."""

    def __init__(
        self,
        overrides: tuple[CostRule, ...] = (),
        default: int = DEFAULT_COST,
        kalshi: tuple[CostRule, ...] = BUILTIN_COSTS,
    ) -> None:
        self.default = default
        merged: dict[tuple[str, str], int] = {}
        for rule in (*kalshi, *overrides):
            merged[(rule.method.upper(), rule.path)] = rule.cost  # a later (user) rule wins
        self.rules = tuple(CostRule(m, p, c) for (m, p), c in merged.items())
        self._trees: dict[str, _Node] = {}
        for rule in self.rules:
            self._trees.setdefault(rule.method, _Node()).insert(_segments(rule.path), rule.cost)
        # Order ids make the set of paths unbounded, so the memo is a bounded LRU.
        self._cache: OrderedDict[tuple[str, str], int] = OrderedDict()

    def cost(self, method: str, path: str) -> int:
        """The token cost of one request; `path` is the raw request path."""
        key = (method, path)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        method = method.upper()
        # HEAD is answered by the GET handler, so it costs what GET costs.
        tree = self._trees.get("GET" if method == "HEAD" else method)
        found = tree.match(_segments(path)) if tree is not None else None
        cost = self.default if found is None else found
        self._cache[key] = cost
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return cost


# --- limiter ----------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("cost", "turn")

    def __init__(self, cost: int, turn: asyncio.Future[None] | None) -> None:
        self.cost = cost
        # Resolved when this waiter reaches the head of the queue; None if it starts there.
        self.turn = turn


class _Bucket:
    """Tokens refilled continuously up to capacity, plus the FIFO queue of waiting requests."""

    __slots__ = ("capacity", "name", "queue", "queued_cost", "rate", "tokens", "updated")

    def __init__(self, name: str, rate: float, capacity: float, now: float) -> None:
        self.name = name
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now
        self.queue: deque[_Waiter] = deque()
        self.queued_cost = 0

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now


class RateLimiter:
    """Read and write token buckets with FIFO waiting, bounded by max_wait."""

    def __init__(
        self,
        config: RateLimitConfig,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if min(config.read_per_second, config.write_per_second) <= 0:
            raise ValueError("rates must be positive")
        self.config = config
        self.costs = CostTable(config.costs)
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._buckets = {
            READ: _Bucket(READ, config.read_per_second, config.read_capacity, now),
            WRITE: _Bucket(WRITE, config.write_per_second, config.write_capacity, now),
        }
        self.waits = 0
        self.rejections = 0
        # Kalshi's answer once read (None: the configured fallback is in use).
        self.learned: AccountLimits | None = None

    def cost_of(self, method: str, path: str, items: int = 1) -> tuple[str, int]:
        """The bucket a request draws from and the tokens it costs (`items` orders of a batch)."""
        return bucket_of(method), self.costs.cost(method, path) * items

    def adopt(self, kalshi: AccountLimits) -> None:
        """Use Kalshi's own buckets and costs; bucket settings the user wrote still win."""
        pinned = self.config.pinned
        for name, bucket in ((READ, kalshi.read), (WRITE, kalshi.write)):
            current = self._buckets[name]
            if f"{name}_per_second" not in pinned:
                current.rate = bucket.refill_rate
            if f"{name}_capacity" not in pinned:
                current.refill(self._clock())
                # A full bucket stays full, an emptied one stays as far from full.
                grown = bucket.capacity - current.capacity
                current.capacity = bucket.capacity
                current.tokens = max(0.0, min(current.tokens + grown, current.capacity))
        self.costs = CostTable(self.config.costs, kalshi.default_cost, kalshi.costs)
        self.learned = kalshi

    def rate(self, bucket: str) -> float:
        """Tokens per second the bucket refills at now."""
        return self._buckets[bucket].rate

    def levels(self) -> dict[str, float]:
        """Tokens in each bucket now (waiting requests have not taken theirs yet)."""
        now = self._clock()
        for bucket in self._buckets.values():
            bucket.refill(now)
        return {name: bucket.tokens for name, bucket in self._buckets.items()}

    def queued(self) -> dict[str, int]:
        """How many requests wait in each bucket's queue."""
        return {name: len(bucket.queue) for name, bucket in self._buckets.items()}

    async def acquire(self, method: str, path: str, items: int = 1) -> Decision:
        """Take a request's tokens, waiting in line up to max_wait; refuse at once if longer."""
        name, cost = self.cost_of(method, path, items)
        bucket = self._buckets[name]
        start = self._clock()
        bucket.refill(start)
        if cost > bucket.capacity:
            # It would wait forever; the hint is how long its cost takes to accrue.
            return self._refuse(name, cost, cost / bucket.rate)
        # Everyone already queued is served first, so they count against this request too.
        short = bucket.queued_cost + cost - bucket.tokens
        if not bucket.queue and short <= _EPSILON:
            bucket.tokens -= cost
            return Decision(True, 0.0, None, name, cost)
        wait = short / bucket.rate
        if wait > self.config.max_wait:
            # Refuse now rather than sleep max_wait and fail anyway.
            return self._refuse(name, cost, wait)
        turn = asyncio.get_running_loop().create_future() if bucket.queue else None
        waiter = _Waiter(cost, turn)
        bucket.queue.append(waiter)
        bucket.queued_cost += cost
        self.waits += 1
        try:
            await self._wait_turn(bucket, waiter)
        finally:
            # Granted or cancelled, the waiter leaves the queue; tokens are only taken on grant,
            # so a cancelled waiter leaks none, and the next in line gets its turn.
            self._leave(bucket, waiter)
        return Decision(True, self._clock() - start, None, name, cost)

    def _refuse(self, name: str, cost: int, wait: float) -> Decision:
        self.rejections += 1
        retry_after = max(1, math.ceil(wait - _EPSILON))
        return Decision(False, 0.0, retry_after, name, cost)

    async def _wait_turn(self, bucket: _Bucket, waiter: _Waiter) -> None:
        if waiter.turn is not None:
            await waiter.turn
        # At the head: only one sleeper per bucket, so the refill it waits for is its own.
        while True:
            bucket.refill(self._clock())
            short = waiter.cost - bucket.tokens
            if short <= _EPSILON:
                bucket.tokens -= waiter.cost
                return
            await self._sleep(short / bucket.rate)

    @staticmethod
    def _leave(bucket: _Bucket, waiter: _Waiter) -> None:
        bucket.queued_cost -= waiter.cost
        if bucket.queue[0] is waiter:
            bucket.queue.popleft()
            if bucket.queue:
                turn = bucket.queue[0].turn
                if turn is not None and not turn.done():
                    turn.set_result(None)
        else:
            bucket.queue.remove(waiter)
