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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from aiohttp import WSMsgType, web

from signing_proxy.kalshi.protocol import HEADER_KEY, HEADER_TIMESTAMP
from signing_proxy.kalshi.verifier import check_auth
from signing_proxy.sandbox.state import SANDBOX_STATE, SandboxState, SeenRequest
from signing_proxy.sandbox.wire import CENT, JSON

WS_PATH: Final = "/trade-api/ws/v2"
MARGIN_WS_PATH: Final = "/trade-api/ws/v2/margin"
HEARTBEAT_PAYLOAD: Final = b"heartbeat"
# Every channel name Kalshi accepts (asyncapi.yaml); only ticker and orderbook_delta carry
# generated data here, the others subscribe and stay quiet.
CHANNELS: Final = frozenset(
    {
        "orderbook_delta",
        "ticker",
        "trade",
        "fill",
        "market_positions",
        "market_lifecycle_v2",
        "multivariate_market_lifecycle",
        "multivariate",
        "communications",
        "order_group_updates",
        "user_orders",
        "cfbenchmarks_value",
    }
)
_UPDATE_ACTIONS: Final = ("add_markets", "delete_markets", "get_snapshot")
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


SANDBOX_WS: web.AppKey[SandboxWs] = web.AppKey("sandbox_ws", SandboxWs)


def add_ws_endpoint(app: web.Application, settings: WsSettings | None = None) -> None:
    """Serve Kalshi's WebSocket on the sandbox `app`; register before its catch-all route."""
    app[SANDBOX_WS] = SandboxWs(settings or WsSettings())
    app.router.add_get(WS_PATH, handle_ws)
    # Perpetuals have their own WebSocket (its own host at Kalshi); the sandbox serves
    # both on one port, signed with each path.
    app.router.add_get(MARGIN_WS_PATH, handle_ws)


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
    await _Connection(ws, state, request.app[SANDBOX_WS]).run()
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


class _CommandError(Exception):
    """A command Kalshi would refuse: answered as {"id", "type": "error", "msg": {code, msg}}."""

    def __init__(self, code: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def market_id(ticker: str) -> str:
    """The sandbox's stable UUID for a market ticker."""
    return str(uuid.uuid5(_MARKET_ID_NAMESPACE, ticker))


def _iso_micro(ms: int) -> str:
    # Kalshi's RFC 3339 timestamps on the WebSocket carry microseconds.
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class _Book:
    """One market's resting bids: YES at YES prices, NO at NO prices."""

    yes: dict[Decimal, Decimal]
    no: dict[Decimal, Decimal]

    @classmethod
    def of(cls, market: JSON) -> _Book:
        """Three levels a cent apart below each side's best bid; empty unless active."""
        if market["status"] != "active":
            return cls({}, {})
        yes_bid = Decimal(market["yes_bid_dollars"])
        no_bid = 1 - Decimal(market["yes_ask_dollars"])
        return cls(_levels(yes_bid, 120), _levels(no_bid, 95))

    def side(self, name: str) -> dict[Decimal, Decimal]:
        """The levels of side `name` ("yes" or "no")."""
        return self.yes if name == "yes" else self.no


def _levels(best: Decimal, size: int) -> dict[Decimal, Decimal]:
    prices = (best - 2 * CENT, best - CENT, best)
    return {p: Decimal(size + 40 * i) for i, p in enumerate(prices) if p >= CENT}


@dataclass(slots=True)
class _Subscription:
    sid: int
    channel: str
    tickers: list[str]  # empty: every market (the ticker channel only)
    use_yes_price: bool
    seq: int = 0
    turn: int = 0  # round-robin position over the markets in the feed
    books: dict[str, _Book] = field(default_factory=dict)

    def next_seq(self) -> int:
        """The subscription's next sequence number, from 1."""
        self.seq += 1
        return self.seq

    def overlaps(self, channel: str, tickers: list[str]) -> bool:
        """Whether subscribing `channel` for `tickers` would duplicate this subscription."""
        if channel != self.channel:
            return False
        return not tickers or not self.tickers or bool(set(tickers) & set(self.tickers))


def _params(doc: JSON) -> JSON:
    params = doc.get("params")
    if not isinstance(params, dict):
        raise _CommandError(2, "Params required")
    return params


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


def _one_sid(params: JSON) -> int:
    sids = params.get("sids")
    if "sid" in params and sids is None:
        sids = [params["sid"]]
    if not isinstance(sids, list) or len(sids) != 1 or not isinstance(sids[0], int):
        raise _CommandError(12, "Exactly one subscription ID is required")
    sid: int = sids[0]
    return sid


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
        try:
            await self._read()
        finally:
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
                await self._error(None, _CommandError(1, "Unable to process message"))

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
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            await self._error(None, _CommandError(1, "Unable to process message"))
            return
        raw_id = doc.get("id")
        # Kalshi treats id 0 as no id at all.
        cmd_id = raw_id if isinstance(raw_id, int) and raw_id > 0 else None
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
        if action not in _UPDATE_ACTIONS:
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
        elif action == "delete_markets":
            sub.tickers[:] = [t for t in sub.tickers if t not in tickers]
        reply = {"market_tickers": list(sub.tickers)}
        seq = sub.next_seq()
        await self._send({**_id(cmd_id), "sid": sub.sid, "seq": seq, "type": "ok", "msg": reply})
        if action == "add_markets":
            await self._initial(sub, added, snapshot=params.get("send_initial_snapshot") is True)
        elif action == "get_snapshot":
            for ticker in tickers:
                sub.books.pop(ticker, None)  # a fresh snapshot restarts the book
                await self._send(self._snapshot(sub, ticker))

    # --- the feed ----------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            await self._locked(self._ws.ping(HEARTBEAT_PAYLOAD))

    async def _feed(self) -> None:
        # One message per subscription per interval keeps the rate modest and predictable.
        while True:
            await asyncio.sleep(self._settings.update_interval)
            for sub in list(self._subs.values()):
                message = self._next_message(sub)
                if message is not None and sub.sid in self._subs:
                    await self._send(message)

    def _next_message(self, sub: _Subscription) -> JSON | None:
        if sub.channel == "ticker":
            tickers = sub.tickers or self._active_tickers()
        elif sub.channel == "orderbook_delta":
            # Only an active market's book moves.
            tickers = [t for t in sub.tickers if self._state.markets[t]["status"] == "active"]
        else:
            return None
        if not tickers:
            return None
        sub.turn += 1
        ticker = tickers[sub.turn % len(tickers)]
        if sub.channel == "ticker":
            return self._ticker(sub, ticker)
        return self._delta(sub, ticker)

    def _active_tickers(self) -> list[str]:
        return [t for t, m in self._state.markets.items() if m["status"] == "active"]

    def _book(self, sub: _Subscription, ticker: str) -> _Book:
        if ticker not in sub.books:
            sub.books[ticker] = _Book.of(self._state.markets[ticker])
        return sub.books[ticker]

    def _shown(self, sub: _Subscription, side: str, price: Decimal) -> Decimal:
        # use_yes_price reports NO bids at the YES price of the same contract.
        return 1 - price if side == "no" and sub.use_yes_price else price

    def _snapshot(self, sub: _Subscription, ticker: str) -> JSON:
        book = self._book(sub, ticker)
        msg: JSON = {"market_ticker": ticker, "market_id": market_id(ticker)}
        # A side without bids is left out, as Kalshi does.
        for side in ("yes", "no"):
            shown = sorted((self._shown(sub, side, p), n) for p, n in book.side(side).items())
            if shown:
                msg[f"{side}_dollars_fp"] = [[f"{p:.4f}", f"{n:.2f}"] for p, n in shown]
        return {"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.next_seq(), "msg": msg}

    def _delta(self, sub: _Subscription, ticker: str) -> JSON:
        book = self._book(sub, ticker)
        seq = sub.next_seq()
        side = "yes" if seq % 2 else "no"
        if not book.side(side):
            side = "no" if side == "yes" else "yes"
        levels = book.side(side)
        if not levels:  # cancelled down to nothing: a new bid appears mid-book
            levels[Decimal("0.50")] = Decimal(0)
        price = sorted(levels)[seq % len(levels)]
        amount = Decimal(1 + seq * 7 % 25)
        # Mostly additions, sometimes a cancel; a level never goes below zero.
        delta = -min(amount, levels[price]) if seq % 3 == 0 and levels[price] else amount
        levels[price] += delta
        if not levels[price]:
            del levels[price]
        now = self._state.now_ms()
        msg = {
            "market_ticker": ticker,
            "market_id": market_id(ticker),
            "price_dollars": f"{self._shown(sub, side, price):.4f}",
            "delta_fp": f"{delta:.2f}",
            "side": side,
            "ts": _iso_micro(now),
            "ts_ms": now,
        }
        return {"type": "orderbook_delta", "sid": sub.sid, "seq": seq, "msg": msg}

    def _ticker(self, sub: _Subscription, ticker: str) -> JSON:
        market = self._state.markets[ticker]
        now = self._state.now_ms()
        price = Decimal(market["last_price_dollars"])
        volume, interest = Decimal(market["volume_fp"]), Decimal(market["open_interest_fp"])
        wobble = Decimal(sub.turn * 13 % 50)
        msg: dict[str, Any] = {
            "market_ticker": ticker,
            "market_id": market_id(ticker),
            "price_dollars": market["last_price_dollars"],
            "yes_bid_dollars": market["yes_bid_dollars"],
            "yes_ask_dollars": market["yes_ask_dollars"],
            "volume_fp": market["volume_fp"],
            "open_interest_fp": market["open_interest_fp"],
            "dollar_volume": int(volume * price),
            "dollar_open_interest": int(interest * price),
            "yes_bid_size_fp": f"{Decimal(market['yes_bid_size_fp']) + wobble:.2f}",
            "yes_ask_size_fp": f"{Decimal(market['yes_ask_size_fp']) + wobble:.2f}",
            "last_trade_size_fp": f"{1 + wobble:.2f}",
            "ts": now // 1000,
            "ts_ms": now,
            "time": datetime.fromtimestamp(now // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        # No seq: Kalshi's ticker messages carry none (asyncapi.yaml, tickerPayload).
        return {"type": "ticker", "sid": sub.sid, "msg": msg}


def _id(cmd_id: int | None) -> JSON:
    """The reply's id field: absent when the command had none."""
    return {} if cmd_id is None else {"id": cmd_id}
