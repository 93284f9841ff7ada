"""Order groups as the sandbox keeps them: a contracts limit over a rolling 15 s window.

When more contracts of the group's orders fill within the window than the limit allows,
the group is triggered: its resting orders are cancelled and it takes no new orders until
it is reset (docs.kalshi.com, getting_started/order_groups). The engine does the
cancelling (matching.py); this module holds the group, its window and its messages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from signing_proxy.sandbox.wire import JSON, fixed_point

# The rolling window over which a group's filled contracts are counted.
WINDOW_MS: Final = 15_000
# Kalshi's bounds on a group's contracts limit (1 to 1,000,000).
MAX_LIMIT: Final = Decimal(1_000_000)
# What an order_group_updates message may say happened (asyncapi.yaml).
GROUP_EVENTS: Final = ("created", "triggered", "reset", "deleted", "limit_updated")


@dataclass(slots=True)
class OrderGroup:
    """One group: its limit, the orders placed in it, the fills in its window, its state."""

    group_id: str
    subaccount: int
    contracts_limit: Decimal
    triggered: bool = False
    order_ids: list[str] = field(default_factory=list)
    window: deque[tuple[int, Decimal]] = field(default_factory=deque)  # (ms, contracts)

    def record(self, ms: int, count: Decimal) -> None:
        """Count `count` contracts filled at `ms` against the limit."""
        self.window.append((ms, count))

    def volume(self, now_ms: int) -> Decimal:
        """Contracts filled within the window ending at `now_ms`."""
        while self.window and self.window[0][0] <= now_ms - WINDOW_MS:
            self.window.popleft()
        return sum((count for _, count in self.window), Decimal(0))

    def over_limit(self, now_ms: int) -> bool:
        """Whether the window holds more contracts than the limit allows."""
        return self.volume(now_ms) > self.contracts_limit

    def reset(self) -> None:
        """Active again, the window emptied."""
        self.triggered = False
        self.window.clear()

    def summary(self) -> JSON:
        """Kalshi's OrderGroup (GET /portfolio/order_groups)."""
        return {
            "contracts_limit_fp": fixed_point(self.contracts_limit),
            "exchange_index": 0,
            "id": self.group_id,
            "is_auto_cancel_enabled": not self.triggered,
        }

    def detail(self) -> JSON:
        """Kalshi's GetOrderGroupResponse: the summary's fields and the group's order ids."""
        return {
            "contracts_limit_fp": fixed_point(self.contracts_limit),
            "exchange_index": 0,
            "is_auto_cancel_enabled": not self.triggered,
            "orders": list(self.order_ids),
        }


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A group was created, triggered, reset, deleted or given a new limit."""

    group_id: str
    event_type: str  # one of GROUP_EVENTS
    contracts_limit: Decimal
    ms: int

    def message(self) -> JSON:
        """order_group_updates' msg (asyncapi.yaml); the limit only on created and limit_updated."""
        msg: JSON = {"event_type": self.event_type, "order_group_id": self.group_id}
        if self.event_type in ("created", "limit_updated"):
            msg["contracts_limit_fp"] = fixed_point(self.contracts_limit)
        msg["ts_ms"] = self.ms
        return msg
