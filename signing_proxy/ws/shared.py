"""websocket.mode: shared. One upstream connection per WebSocket path for every client,
each (channel, market) subscribed once; each client speaks Kalshi's protocol with the
proxy as if it were Kalshi: its own sids and seq, Kalshi's replies and errors.

A client that falls `client_queue_frames` behind is closed with 1008; the others never
wait for it. When the upstream drops, the proxy reconnects and resubscribes while
clients stay connected (fresh book snapshots follow); past `upstream_grace` they are
closed with 1011."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
from aiohttp import WSMsgType, web

from signing_proxy.config.model import WebSocketConfig
from signing_proxy.kalshi import ws_protocol as protocol
from signing_proxy.ops.logging import get_logger
from signing_proxy.ws.hub import ClientSub, Hub, Outlet, render
from signing_proxy.ws.link import CLOSE_WAIT, UpstreamLink

JSON = dict[str, Any]
Connect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
SLOW_CLIENT: Final = 1008
# Bytes the client's socket may hold unsent before the writer waits (and frames queue in
# the outbox, where a client that stays behind is noticed).
_SOCKET_BACKLOG: Final = 1024 * 1024
_BACKLOG_WAIT: Final = 0.005
UPSTREAM_GONE: Final = 1011


class SharedClient:
    """One client connection on the shared feed: its commands, its subscriptions, its queue."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        hub: Hub,
        *,
        private: bool,
        pin: int | None,
        limit: int,
    ) -> None:
        self._ws = ws
        self._transport = transport  # the client's connection, under the WebSocket
        self._hub = hub
        self._private = private  # may it read the account's channels (fill, user_orders...)
        self._pin = pin
        self._limit = limit
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._subs: dict[int, ClientSub] = {}
        self._last_sid = 0
        self.ending: tuple[int, str] | None = None
        self.frames_in = 0
        self.frames_out = 0
        self._commands = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "list_subscriptions": self._list,
            "update_subscription": self._update,
        }

    def send(self, message: JSON) -> None:
        """Queue a reply; a client this far behind is closed (1008), nobody waits."""
        self.send_data(render(message), message)

    def send_data(self, text: str, msg: JSON) -> None:
        """Queue a rendered message; a client this far behind is closed (1008)."""
        if self.ending is not None:
            return
        if len(self._outbox) >= self._limit:
            self.end(SLOW_CLIENT, "too slow: the proxy's queue for this client is full")
            return
        self._outbox.append(text)
        self._wake.set()

    def end(self, code: int, reason: str) -> None:
        """Close this client with `code` (its queued messages are dropped)."""
        if self.ending is None:
            self.ending = (code, reason)
            self._outbox.clear()
            self._wake.set()

    async def run(self) -> None:
        """Serve the client until it or the proxy closes; then release its subscriptions."""
        writer = asyncio.create_task(self._write())
        reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
                # A client that left makes the writer fail: that is how it ends, not an error.
                with contextlib.suppress(
                    asyncio.CancelledError, ConnectionError, aiohttp.ClientError
                ):
                    await task
            for sub in list(self._subs.values()):
                await self._hub.remove(sub, None)
            self._subs.clear()
            code, reason = self.ending or (1000, "")
            try:
                # A client that does not read takes no close frame either: its socket is
                # full. Bounded, then cut, or its session would be held for good.
                async with asyncio.timeout(CLOSE_WAIT):  # to take its close frame and answer
                    await self._ws.close(code=code, message=reason.encode())
            except (ConnectionError, RuntimeError, TimeoutError):
                if self._transport is not None:
                    self._transport.abort()

    async def _write(self) -> None:
        """Send what waits, all of it in one write: one frame each, one syscall for all.

        The frames are made here rather than by aiohttp's writer (one coroutine and one
        write per frame): at 100,000 frames a second that difference is the fan-out's cost.
        The connection was opened without compression, so a text frame from a server is
        just a header and the text. While the socket's buffer is full the frames wait in
        the outbox, where a client that stays behind is noticed (1008)."""
        transport = self._transport
        while self.ending is None:
            if self._outbox:
                if transport is None or transport.is_closing():
                    return  # the client is gone: run() ends the session
                if transport.get_write_buffer_size() > _SOCKET_BACKLOG:
                    await asyncio.sleep(_BACKLOG_WAIT)
                    continue
                frames = [_text_frame(text) for text in self._outbox]
                self.frames_out += len(frames)
                self._outbox.clear()
                transport.write(b"".join(frames))
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _read(self) -> None:
        async for message in self._ws:
            self.frames_in += 1
            if message.type is WSMsgType.TEXT:
                await self._command(message.data)
            elif message.type is WSMsgType.BINARY:
                try:
                    text = message.data.decode("utf-8")
                except UnicodeDecodeError:
                    self.send(protocol.error(protocol.UNPROCESSABLE).reply(None))
                    continue
                await self._command(text)

    async def _command(self, text: str) -> None:
        doc = protocol.command_doc(text)
        if doc is None:
            self.send(protocol.error(protocol.UNPROCESSABLE).reply(None))
            return
        cmd_id = protocol.command_id(doc)
        command = self._commands.get(str(doc.get("cmd", "")))
        try:
            if command is None:
                raise protocol.error(protocol.UNKNOWN_COMMAND)
            await command(cmd_id, doc)
        except protocol.CommandError as exc:
            self.send(exc.reply(cmd_id))

    async def _subscribe(self, cmd_id: int | None, doc: JSON) -> None:
        params = protocol.params_of(doc)
        channels = protocol.channels_of(params)
        markets = protocol.tickers_of(params)
        if any(c in protocol.MARKETS_REQUIRED for c in channels) and not markets:
            raise protocol.error(protocol.TICKER_REQUIRED)
        for channel in channels:
            try:
                await self._subscribe_one(cmd_id, params, channel, markets)
            except protocol.CommandError as exc:
                self.send(exc.reply(cmd_id))

    async def _subscribe_one(
        self, cmd_id: int | None, params: JSON, channel: str, markets: list[str]
    ) -> None:
        if channel in protocol.PRIVATE_CHANNELS and not self._private:
            raise protocol.error(protocol.AUTH_REQUIRED)
        if any(_overlaps(sub, channel, markets) for sub in self._subs.values()):
            raise protocol.error(protocol.ALREADY_SUBSCRIBED)
        self._last_sid += 1
        outlet: Outlet = self
        if channel in protocol.PRIVATE_CHANNELS:
            outlet = _Filtered(self, self._pin)
        sub = ClientSub(
            outlet,
            self._last_sid,
            channel,
            dict.fromkeys(markets) if markets else None,
            use_yes_price=params.get("use_yes_price") is True,
            skip_ticker_ack=params.get("skip_ticker_ack") is True,
        )
        await self._hub.add(sub, markets)
        self._subs[sub.sid] = sub
        self.send(
            {
                "type": "subscribed",
                **protocol.reply_id(cmd_id),
                "msg": {"channel": channel, "sid": sub.sid},
            }
        )
        sub.open()

    async def _unsubscribe(self, cmd_id: int | None, doc: JSON) -> None:
        sids = protocol.params_of(doc).get("sids")
        if not isinstance(sids, list) or not sids:
            raise protocol.error(protocol.SIDS_REQUIRED)
        for sid in sids:
            sub = self._subs.pop(sid, None) if type(sid) is int else None
            if sub is None:
                self.send(protocol.error(protocol.UNKNOWN_SID).reply(cmd_id))
                continue
            await self._hub.remove(sub, None)
            reply = {
                **protocol.reply_id(cmd_id),
                "sid": sub.sid,
                "seq": sub.next_seq(),
                "type": "unsubscribed",
            }
            self.send(reply)

    async def _list(self, cmd_id: int | None, doc: JSON) -> None:
        listing = [{"channel": sub.channel, "sid": sub.sid} for sub in self._subs.values()]
        self.send({**protocol.reply_id(cmd_id), "type": "ok", "msg": listing})

    async def _update(self, cmd_id: int | None, doc: JSON) -> None:
        params = protocol.params_of(doc)
        action = protocol.update_action(params)
        sub = self._subs.get(protocol.one_sid(params))
        if sub is None:
            raise protocol.error(protocol.UNKNOWN_SID)
        markets = protocol.tickers_of(params)
        if not markets:
            raise protocol.error(protocol.TICKER_REQUIRED)
        if sub.markets is None or (action == "get_snapshot" and sub.channel != "orderbook_delta"):
            raise protocol.error(protocol.UNSUPPORTED_ACTION)
        if action == "add_markets":
            added = [m for m in markets if m not in sub.markets]
            sub.ready = False  # their snapshots wait until the ok is sent
            try:
                await self._hub.add(sub, added)
            except protocol.CommandError:
                sub.open()
                raise
            sub.markets.update(dict.fromkeys(added))
        elif action == "delete_markets":
            gone = [m for m in markets if m in sub.markets]
            for market in gone:
                del sub.markets[market]
            await self._hub.remove(sub, gone)
        reply = {} if sub.skip_ticker_ack else {"market_tickers": list(sub.markets)}
        seq = sub.next_seq()
        self.send(
            {**protocol.reply_id(cmd_id), "sid": sub.sid, "seq": seq, "type": "ok", "msg": reply}
        )
        sub.open()
        if action == "get_snapshot":
            for market in markets:
                self._hub.snapshot(sub, market)


def _text_frame(text: str) -> bytes:
    """One unmasked, uncompressed, final text frame (RFC 6455 5.2), as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class _Filtered:
    """A private channel for a client pinned to a subaccount: only that subaccount's."""

    def __init__(self, client: SharedClient, pin: int | None) -> None:
        self._client = client
        self._pin = pin

    def send(self, message: JSON) -> None:
        """Replies pass as they are."""
        self._client.send(message)

    def send_data(self, text: str, msg: JSON) -> None:
        """Pass on the message if it is about the pinned subaccount (or there is no pin)."""
        if self._pin is not None:
            number = msg.get("subaccount", msg.get("subaccount_number", 0))
            if number != self._pin:
                return
        self._client.send_data(text, msg)


def _overlaps(sub: ClientSub, channel: str, markets: list[str]) -> bool:
    """Whether subscribing `channel` for `markets` would duplicate `sub` (Kalshi's error 6)."""
    if channel != sub.channel:
        return False
    return not markets or sub.markets is None or any(m in sub.markets for m in markets)


class SharedFeed:
    """The hubs (one per WebSocket path), their clients, and when their links close."""

    def __init__(self, config: WebSocketConfig) -> None:
        self.config = config
        self.hubs: dict[str, Hub] = {}
        self._members: dict[str, set[SharedClient]] = {}
        self._opening = asyncio.Lock()
        self._closers: dict[str, asyncio.Task[None]] = {}
        self._waits: set[asyncio.Task[None]] = set()
        self.dropped_slow = 0

    def stats(self) -> dict[str, float]:
        """Figures for the metrics, read at scrape time."""
        hubs = list(self.hubs.values())
        return {
            "upstream_connections": sum(1 for h in hubs if h.link.up),
            "upstream_subscriptions": sum(h.upstream_subscriptions for h in hubs),
            "upstream_reconnects": sum(max(0, h.link.connects - 1) for h in hubs),
            "upstream_gaps": sum(h.gaps for h in hubs),
            "clients_dropped_slow": self.dropped_slow,
        }

    def frame_totals(self) -> tuple[int, int]:
        """Frames of the clients connected now, (from clients, to clients)."""
        members = [m for group in self._members.values() for m in group]
        return sum(m.frames_in for m in members), sum(m.frames_out for m in members)

    async def hub_for(
        self,
        path: str,
        first: Callable[[], Awaitable[aiohttp.ClientWebSocketResponse | web.StreamResponse]],
        reconnect: Connect,
    ) -> Hub | web.StreamResponse:
        """The path's hub, opening its upstream connection with `first` if there is none
        (a refusal is returned, to be answered to the client as Kalshi sent it)."""
        async with self._opening:
            hub = self.hubs.get(path)
            if hub is not None and not hub.link.closing:
                return hub
            opened = await first()
            if isinstance(opened, web.StreamResponse):
                return opened
            hub = Hub(
                lambda h: UpstreamLink(
                    reconnect, h.on_message, h.on_reconnected, self._down_for(path, h)
                )
            )
            hub.link.adopt(opened)
            self.hubs[path] = hub
            return hub

    async def serve(self, path: str, hub: Hub, client: SharedClient) -> None:
        """Run one client on `hub`; the link closes `linger` seconds after the last one."""
        members = self._members.setdefault(path, set())
        members.add(client)
        closer = self._closers.pop(path, None)
        if closer is not None:
            closer.cancel()
        try:
            await client.run()
        finally:
            members.discard(client)
            if client.ending is not None and client.ending[0] == SLOW_CLIENT:
                self.dropped_slow += 1
                get_logger().warning("ws_client_too_slow", path=path)
            if not members:
                self._closers[path] = asyncio.create_task(self._close_later(path, hub))

    async def _close_later(self, path: str, hub: Hub) -> None:
        await asyncio.sleep(self.config.linger)
        if not self._members.get(path) and self.hubs.get(path) is hub:
            del self.hubs[path]
            await hub.link.close()

    def _down_for(self, path: str, hub: Hub) -> Callable[[], None]:
        def down() -> None:
            hub.on_down()
            get_logger().warning("ws_upstream_lost", path=path)
            task = asyncio.get_running_loop().create_task(self._grace(path, hub))
            self._waits.add(task)
            task.add_done_callback(self._waits.discard)

        return down

    async def _grace(self, path: str, hub: Hub) -> None:
        """Past upstream_grace without the upstream, clients are told and closed (1011)."""
        await asyncio.sleep(self.config.upstream_grace)
        if hub.link.up or hub.link.closing:
            return
        for client in list(self._members.get(path, ())):
            client.end(UPSTREAM_GONE, "Kalshi's WebSocket is unreachable; reconnect later")
        if self.hubs.get(path) is hub:
            del self.hubs[path]
        await hub.link.close()

    async def close_all(self) -> None:
        """Close every client and upstream connection (the proxy is stopping)."""
        for members in self._members.values():
            for client in list(members):
                client.end(1001, "proxy shutting down")
        for task in self._closers.values():
            task.cancel()
        for hub in list(self.hubs.values()):
            await hub.link.close()
        self.hubs.clear()
