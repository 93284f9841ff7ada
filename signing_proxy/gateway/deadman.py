"""The dead-man's switch: a client with `heartbeat: N` that sends nothing for N seconds has
the resting orders it placed cancelled and its order entry halted until it calls again.

FIX's cancel-on-disconnect, for REST bots: a bot that hangs, loses its network or dies
leaves no orders behind for longer than it said it could be silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class Heartbeats:
    """When each heartbeat client last called, and which switches have fired."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._intervals: Mapping[str, float] = {}
        self._last: dict[str, float] = {}
        self._fired: set[str] = set()

    def configure(self, intervals: Mapping[str, float], armed: set[str] | None = None) -> None:
        """The switches of this generation, by client; `armed` ones count from now."""
        self._intervals = dict(intervals)
        now = self._clock()
        for client in armed or ():
            if client in self._intervals:
                self._last.setdefault(client, now)
        for client in list(self._last):
            if client not in self._intervals:
                del self._last[client]  # its token lost its heartbeat, or was removed

    def seen(self, client: str) -> bool:
        """Note a call from `client`; True when its switch had fired (this call re-arms it)."""
        if client not in self._intervals:
            return False
        self._last[client] = self._clock()
        if client in self._fired:
            self._fired.discard(client)
            return True
        return False

    def due(self) -> list[str]:
        """Clients silent for longer than their heartbeat whose switch has not fired yet."""
        now = self._clock()
        due = [
            client
            for client, last in self._last.items()
            if client not in self._fired and now - last > self._intervals[client]
        ]
        self._fired.update(due)
        return due

    def silence(self) -> dict[str, float]:
        """Seconds since each armed client's last call."""
        now = self._clock()
        return {client: round(now - last, 3) for client, last in self._last.items()}

    def interval(self, client: str) -> float | None:
        """`client`'s heartbeat in seconds, if it has one."""
        return self._intervals.get(client)
