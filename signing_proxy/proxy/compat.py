"""Kalshi's removed V1 order writes: refused with the V2 route to use, or translated.

`compat.v1_orders: refuse` answers 410 and never forwards: Kalshi has been seen answering
these with a 2xx and no order, so a bot that checks only the status would believe in an
order that does not exist. `translate` sends the V2 write instead (kalshi/orders.py has
the mapping) and answers in the V1 shape, reading the order back with the V1 read
`GET /portfolio/orders/{id}`, which Kalshi still serves.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import aiohttp
from aiohttp import web

from signing_proxy.errors import proxy_error
from signing_proxy.kalshi import orders
from signing_proxy.kalshi.orders import TranslationError, V1Write
from signing_proxy.proxy.calls import Answer, CallFailed, CallRecord, UpstreamCaller
from signing_proxy.proxy.live import Snapshot

REMOVED_CODE: Final = "proxy_v1_order_endpoint_removed"
# Orders translated at most this long ago keep the V1 side and action their bot sent.
_REMEMBERED_ORDERS: Final = 100_000
TRANSLATION_CODE: Final = "proxy_v1_translation_failed"

_TO_V2: Final[dict[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "create": orders.create_to_v2,
    "amend": orders.amend_to_v2,
    "decrease": orders.decrease_to_v2,
    "batch_create": orders.batch_create_to_v2,
    "batch_cancel": orders.batch_cancel_to_v2,
}


_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")
# What a V2 answer that is not the shape it should be raises while it is reshaped.
_UNSHAPED = (ArithmeticError, AttributeError, LookupError, TypeError, ValueError, CallFailed)


def plain_id(order_id: str | None) -> bool:
    """Whether an order id can go into a V2 path as it is (Kalshi's ids are UUIDs)."""
    return order_id is None or _PLAIN_ID.fullmatch(order_id) is not None


def refusal(write: V1Write, method: str, path: str) -> web.Response:
    """410 naming the V2 route that replaces `method path`."""
    message = (
        f"Kalshi removed the V1 order write {method} {path}; send {write.v2_method} "
        f"{write.v2_path} (V2: side bid|ask, price and count as strings), or set "
        "compat.v1_orders: translate"
    )
    return proxy_error(410, REMOVED_CODE, message)


def v2_body(write: V1Write, body: bytes | None) -> bytes | None:
    """The V2 body a V1 write becomes, for the risk rules; None if it cannot become one."""
    try:
        doc = _json_object(body)
        return json.dumps(_TO_V2[write.kind](doc)).encode() if write.kind in _TO_V2 else None
    except TranslationError:
        return None  # the translation itself answers 400


class V1Sides:
    """The V1 (side, action) of orders placed by translation, by order id, bounded.

    V2 keeps only the book side, and an ask is either "sell yes" or "buy no": the order
    read back would tell a V1 bot the other one. Orders the proxy did not translate (or
    has forgotten) are told in outcome terms: a bid buys YES, an ask buys NO.
    """

    def __init__(self, limit: int = _REMEMBERED_ORDERS) -> None:
        self._sides: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def remember(self, order_id: str, side: str) -> None:
        """Note the V1 side ('yes' or 'no') a translated order was placed with."""
        self._sides[order_id] = side
        self._sides.move_to_end(order_id)
        if len(self._sides) > self._limit:
            self._sides.popitem(last=False)

    def side_of(self, order_id: str, book: str) -> str:
        """The V1 side to show for `order_id` on `book` (bid/ask)."""
        return self._sides.get(order_id) or ("yes" if book == "bid" else "no")


class Translation:
    """One V1 write carried out as its V2 equivalent, answered in the V1 shape."""

    def __init__(
        self,
        forwarder: UpstreamCaller,
        sides: V1Sides,
        snapshot: Snapshot,
        record: CallRecord,
        write: V1Write,
        query: str,
    ) -> None:
        self.forwarder = forwarder
        self.sides = sides
        self.snapshot = snapshot
        self.record = record
        self.write = write
        self.query = f"?{query}" if query else ""

    async def run(self, body: bytes | None) -> web.Response:
        """Send the V2 write and answer as the V1 route did; Kalshi's errors pass through."""
        try:
            doc = _json_object(body)
            v2 = _TO_V2[self.write.kind](doc) if self.write.kind in _TO_V2 else None
        except TranslationError as exc:
            self.record.error = TRANSLATION_CODE
            return proxy_error(400, TRANSLATION_CODE, f"cannot translate to V2: {exc}")
        try:
            return await self._carry_out(doc, v2)
        except CallFailed as failed:
            return failed.response

    async def _carry_out(self, doc: dict[str, Any], v2: dict[str, Any] | None) -> web.Response:
        kind, order_id = self.write.kind, self.write.order_id
        old = await self._order(order_id) if kind == "amend" and order_id else None
        payload = json.dumps(v2).encode() if v2 is not None else None
        path = self.write.v2_path + self.query
        answer = await self.forwarder.call(
            self.snapshot, self.record, self.write.v2_method, path, payload
        )
        if answer.status >= 300:
            return _passed_through(answer)  # Kalshi's own error, unchanged
        # The write is done: from here on the client must hear that it succeeded, or it
        # may send it again. An answer that cannot be put in V1's shape goes as it came.
        try:
            return await self._v1_shaped(_json_object(answer.body), doc, old)
        except _UNSHAPED:
            self.record.error = "proxy_v1_answer_untranslated"
            return _passed_through(answer)

    async def _v1_shaped(
        self, result: dict[str, Any], doc: dict[str, Any], old: Any
    ) -> web.Response:
        """The V2 answer `result` in the V1 route's shape, read back where V1 showed orders."""
        kind, order_id = self.write.kind, self.write.order_id
        if kind == "create":
            order = await self._order(result.get("order_id"), doc)
            return _v1_answer(201, {"order": order})
        if kind == "cancel":
            order = await self._order(order_id)
            reduced = str(result.get("reduced_by", "0.00"))
            return _v1_answer(200, {"order": order, "reduced_by_fp": reduced})
        if kind == "amend":
            order = await self._order(result.get("order_id") or order_id, doc)
            return _v1_answer(200, {"old_order": old, "order": order})
        if kind == "decrease":
            return _v1_answer(200, {"order": await self._order(order_id)})
        if kind == "batch_create":
            return _v1_answer(201, {"orders": await self._batch_created(doc, result)})
        return _v1_answer(200, {"orders": await self._batch_canceled(result)})

    async def _order(self, order_id: Any, doc: dict[str, Any] | None = None) -> Any:
        """The order as the V1 read shows it, told in the V1 side and action it was sent with."""
        if not isinstance(order_id, str) or not order_id:
            return None
        if doc is not None and doc.get("side") in ("yes", "no"):
            self.sides.remember(order_id, str(doc["side"]))
        raw_path = f"{orders.V1_ORDERS}/{order_id}{self.query}"
        # A read-back is a read Kalshi bills: it waits for its tokens like any other call,
        # and is skipped (the order shown by its id) rather than wait past max_wait.
        limiter = self.snapshot.limiter
        if limiter is not None and not (await limiter.acquire("GET", raw_path)).allowed:
            return {"order_id": order_id}
        try:
            answer = await self.forwarder.call(self.snapshot, self.record, "GET", raw_path, None)
        except CallFailed:
            return {"order_id": order_id}  # placed; the read-back got no answer
        if answer.status != 200:
            return {"order_id": order_id}  # placed, but Kalshi would not show it just now
        order = _json_object(answer.body).get("order")
        if not isinstance(order, dict) or order.get("book_side") not in ("bid", "ask"):
            return order
        book = str(order["book_side"])
        side, action = orders.v1_side_action(book, self.sides.side_of(order_id, book))
        return {**order, "side": side, "action": action}

    async def _batch_created(
        self, doc: dict[str, Any], result: dict[str, Any]
    ) -> list[dict[str, Any]]:
        entries = []
        sent = doc.get("orders", [])
        for index, item in enumerate(result.get("orders") or []):
            original = sent[index] if index < len(sent) else None
            order = None if item.get("error") else await self._order(item.get("order_id"), original)
            entry = {"client_order_id": item.get("client_order_id"), "order": order}
            entries.append({**entry, "error": item.get("error")})
        return entries

    async def _batch_canceled(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        entries = []
        for item in result.get("orders") or []:
            order = None if item.get("error") else await self._order(item.get("order_id"))
            reduced = str(item.get("reduced_by", "0.00"))
            entries.append(
                {
                    "order_id": item.get("order_id"),
                    "order": order,
                    "reduced_by_fp": reduced,
                    "error": item.get("error"),
                }
            )
        return entries


def _json_object(body: bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise TranslationError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise TranslationError("the body must be a JSON object")
    return doc


def _v1_answer(status: int, payload: dict[str, Any]) -> web.Response:
    for entry in [payload, *payload.get("orders", [])]:
        if isinstance(entry, dict) and "reduced_by_fp" in entry:
            # V1 answers carried the whole-contract count beside the fixed-point one.
            entry["reduced_by"] = int(Decimal(entry["reduced_by_fp"]))
    return web.json_response(payload, status=status)


def _passed_through(answer: Answer) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body)
    response.content_type = answer.headers.get("Content-Type", "application/json").split(";")[0]
    return response


async def read_whole(body: aiohttp.StreamReader | bytes | None) -> bytes | None:
    """A request body in memory (a translation reads it as JSON)."""
    if isinstance(body, aiohttp.StreamReader):
        return await body.read()
    return body
