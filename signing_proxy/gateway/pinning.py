"""Subaccount pinning: a token with `subaccount: K` acts on subaccount K only.

Portfolio calls naming another subaccount, in the query or in an order body (a batch's
orders each), get 403 `proxy_subaccount_mismatch`; where none is named, the proxy names K
before signing. Names are compared as Kalshi's server would read them: query names
percent-decoded, JSON keys in any letter case (Go's decoder ignores case).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

from signing_proxy.gateway.risk import Refused

PORTFOLIO: Final = "/trade-api/v2/portfolio/"
_KEY: Final = "subaccount"
# Writes whose JSON body names the subaccount (per order, for a batch).
_BODY_ROUTES: Final = frozenset(
    {
        ("POST", "/trade-api/v2/portfolio/events/orders"),
        ("POST", "/trade-api/v2/portfolio/events/orders/batched"),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/batched"),
        ("POST", "/trade-api/v2/portfolio/order_groups/create"),
        ("POST", "/trade-api/v2/portfolio/orders"),
        ("POST", "/trade-api/v2/portfolio/orders/batched"),
        ("DELETE", "/trade-api/v2/portfolio/orders/batched"),
    }
)
# Managing subaccounts is the account owner's business, not a pinned bot's.
_MANAGING: Final = ("/trade-api/v2/portfolio/subaccounts",)


@dataclass(frozen=True, slots=True)
class Pinned:
    """The query and body to send, naming the pinned subaccount."""

    query: str
    body: bytes | None


def pin(
    method: str, forms: frozenset[str], query: str, body: bytes | None, number: int
) -> Pinned | Refused:
    """The call as a client pinned to subaccount `number` may send it, or why it may not.

    `forms` are the spellings a server might route the path as (decoded, folded): a
    portfolio call spelled with %70ortfolio is still one.
    """
    lowered = {form.lower().rstrip("/") for form in forms}
    if not any(form.startswith(PORTFOLIO) for form in lowered):
        return Pinned(query, body)
    if any(form.startswith(_MANAGING) for form in lowered) and method != "GET":
        return _mismatch(f"a client pinned to subaccount {number} cannot manage subaccounts")
    named = [unquote_plus(v) for k, v in _pairs(query) if unquote_plus(k).lower() == _KEY]
    if any(value != str(number) for value in named):
        return _mismatch(f"this client is pinned to subaccount {number}")
    if not named:
        query = f"{query}&{_KEY}={number}" if query else f"{_KEY}={number}"
    if not any((method, form) in _BODY_ROUTES for form in lowered) or not body:
        return Pinned(query, body)
    return _pinned_body(query, body, number)


def _pinned_body(query: str, body: bytes, number: int) -> Pinned | Refused:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return Pinned(query, body)  # not JSON: Kalshi refuses it, whatever it names
    if not isinstance(doc, dict):
        return Pinned(query, body)
    ids = [v for k, v in doc.items() if k.lower() == "ids"]
    if ids:
        # V1's cancel by bare ids names no subaccount (Kalshi then means the primary):
        # spelled as orders, each names the pinned one. Anything but strings is refused.
        if any(k.lower() not in ("ids",) for k in doc) or not all(
            isinstance(v, list) and all(isinstance(i, str) for i in v) for v in ids
        ):
            return _mismatch(f"this client is pinned to subaccount {number}: name orders by id")
        doc = {"orders": [{"order_id": i} for v in ids for i in v]}
    batches = [v for k, v in doc.items() if k.lower() == "orders" and isinstance(v, list)]
    # A batch names the subaccount per order; a single order at its top level.
    items = [i for batch in batches for i in batch if isinstance(i, dict)] if batches else [doc]
    for item in items:
        if not _pin_item(item, number):
            return _mismatch(f"this client is pinned to subaccount {number}")
    return Pinned(query, json.dumps(doc).encode())


def _pin_item(item: dict[str, Any], number: int) -> bool:
    """Name `number` in `item` if it names none; False if it names another."""
    named = [value for key, value in item.items() if key.lower() == _KEY]
    if any(value != number or isinstance(value, bool) for value in named):
        return False
    if not named:
        item[_KEY] = number
    return True


def _pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _mismatch(message: str) -> Refused:
    return Refused(403, "proxy_subaccount_mismatch", message)
