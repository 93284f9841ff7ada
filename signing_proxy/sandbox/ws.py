"""The sandbox's WebSocket endpoint, /trade-api/ws/v2, as Kalshi serves it.

The handshake is verified exactly as a REST call (check_auth); then the connection takes
Kalshi's commands (subscribe, unsubscribe, list_subscriptions, update_subscription), streams
a modest feed of `ticker` and `orderbook_snapshot`/`orderbook_delta` messages for the
sandbox's markets, and sends a Ping with payload `heartbeat` every 10 s
(kalshi/asyncapi.yaml). Like sandbox.py it knows nothing of the proxy.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMsgType, web

from signing_proxy.kalshi.protocol import HEADER_KEY, HEADER_TIMESTAMP
from signing_proxy.kalshi.verifier import check_auth
from signing_proxy.kalshi.ws_protocol import CHANNELS, UPDATE_ACTIONS
from signing_proxy.kalshi.ws_protocol import CommandError as _CommandError
from signing_proxy.kalshi.ws_protocol import command_doc as _command_doc
from signing_proxy.kalshi.ws_protocol import one_sid as _one_sid
from signing_proxy.kalshi.ws_protocol import params_of as _params
from signing_proxy.kalshi.ws_protocol import reply_id as _id
from signing_proxy.sandbox import ws_messages as messages
from signing_proxy.sandbox.events import (
    Event,
    Filled,
    LevelChanged,
    MarketLifecycle,
    OrderChanged,
    QuoteChanged,
    Traded,
)
from signing_proxy.sandbox.groups import GroupChanged
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState, SeenRequest
from signing_proxy.sandbox.wire import JSON

WS_PATH: Final = "/trade-api/ws/v2"
MARGIN_WS_PATH: Final = "/trade-api/ws/v2/margin"
HEARTBEAT_PAYLOAD: Final = b"heartbeat"
# Messages a connection may have waiting before it counts as too slow.
_OUTBOX: Final = 10_000
# Stable market ids: the REST markets carry none, Kalshi's messages do.
_MARKET_ID_NAMESPACE: Final = uuid.UUID("6f1c2b1e-3a51-4d0e-9b7a-2c8e5d4f1a90")


@dataclass(frozen=True, slots=True)
class WsSettings:
    """How the sandbox's WebSocket behaves; tests shorten the intervals."""

    heartbeat_interval: float = 10.0  # Kalshi's Ping period
    update_interval: float = 1.0  # seconds between generated messages of one subscription


@dataclass(slots=True)
class SandboxWs:
    """The WebSocket endpoint's settings, and counters tests may inspect."""

    settings: WsSettings = field(default_factory=WsSettings)
    heartbeat_pongs: int = 0  # Pongs that answered a `heartbeat` Ping
    connections_opened: int = 0
    open_connections: int = 0
    # The latest commands received, as parsed (what a proxy in front subscribed, say).
    commands: deque[JSON] = field(default_factory=lambda: deque(maxlen=10_000))
    # Times each (channel, market) was subscribed or added ("*": every market).
    subscribed: Counter[tuple[str, str]] = field(default_factory=Counter)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)

    async def drop_all(self, code: int = 1001) -> None:
        """Close every client connection, as Kalshi does during maintenance."""
        for ws in list(self.sockets):
            await ws.close(code=code, message=b"maintenance")


SANDBOX_WS: web.AppKey[SandboxWs] = web.AppKey("sandbox_ws", SandboxWs)


def add_ws_endpoint(app: web.Application, settings: WsSettings | None = None) -> None:
    """Serve Kalshi's WebSocket on the sandbox `app`; register before its catch-all route."""
    app[SANDBOX_WS] = SandboxWs(settings or WsSettings())
    app.on_shutdown.append(_close_sockets)
    app.router.add_get(WS_PATH, handle_ws)
    # Perpetuals have their own WebSocket (its own host at Kalshi); the sandbox serves
    # both on one port, signed with each path.
    app.router.add_get(MARGIN_WS_PATH, handle_ws)


async def _close_sockets(app: web.Application) -> None:
    # A WebSocket lives until closed: a server that stops must close them, or its shutdown
    # waits on them (a shared-feed proxy keeps its connection open for a while).
    await app[SANDBOX_WS].drop_all(1001)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    """Verify the signed handshake (401 with Kalshi's body, no upgrade), then serve commands."""
    state = request.app[SANDBOX_STATE]
    failure = check_auth(
        request.headers,
        request.method,
        request.raw_path,
        state.keys,
        state.now_ms(),
        state.window_ms,
    )
    _record_handshake(state, request, failure)
    if failure is not None:
        return _json_response(*failure)
    # Pings are answered here rather than by aiohttp, so that Pongs can be counted.
    ws = web.WebSocketResponse(autoping=False, compress=False)
    if not ws.can_prepare(request).ok:
        # Not recorded from Kalshi; the body follows its nested error shape.
        body = {"error": {"code": "bad_request", "message": "websocket upgrade required"}}
        return _json_response(400, body)
    await ws.prepare(request)
    counters = request.app[SANDBOX_WS]
    counters.connections_opened += 1
    counters.open_connections += 1
    counters.sockets.add(ws)
    try:
        await _Connection(ws, state, counters).run()
    finally:
        counters.open_connections -= 1
        counters.sockets.discard(ws)
    return ws


def _record_handshake(
    state: SandboxState, request: web.Request, failure: tuple[int, JSON] | None
) -> None:
    error = failure[1]["error"] if failure else None
    timestamp = request.headers.get(HEADER_TIMESTAMP, "")
    state.seen.append(
        SeenRequest(
            method=request.method,
            raw_path=request.raw_path,
            key_id=request.headers.get(HEADER_KEY) or None,
            authenticated=failure is None,
            auth_error=None if error is None else error.get("details", error["code"]),
            timestamp_ms=int(timestamp) if timestamp.isascii() and timestamp.isdigit() else None,
            body=b"",
        )
    )


def _json_response(status: int, payload: JSON) -> web.Response:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return web.Response(status=status, text=text, content_type="application/json")


# --- messages --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Subscription:
    sid: int
    channel: str
    tickers: list[str]  # empty: every market (the ticker channel only)
    use_yes_price: bool
    seq: int = 0
    skip_ticker_ack: bool = False  # OK replies leave out the market list

    def next_seq(self) -> int:
        """The subscription's next sequence number, from 1."""
        self.seq += 1
        return self.seq

    def covers(self, ticker: str) -> bool:
        """Whether messages about market `ticker` belong to this subscription."""
        return not self.tickers or ticker in self.tickers

    def overlaps(self, channel: str, tickers: list[str]) -> bool:
        """Whether subscribing `channel` for `tickers` would duplicate this subscription."""
        if channel != self.channel:
            return False
        return not tickers or not self.tickers or bool(set(tickers) & set(self.tickers))


def _tickers(params: JSON, state: SandboxState) -> list[str]:
    """The market tickers named by market_ticker or market_tickers, each known to exist."""
    single, many = params.get("market_ticker"), params.get("market_tickers")
    if single is not None and many is not None:
        raise _CommandError(11, "Invalid parameter")
    tickers = [single] if single is not None else many if many is not None else []
    if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
        raise _CommandError(11, "Invalid parameter")
    for ticker in tickers:
        if ticker not in state.markets:
            raise _CommandError(16, "Market not found", market_ticker=ticker)
    return list(dict.fromkeys(tickers))


# --- a connection ----------------------------------------------------------------------------


Command = Callable[[int | None, JSON], Awaitable[None]]


class _Connection:
    """One client's WebSocket: its subscriptions, its feed and its heartbeat."""

    def __init__(self, ws: web.WebSocketResponse, state: SandboxState, counters: SandboxWs) -> None:
        self._ws = ws
        self._state = state
        self._counters = counters
        self._settings = counters.settings
        self._subs: dict[int, _Subscription] = {}
        self._last_sid = 0
        # The engine's events, as messages, waiting to be sent; a client that falls this
        # far behind is disconnected, as an exchange drops a consumer that cannot keep up.
        self._outbox: asyncio.Queue[JSON] = asyncio.Queue(maxsize=_OUTBOX)
        # One writer at a time: commands, the feed and the heartbeat share the socket.
        self._send_lock = asyncio.Lock()
        self._commands: dict[str, Command] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "list_subscriptions": self._list_subscriptions,
            "update_subscription": self._update_subscription,
        }

    async def run(self) -> None:
        """Serve until the client closes."""
        background = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._feed())]
        self._state.listeners.append(self._on_event)
        try:
            await self._read()
        finally:
            self._state.listeners.remove(self._on_event)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type is WSMsgType.TEXT:
                await self._command(msg.data)
            elif msg.type is WSMsgType.PING:
                await self._locked(self._ws.pong(msg.data))
            elif msg.type is WSMsgType.PONG:
                if msg.data == HEARTBEAT_PAYLOAD:
                    self._counters.heartbeat_pongs += 1
            elif msg.type is WSMsgType.BINARY:
                # Kalshi takes a command in a binary frame too, when it is UTF-8 JSON.
                try:
                    text = msg.data.decode("utf-8")
                except UnicodeDecodeError:
                    await self._error(None, _CommandError(1, "Unable to process message"))
                    continue
                await self._command(text)

    async def _locked(self, send: Awaitable[None]) -> None:
        async with self._send_lock:
            await send

    async def _send(self, payload: JSON) -> None:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        await self._locked(self._ws.send_str(text))

    async def _error(self, cmd_id: int | None, exc: _CommandError) -> None:
        msg: JSON = {"code": exc.code, "msg": exc.message, **exc.extra}
        await self._send({**_id(cmd_id), "type": "error", "msg": msg})

    async def _command(self, text: str) -> None:
        doc = _command_doc(text)
        if doc is None:
            await self._error(None, _CommandError(1, "Unable to process message"))
            return
        raw_id = doc.get("id")
        # Kalshi treats id 0 as no id at all.
        cmd_id = raw_id if isinstance(raw_id, int) and raw_id > 0 else None
        self._counters.commands.append(doc)
        command = self._commands.get(doc.get("cmd", ""))
        try:
            if command is None:
                raise _CommandError(5, "Unknown command")
            await command(cmd_id, doc)
        except _CommandError as exc:
            await self._error(cmd_id, exc)

    async def _subscribe(self, cmd_id: int | None, doc: JSON) -> None:
        params = _params(doc)
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            raise _CommandError(3, "Channels required")
        if not all(isinstance(c, str) and c in CHANNELS for c in channels):
            raise _CommandError(8, "Unknown channel name")
        tickers = _tickers(params, self._state)
        if "orderbook_delta" in channels and not tickers:
            raise _CommandError(14, "Market Ticker required")
        for channel in dict.fromkeys(channels):
            if any(sub.overlaps(channel, tickers) for sub in self._subs.values()):
                await self._error(cmd_id, _CommandError(6, "Already subscribed"))
                continue
            self._last_sid += 1
            use_yes = params.get("use_yes_price") is True
            sub = _Subscription(self._last_sid, channel, list(tickers), use_yes)
            self._counters.subscribed.update((channel, t) for t in tickers or ["*"])
            sub.skip_ticker_ack = params.get("skip_ticker_ack") is True
            self._subs[sub.sid] = sub
            reply = {"channel": channel, "sid": sub.sid}
            await self._send({"type": "subscribed", **_id(cmd_id), "msg": reply})
            await self._initial(sub, tickers, snapshot=params.get("send_initial_snapshot") is True)

    async def _initial(self, sub: _Subscription, tickers: list[str], *, snapshot: bool) -> None:
        """What a new subscription (or added markets) starts with."""
        for ticker in tickers:
            if sub.channel == "orderbook_delta":
                await self._send(self._snapshot(sub, ticker))
            elif sub.channel == "ticker" and snapshot:
                await self._send(self._ticker(sub, ticker))

    async def _unsubscribe(self, cmd_id: int | None, doc: JSON) -> None:
        sids = _params(doc).get("sids")
        if not isinstance(sids, list) or not sids:
            raise _CommandError(4, "Subscription IDs required")
        for sid in sids:
            sub = self._subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                await self._error(cmd_id, _CommandError(7, "Unknown subscription ID"))
                continue
            reply = {**_id(cmd_id), "sid": sub.sid, "seq": sub.next_seq(), "type": "unsubscribed"}
            await self._send(reply)

    async def _list_subscriptions(self, cmd_id: int | None, doc: JSON) -> None:
        listing = [{"channel": sub.channel, "sid": sub.sid} for sub in self._subs.values()]
        await self._send({**_id(cmd_id), "type": "ok", "msg": listing})

    async def _update_subscription(self, cmd_id: int | None, doc: JSON) -> None:
        params = _params(doc)
        action = params.get("action")
        if action is None:
            raise _CommandError(15, "Action required")
        if action not in UPDATE_ACTIONS:
            raise _CommandError(13, "Unsupported action")
        sub = self._subs.get(_one_sid(params))
        if sub is None:
            raise _CommandError(7, "Unknown subscription ID")
        tickers = _tickers(params, self._state)
        if not tickers:
            raise _CommandError(14, "Market Ticker required")
        # A subscription to every market has no list to edit; snapshots are orderbook only.
        if not sub.tickers or (action == "get_snapshot" and sub.channel != "orderbook_delta"):
            raise _CommandError(13, "Unsupported action")
        added = [t for t in tickers if t not in sub.tickers]
        if action == "add_markets":
            sub.tickers.extend(added)
            # Every market asked for counts, added or not: what the client requested.
            self._counters.subscribed.update((sub.channel, t) for t in tickers)
        elif action == "delete_markets":
            sub.tickers[:] = [t for t in sub.tickers if t not in tickers]
        reply = {} if sub.skip_ticker_ack else {"market_tickers": list(sub.tickers)}
        seq = sub.next_seq()
        await self._send({**_id(cmd_id), "sid": sub.sid, "seq": seq, "type": "ok", "msg": reply})
        if action == "add_markets":
            await self._initial(sub, added, snapshot=params.get("send_initial_snapshot") is True)
        elif action == "get_snapshot":
            for ticker in tickers:
                await self._send(self._snapshot(sub, ticker))

    # --- the feed ----------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            await self._locked(self._ws.ping(HEARTBEAT_PAYLOAD))

    async def _feed(self) -> None:
        while True:
            message = await self._outbox.get()
            if message.get("sid") in self._subs:  # not unsubscribed since
                await self._send(message)

    def _on_event(self, event: Event | GroupChanged) -> None:
        """Queue what `event` means for each subscription (called by the engine)."""
        for sub in list(self._subs.values()):
            message = self._message(sub, event)
            if message is None:
                continue
            try:
                self._outbox.put_nowait(message)
            except asyncio.QueueFull:
                self._state.listeners.remove(self._on_event)
                asyncio.get_running_loop().create_task(self._ws.close(code=1008))
                return

    def _message(self, sub: _Subscription, event: Event | GroupChanged) -> JSON | None:
        if isinstance(event, LevelChanged):
            if sub.channel != "orderbook_delta" or event.ticker not in sub.tickers:
                return None
            msg = messages.delta(event, sub.use_yes_price)
            return {"type": "orderbook_delta", "sid": sub.sid, "seq": sub.next_seq(), "msg": msg}
        if isinstance(event, GroupChanged):
            if sub.channel != "order_group_updates":
                return None
            msg = event.message()
            return {
                "type": "order_group_updates",
                "sid": sub.sid,
                "seq": sub.next_seq(),
                "msg": msg,
            }
        built = self._built(sub.channel, event)
        if built is None or not sub.covers(built[2]):
            return None
        return {"type": built[0], "sid": sub.sid, "msg": built[1]}

    def _built(self, channel: str, event: Event | GroupChanged) -> tuple[str, JSON, str] | None:
        """(message type, msg, market) of `event` on `channel`, or None if it has none."""
        if channel == "ticker" and isinstance(event, QuoteChanged):
            return "ticker", messages.ticker(self._state, event.ticker), event.ticker
        if channel == "trade" and isinstance(event, Traded):
            return "trade", messages.trade(event), event.trade.ticker
        if channel == "fill" and isinstance(event, Filled):
            return "fill", messages.fill(event), event.fill.order.ticker
        if channel == "market_positions" and isinstance(event, Filled):
            msg = messages.market_position(self._state, event)
            return "market_position", msg, event.fill.order.ticker
        if channel == "market_lifecycle_v2" and isinstance(event, MarketLifecycle):
            return "market_lifecycle_v2", messages.lifecycle(event), event.ticker
        if channel == "user_orders" and isinstance(event, OrderChanged):
            return "user_order", messages.user_order(event), event.order.ticker
        return None

    def _snapshot(self, sub: _Subscription, ticker: str) -> JSON:
        msg = messages.snapshot(self._state, ticker, sub.use_yes_price)
        return {"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.next_seq(), "msg": msg}

    def _ticker(self, sub: _Subscription, ticker: str) -> JSON:
        # No seq: Kalshi's ticker messages carry none (asyncapi.yaml, tickerPayload).
        return {"type": "ticker", "sid": sub.sid, "msg": messages.ticker(self._state, ticker)}
