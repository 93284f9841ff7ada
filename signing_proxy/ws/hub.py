"""The shared feed's subscriptions: each (channel, market) subscribed once upstream, and
every upstream message delivered to the client subscriptions that cover it, with the
client's own sid and seq. Order books are kept, so a client joining one that is
already streaming gets a snapshot; after a gap or a reconnect every client of a book
gets a fresh one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from signing_proxy.kalshi import ws_protocol as protocol
from signing_proxy.ops.logging import get_logger
from signing_proxy.ws.book import Book, shown_delta
from signing_proxy.ws.link import UpstreamLink

JSON = dict[str, Any]
ALL = None  # a subscription to every market of its channel


class Outlet(Protocol):
    """Where a client subscription's messages go (the client's connection)."""

    def send(self, message: JSON) -> None:
        """Queue `message` for the client."""

    def send_data(self, text: str, msg: JSON) -> None:
        """Queue a data message already rendered as `text` (its `msg` for filters)."""


@dataclass(eq=False, slots=True)
class ClientSub:
    """One subscription of one client: its sid, what it covers, its own seq."""

    outlet: Outlet
    sid: int
    channel: str
    markets: dict[str, None] | None  # in the order they were named; None: every market
    use_yes_price: bool = False
    skip_ticker_ack: bool = False
    seq: int = 0
    ready: bool = False  # `subscribed` sent: messages flow; before, they wait in `held`
    held: list[tuple[str, JSON, str | None]] = field(default_factory=list)
    snapshotted: set[str] = field(default_factory=set)  # books it has a snapshot of

    def next_seq(self) -> int:
        """The subscription's next sequence number, from 1."""
        self.seq += 1
        return self.seq

    def emit(self, kind: str, msg: JSON, rendered: str | None = None) -> None:
        """Send a data message (held until the reply to the command that asked for it);
        `rendered` is `msg` as JSON already, shared by every client it goes to."""
        if self.ready:
            self._send(kind, msg, rendered)
        else:
            self.held.append((kind, msg, rendered))

    def _send(self, kind: str, msg: JSON, rendered: str | None) -> None:
        # The seq is taken as it is sent, so that it follows the reply's own. Only the
        # envelope is this client's: the msg is rendered once for all of them.
        seq = f',"seq":{self.next_seq()}' if kind in protocol.SEQUENCED else ""
        body = rendered if rendered is not None else render(msg)
        self.outlet.send_data(f'{{"type":"{kind}","sid":{self.sid}{seq},"msg":{body}}}', msg)

    def open(self) -> None:
        """The reply was sent: what waited goes out, in order."""
        self.ready = True
        for kind, msg, rendered in self.held:
            self._send(kind, msg, rendered)
        self.held.clear()


def render(msg: JSON) -> str:
    """A message's JSON, compact, as Kalshi sends it."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class _Group:
    """One upstream subscription: a channel, for named markets or for all of them."""

    channel: str
    every_market: bool
    sid: int | None = None
    markets: dict[str, int] = field(default_factory=dict)  # market -> client subs needing it
    last_seq: int = 0


class Hub:
    """The subscriptions of one upstream connection and the clients that share it."""

    def __init__(self, link_factory: Callable[[Hub], UpstreamLink]) -> None:
        self.link = link_factory(self)
        self._groups: dict[tuple[str, bool], _Group] = {}
        self._by_sid: dict[int, _Group] = {}
        self._routes: dict[tuple[str, str | None], set[ClientSub]] = {}
        # Named markets served by the channel's every-market subscription, which covers
        # them: channel -> market -> client subs needing it. No upstream command of their own.
        self._via_all: dict[str, dict[str, int]] = {}
        self._books: dict[str, Book] = {}
        self._tickers: dict[str, JSON] = {}  # last ticker msg per market
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.gaps = 0
        self.upstream_subscribes = 0

    # --- what clients ask for -------------------------------------------------------------

    async def add(self, sub: ClientSub, markets: list[str]) -> None:
        """Cover `markets` (or every market) of the sub's channel upstream, then route them
        to `sub`; raises Kalshi's CommandError when the upstream refuses."""
        key = (sub.channel, sub.markets is None)
        routes: list[str | None] = list(markets) or [ALL]
        for market in routes:
            self._routes.setdefault((sub.channel, market), set()).add(sub)
        await self.link.wait_ready()  # outside the lock: the resubscription needs it
        try:
            async with self._lock:
                await self._cover(key, markets)
        except protocol.CommandError:
            for market in routes:
                self._routes.get((sub.channel, market), set()).discard(sub)
            raise
        if sub.channel in protocol.MARKETS_REQUIRED:
            for market in markets:
                book = self._books.get(market)
                if book is not None and market not in sub.snapshotted:
                    self._snapshot_to(sub, book)  # streaming already: a snapshot of it now
        elif sub.channel == "ticker":
            for market in markets:
                if market in self._tickers:
                    sub.emit("ticker", self._tickers[market])

    async def remove(self, sub: ClientSub, markets: list[str] | None) -> None:
        """Stop routing `markets` (None: all it had) to `sub`; drop what nobody needs."""
        names: list[str | None] = list(sub.markets or []) if markets is None else list(markets)
        if sub.markets is None:
            names = [ALL]
        key = (sub.channel, sub.markets is None)
        for market in names:
            self._routes.get((sub.channel, market), set()).discard(sub)
            sub.snapshotted.discard(market or "")
        await self.link.wait_ready()
        async with self._lock:
            await self._uncover(key, [m for m in names if m is not None])

    async def _cover(self, key: tuple[str, bool], markets: list[str]) -> None:
        """Subscribe upstream what is not covered yet; count the client subs needing each."""
        group = self._groups.get(key)
        if key[1] and group is None:
            await self._cover_every_market(key[0])
            return
        if not key[1]:
            markets = self._served_by_all(key[0], group, markets)
            if not markets:
                return
        if group is None or group.sid is None:
            group = group or _Group(key[0], key[1])
            params: JSON = {"channels": [key[0]]}
            if not group.every_market:
                params["market_tickers"] = markets
            await self.link.command("subscribe", params, self._binder(group, markets))
            self.upstream_subscribes += 1
            return
        new = [m for m in markets if m not in group.markets]
        if new and not group.every_market:
            params = {"sids": [group.sid], "action": "add_markets", "market_tickers": new}
            await self.link.command("update_subscription", params, self._counter(group, new))
        self._count(group, [m for m in markets if m not in new])

    async def _cover_every_market(self, channel: str) -> None:
        """Subscribe `channel` for every market. Kalshi refuses it (error 6) beside a
        subscription of the same channel for named markets, so that one goes first and its
        markets are served by the new one: they miss what comes in between (one round trip)."""
        named = self._groups.get((channel, False))
        if named is not None:
            await self._drop(named)
            via = self._via_all.setdefault(channel, {})
            for market, need in named.markets.items():
                via[market] = via.get(market, 0) + need
            get_logger().info("ws_upstream_widened", channel=channel, markets=len(named.markets))
        group = _Group(channel, True)
        try:
            await self.link.command("subscribe", {"channels": [channel]}, self._binder(group, []))
        except protocol.CommandError:
            if named is not None:  # put the named subscription back as it was
                self._via_all.pop(channel, None)
                params = {"channels": [channel], "market_tickers": list(named.markets)}
                with contextlib.suppress(protocol.CommandError):
                    await self.link.command("subscribe", params, self._binder(named, []))
            raise
        self.upstream_subscribes += 1

    def _served_by_all(self, channel: str, named: _Group | None, markets: list[str]) -> list[str]:
        """Count the markets the channel's every-market subscription covers (and the named
        one does not) as served by it; the rest are left to the named subscription."""
        every = self._groups.get((channel, True))
        if every is None:
            return markets
        own = named.markets if named is not None else {}
        via = self._via_all.setdefault(channel, {})
        for market in markets:
            if market not in own:
                via[market] = via.get(market, 0) + 1
        return [m for m in markets if m in own]

    def _binder(self, group: _Group, markets: list[str]) -> Callable[[JSON], None]:
        """Binds the upstream sid the moment its reply is read (its snapshot comes next)."""

        def bind(reply: JSON) -> None:
            group.sid = int(reply["msg"]["sid"])
            self._groups[(group.channel, group.every_market)] = group
            self._by_sid[group.sid] = group
            self._count(group, markets)

        return bind

    def _counter(self, group: _Group, markets: list[str]) -> Callable[[JSON], None]:
        def count(reply: JSON) -> None:
            self._count(group, markets)
            _took_seq(group, reply)

        return count

    @staticmethod
    def _count(group: _Group, markets: list[str]) -> None:
        for market in markets:
            group.markets[market] = group.markets.get(market, 0) + 1

    async def _uncover(self, key: tuple[str, bool], markets: list[str]) -> None:
        markets = self._release_via_all(key, markets)
        group = self._groups.get(key)
        if group is None:
            if not key[1]:
                await self._drop_every_market_if_unused(key[0])
            return
        unused = []
        for market in markets:
            left = group.markets.get(market, 0) - 1
            if left > 0:
                group.markets[market] = left
            else:
                group.markets.pop(market, None)
                unused.append(market)
        try:
            if group.every_market:
                await self._drop_every_market_if_unused(key[0])
            elif not group.markets:
                await self._drop(group)
            elif unused:
                params = {"sids": [group.sid], "action": "delete_markets", "market_tickers": unused}
                await self.link.command(
                    "update_subscription", params, lambda reply: _took_seq(group, reply)
                )
        except protocol.CommandError:
            pass  # the upstream is away: a reconnect subscribes only what is needed
        for market in unused:
            if key[0] in protocol.MARKETS_REQUIRED:
                self._books.pop(market, None)

    async def _drop_every_market_if_unused(self, channel: str) -> None:
        """Unsubscribe the every-market subscription once no client leans on it: neither
        one that wants every market nor one whose named markets it serves."""
        group = self._groups.get((channel, True))
        if group is None or self._routes.get((channel, ALL)) or self._via_all.get(channel):
            return
        with contextlib.suppress(protocol.CommandError):
            await self._drop(group)

    def _release_via_all(self, key: tuple[str, bool], markets: list[str]) -> list[str]:
        """Release the named markets the every-market subscription serves; the rest."""
        via = self._via_all.get(key[0])
        if key[1] or not via:
            return markets
        rest = []
        for market in markets:
            left = via.get(market, 0) - 1
            if left > 0:
                via[market] = left
            elif left == 0:
                del via[market]
            else:
                rest.append(market)
        return rest

    async def _drop(self, group: _Group) -> None:
        self._groups.pop((group.channel, group.every_market), None)
        if group.sid is not None:
            self._by_sid.pop(group.sid, None)
            await self.link.command("unsubscribe", {"sids": [group.sid]})

    # --- what the upstream sends ----------------------------------------------------------

    def on_message(self, doc: JSON) -> None:
        """Route one upstream message to the client subscriptions that cover it."""
        group = self._by_sid.get(doc.get("sid"))  # type: ignore[arg-type]
        msg = doc.get("msg")
        if group is None or not isinstance(msg, dict):
            return
        kind = str(doc.get("type"))
        if group.channel in protocol.MARKETS_REQUIRED:
            self._book_message(group, doc, kind, msg)
            return
        market = _market_of(msg)
        if kind == "ticker" and market is not None:
            self._tickers[market] = msg
        subs = self._subs_for(group, market)
        rendered = render(msg) if subs else None
        for sub in subs:
            sub.emit(kind, msg, rendered)

    def _subs_for(self, group: _Group, market: str | None) -> tuple[ClientSub, ...]:
        """The client subs a message of `group` about `market` goes to; a message naming no
        market (an order group's, an RFQ's) goes to every sub of the subscription."""
        channel, routes = group.channel, self._routes
        via = self._via_all.get(channel, {})
        if market is not None:
            subs = routes.get((channel, ALL if group.every_market else market), set())
            if group.every_market and market in via:
                subs = subs | routes.get((channel, market), set())
            return tuple(subs)
        named = via if group.every_market else group.markets
        found = set(routes.get((channel, ALL), ())) if group.every_market else set()
        for name in named:
            found.update(routes.get((channel, name), ()))
        return tuple(found)

    def _book_message(self, group: _Group, doc: JSON, kind: str, msg: JSON) -> None:
        seq = doc.get("seq")
        if isinstance(seq, int):
            if group.last_seq and seq != group.last_seq + 1:
                # Unknown until the resync's reply: the next message starts the count again.
                group.last_seq = 0
                self._resync(group)
                return
            group.last_seq = seq
        market = msg.get("market_ticker")
        if not isinstance(market, str) or market not in group.markets:
            return
        subs = tuple(self._routes.get((group.channel, market), ()))
        if kind == "orderbook_snapshot":
            book = self._books[market] = Book.from_snapshot(msg)
            for sub in subs:
                self._snapshot_to(sub, book)
        elif kind == "orderbook_delta":
            known = self._books.get(market)
            if known is None or not known.apply(msg):
                return
            rendered: dict[bool, tuple[JSON, str]] = {}
            for sub in subs:
                if market in sub.snapshotted:
                    if sub.use_yes_price not in rendered:
                        shown = shown_delta(msg, sub.use_yes_price)
                        rendered[sub.use_yes_price] = (shown, render(shown))
                    sub.emit(kind, *rendered[sub.use_yes_price])

    def snapshot(self, sub: ClientSub, market: str) -> None:
        """A snapshot of `market`'s book now, for `sub` (get_snapshot), if it is streaming."""
        book = self._books.get(market)
        if book is not None:
            self._snapshot_to(sub, book)

    def _snapshot_to(self, sub: ClientSub, book: Book) -> None:
        sub.snapshotted.add(book.ticker)
        sub.emit("orderbook_snapshot", book.snapshot(sub.use_yes_price))

    def _resync(self, group: _Group) -> None:
        """A seq was skipped: the books cannot be trusted; ask for fresh snapshots."""
        self.gaps += 1
        get_logger().warning("ws_upstream_gap", channel=group.channel, markets=len(group.markets))
        for market in group.markets:
            self._books.pop(market, None)
        task = asyncio.get_running_loop().create_task(self._snapshots(group))
        self._tasks.add(task)  # a reference, so the task is not collected before it runs
        task.add_done_callback(self._tasks.discard)

    async def _snapshots(self, group: _Group) -> None:
        if group.sid is None or not group.markets:
            return
        params = {
            "sids": [group.sid],
            "action": "get_snapshot",
            "market_tickers": list(group.markets),
        }
        # If the link is going down, the reconnect subscribes afresh anyway.
        with contextlib.suppress(protocol.CommandError):
            await self.link.command(
                "update_subscription", params, lambda reply: _took_seq(group, reply)
            )

    @property
    def upstream_subscriptions(self) -> int:
        """(channel, market) pairs subscribed upstream now (an every-market one counts one)."""
        return sum(1 if g.every_market else len(g.markets) for g in self._groups.values())

    # --- the upstream connection's life ---------------------------------------------------

    def on_down(self) -> None:
        """The upstream is gone: no book can be trusted until it is back."""
        self._books.clear()
        self._by_sid.clear()
        for group in self._groups.values():
            group.sid, group.last_seq = None, 0

    async def on_reconnected(self) -> None:
        """Subscribe again to everything clients need; fresh snapshots follow."""
        async with self._lock:
            for group in list(self._groups.values()):
                params: JSON = {"channels": [group.channel]}
                if not group.every_market:
                    if not group.markets:
                        continue
                    params["market_tickers"] = list(group.markets)
                try:
                    await self.link.command("subscribe", params, self._rebinder(group))
                except protocol.CommandError as exc:
                    log = get_logger()
                    log.warning("ws_resubscribe_failed", channel=group.channel, code=exc.code)
                    continue
                self.upstream_subscribes += 1

    def _rebinder(self, group: _Group) -> Callable[[JSON], None]:
        """Binds a group's new sid after a reconnect, the moment its reply is read."""

        def bind(reply: JSON) -> None:
            group.sid = int(reply["msg"]["sid"])
            self._by_sid[group.sid] = group

        return bind


def _market_of(msg: JSON) -> str | None:
    """The market a message is about: market_ticker, or ticker (user_order's name for it)."""
    market = msg.get("market_ticker", msg.get("ticker"))
    return market if isinstance(market, str) else None


def _took_seq(group: _Group, reply: JSON) -> None:
    """A reply about the subscription (ok, unsubscribed) takes one of its seq numbers."""
    seq = reply.get("seq")
    if isinstance(seq, int) and reply.get("sid") == group.sid:
        group.last_seq = seq
