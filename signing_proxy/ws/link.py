"""One upstream WebSocket for the shared feed: commands with their replies, every other
message to the hub, and reconnects with backoff when Kalshi drops it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import aiohttp

from signing_proxy.kalshi import ws_protocol as protocol
from signing_proxy.ops.logging import get_logger

JSON = dict[str, Any]
Connect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]

# Seconds a command may wait for Kalshi's reply.
COMMAND_TIMEOUT: Final = 10.0
# Seconds a close waits for the other side's close frame before the connection is cut: a
# peer that floods, or has stopped reading, may never send it.
CLOSE_WAIT: Final = 2.0
_BACKOFF_FIRST: Final = 0.1
_BACKOFF_CAP: Final = 5.0
# A connection that lasted this long was a good one: the next drop starts the backoff anew.
# One Kalshi drops at once keeps doubling it, so a flapping upstream is not hammered.
_STABLE_AFTER: Final = 10.0


class LinkDown(Exception):
    """The upstream connection is not there (lost, or never opened)."""


class UpstreamLink:
    """The upstream connection: open it, send commands, read messages, come back after a drop."""

    def __init__(
        self,
        connect: Connect,
        on_message: Callable[[JSON], None],
        on_reconnected: Callable[[], Coroutine[Any, Any, None]],
        on_down: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._on_message = on_message
        self._on_reconnected = on_reconnected
        self._on_down = on_down
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[JSON]] = {}
        self._on_reply: dict[int, Callable[[JSON], None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._resubscribing: asyncio.Task[None] | None = None
        # Set while connected and resubscribed: clients' commands wait for it across a
        # reconnect instead of failing.
        self._ready = asyncio.Event()
        self._delay = _BACKOFF_FIRST
        self._since = 0.0
        self.connects = 0
        self.closing = False

    @property
    def up(self) -> bool:
        """Whether the connection is open now."""
        return self._ws is not None and not self._ws.closed

    def adopt(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Start with a connection already open (the first client's handshake made it, so
        that a refusal reached that client as Kalshi sent it); read it in the background."""
        self._ws = ws
        self.connects += 1
        self._since = time.monotonic()
        self._ready.set()
        self._task = asyncio.create_task(self._run())

    async def wait_ready(self) -> None:
        """Wait (at most a command's timeout) while the link reconnects and resubscribes,
        so a client's command in that window is served late rather than refused."""
        if self._ready.is_set() or self.closing:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._ready.wait()

    async def close(self) -> None:
        """Close for good: no reconnect."""
        self.closing = True
        self._ready.set()  # whoever waits for the link stops waiting: it will not come back
        self._fail_waiting()  # nobody will read their replies now
        if self._ws is not None:
            # Bounded: aiohttp's close reads on until the upstream's close frame, and an
            # upstream still sending (a flood) may not send it for minutes. Then it is cut.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT):
                    await self._ws.close(code=1000)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def command(
        self, cmd: str, params: JSON, on_reply: Callable[[JSON], None] | None = None
    ) -> JSON:
        """Send a command; Kalshi's reply (subscribed, ok, unsubscribed), or CommandError.

        `on_reply` sees the reply the moment it is read, before any later message is
        routed: a subscription's first snapshot follows its reply at once."""
        ws = self._ws
        if ws is None or ws.closed or self.closing:
            raise protocol.error(protocol.INTERNAL_ERROR)
        cmd_id = next(self._ids)
        reply: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._waiting[cmd_id] = reply
        if on_reply is not None:
            self._on_reply[cmd_id] = on_reply
        try:
            await ws.send_str(json.dumps({"id": cmd_id, "cmd": cmd, "params": params}))
            async with asyncio.timeout(COMMAND_TIMEOUT):
                answer = await reply
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            raise protocol.error(protocol.COMMAND_TIMEOUT) from None
        finally:
            self._waiting.pop(cmd_id, None)
            self._on_reply.pop(cmd_id, None)
        if answer.get("type") == "error":
            error = answer.get("msg") or {}
            extra = {k: str(v) for k, v in error.items() if k not in ("code", "msg")}
            raise protocol.CommandError(int(error.get("code", 17)), str(error.get("msg")), **extra)
        return answer

    async def _run(self) -> None:
        """Read until the connection ends; then reconnect, until closed for good."""
        while not self.closing:
            await self._read()
            self._ready.clear()
            self._fail_waiting()
            if self.closing:
                return
            if time.monotonic() - self._since >= _STABLE_AFTER:
                self._delay = _BACKOFF_FIRST
            self._on_down()
            await self._reconnect()
            if self.up:
                # In its own task: its commands' replies are read by this one.
                self._resubscribing = asyncio.create_task(self._resubscribe())

    async def _resubscribe(self) -> None:
        try:
            await self._on_reconnected()
        finally:
            if self.up:
                self._ready.set()

    async def _read(self) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(message.data)
        except (aiohttp.ClientError, ConnectionError):
            pass

    def _dispatch(self, text: str) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        cmd_id = doc.get("id")
        waiting = self._waiting.get(cmd_id) if type(cmd_id) is int else None
        if waiting is not None and not waiting.done():
            bind = self._on_reply.pop(cmd_id, None)  # type: ignore[arg-type]
            if bind is not None and doc.get("type") != "error":
                bind(doc)
            waiting.set_result(doc)
            return
        self._on_message(doc)

    def _fail_waiting(self) -> None:
        for reply in self._waiting.values():
            if not reply.done():
                reply.set_result(protocol.error(protocol.INTERNAL_ERROR).reply(None))

    async def _reconnect(self) -> None:
        """Try again with jittered backoff until connected or closed."""
        while not self.closing:
            await asyncio.sleep(random.uniform(0, self._delay))  # noqa: S311 - jitter
            self._delay = min(_BACKOFF_CAP, self._delay * 2)
            try:
                self._ws = await self._connect()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                get_logger().warning("ws_upstream_reconnect_failed", error=type(exc).__name__)
                continue
            self.connects += 1
            self._since = time.monotonic()
            get_logger().info("ws_upstream_reconnected", connects=self.connects)
            return
