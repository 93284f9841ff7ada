"""An offline Kalshi-like upstream that verifies every signature exactly as Kalshi does.

It serves a realistic slice of Trade API v2 from memory (markets, orders, positions,
balance) so the proxy and its tests run without an account or a network. It knows
nothing of the proxy: only Kalshi's wire protocol (kalshi/API_FACTS.md, openapi.yaml).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import parse_qs, unquote

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from signing_proxy.kalshi.protocol import HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP
from signing_proxy.kalshi.verifier import check_auth, kalshi_error, parse_ms

JSON = dict[str, Any]
_T = TypeVar("_T")

PREFIX: Final = "/trade-api/v2"
SANDBOX_USER_ID: Final = "5a9d3c1e-0b7f-4e2a-9c64-2f1d8e7b6a50"
STARTING_BALANCE: Final = Decimal("1000.0000")

_CENT: Final = Decimal("0.01")
_TIME_IN_FORCE: Final = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
_SELF_TRADE: Final = ("taker_at_cross", "maker")
_COUNT_RE: Final = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
_PRICE_RE: Final = re.compile(r"[0-9]+(\.[0-9]{1,6})?")


_NOT_FOUND: Final = kalshi_error("not_found", "not found", service="exchange")
# Not recorded here; third parties report these bodies (Kalshi names no field in them).
_INVALID_PARAMETERS: Final = kalshi_error("invalid_parameters", "invalid parameters")
_INVALID_PRICE: Final = kalshi_error("invalid_price", "invalid price", service="exchange")


# --- formatting -----------------------------------------------------------------------------


def _dollars(amount: Decimal, places: int = 4) -> str:
    return f"{amount:.{places}f}"


def _fp(count: Decimal) -> str:
    return f"{count:.2f}"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- generated markets ----------------------------------------------------------------------

_BASE_DAY: Final = datetime(2026, 6, 12, tzinfo=UTC)


class _Outcome(NamedTuple):
    suffix: str
    title: str
    subtitle: str
    rules: str
    fair: str  # the YES price the book is quoted around
    strike: JSON


def _temperature(when: datetime) -> Iterator[_Outcome]:
    date = f"{when:%b} {when.day}, {when.year}"
    fairs = ("0.04", "0.12", "0.31", "0.33", "0.15", "0.05")
    for i, fair in enumerate(fairs):
        low, high = 70 + 2 * i, 71 + 2 * i
        yield _Outcome(
            f"B{low}.5",
            f"Will the high temp in NYC be {low}-{high}° on {date}?",
            f"{low}° to {high}°",
            f"If the highest temperature recorded in Central Park, New York for {date} is "
            f"between {low}° and {high}°, then the market resolves to Yes.",
            fair,
            {"strike_type": "between", "floor_strike": low, "cap_strike": high},
        )


def _bitcoin(when: datetime) -> Iterator[_Outcome]:
    date = f"{when:%b} {when.day}, {when.year}"
    for i in range(10):
        level = 103_750 + 500 * i
        yield _Outcome(
            f"T{level - 0.01:.2f}",
            f"Bitcoin price on {date} at 5pm EDT?",
            f"${level:,} or above",
            f"If the simple average of the sixty seconds of CF Benchmarks' Bitcoin Real-Time "
            f"Index before 5 PM EDT on {date} is above {level - 0.01:.2f}, then the market "
            f"resolves to Yes.",
            str(Decimal("0.97") - Decimal("0.095") * i),
            {"strike_type": "greater", "floor_strike": level - 0.01},
        )


def _fed(when: datetime) -> Iterator[_Outcome]:
    month = f"{when:%b} {when.year}"
    choices = (
        ("C26", "Cut >25bps", "0.02"),
        ("C25", "Cut 25bps", "0.18"),
        ("H0", "Hold", "0.74"),
        ("H25", "Hike 25bps", "0.05"),
        ("H26", "Hike >25bps", "0.01"),
    )
    for suffix, label, fair in choices:
        yield _Outcome(
            suffix,
            f"Fed decision in {month}?",
            label,
            f"If the Federal Reserve's decision at its {month} meeting is {label.lower()}, "
            f"then the market resolves to Yes.",
            fair,
            {"strike_type": "structured"},
        )


_TEAMS: Final = {
    "NYY": "New York Y", "BOS": "Boston", "LAD": "Los Angeles D", "SF": "San Francisco",
    "CHC": "Chicago C", "STL": "St. Louis", "HOU": "Houston", "TEX": "Texas",
    "ATL": "Atlanta", "PHI": "Philadelphia", "SEA": "Seattle", "SD": "San Diego",
}  # fmt: skip


def _baseball(away: str, home: str, home_fair: str) -> Callable[[datetime], Iterator[_Outcome]]:
    def outcomes(when: datetime) -> Iterator[_Outcome]:
        matchup = f"{_TEAMS[away]} vs {_TEAMS[home]}"
        for team, fair in ((away, str(1 - Decimal(home_fair))), (home, home_fair)):
            yield _Outcome(
                team,
                f"{matchup} Winner?",
                _TEAMS[team],
                f"If {_TEAMS[team]} wins the {matchup} professional baseball game scheduled "
                f"for {when:%b} {when.day}, {when.year}, then the market resolves to Yes.",
                fair,
                {"strike_type": "structured"},
            )

    return outcomes


# (event ticker, status of its markets, days after _BASE_DAY, outcome generator); 60 markets.
_EVENTS: Final[tuple[tuple[str, str, int, Callable[[datetime], Iterator[_Outcome]]], ...]] = (
    ("KXHIGHNY-26JUN12", "active", 0, _temperature),
    ("KXBTCD-26JUN1217", "active", 0, _bitcoin),
    ("KXMLBGAME-26JUN12NYYBOS", "active", 0, _baseball("NYY", "BOS", "0.54")),
    ("KXMLBGAME-26JUN12LADSF", "active", 0, _baseball("LAD", "SF", "0.41")),
    ("KXMLBGAME-26JUN12CHCSTL", "active", 0, _baseball("CHC", "STL", "0.49")),
    ("KXFEDDECISION-26JUL", "active", 47, _fed),
    ("KXFEDDECISION-26SEP", "active", 96, _fed),
    ("KXBTCD-26JUN1317", "initialized", 1, _bitcoin),
    ("KXHIGHNY-26JUN13", "initialized", 1, _temperature),
    ("KXMLBGAME-26JUN13HOUTEX", "initialized", 1, _baseball("HOU", "TEX", "0.52")),
    ("KXMLBGAME-26JUN11ATLPHI", "closed", -1, _baseball("ATL", "PHI", "0.57")),
    ("KXMLBGAME-26JUN11SEASD", "closed", -1, _baseball("SEA", "SD", "0.45")),
    ("KXHIGHNY-26JUN11", "finalized", -1, _temperature),
)


def _quotes(fair: Decimal | None, seq: int) -> JSON:
    # An unopened or finished market has an empty book; Kalshi then shows 0 for YES and 1 for NO.
    bid = ask = Decimal(0)
    if fair is not None:
        bid, ask = max(fair - _CENT, _CENT), min(fair + _CENT, 1 - _CENT)
    size = Decimal(0) if fair is None else Decimal(25 + seq * 37 % 400)
    return {
        "yes_bid_dollars": _dollars(bid),
        "yes_ask_dollars": _dollars(ask),
        "no_bid_dollars": _dollars(1 - ask),
        "no_ask_dollars": _dollars(1 - bid),
        "yes_bid_size_fp": _fp(size),
        "yes_ask_size_fp": _fp(size + 15),
    }


def _market(
    event: str, status: str, when: datetime, outcome: _Outcome, seq: int, result: str
) -> JSON:
    fair = Decimal(outcome.fair).quantize(_CENT)
    opened, closes = when - timedelta(days=3), when + timedelta(hours=23, minutes=59)
    volume = Decimal(seq * 1_531 % 40_000)
    return {
        "can_close_early": True,
        "close_time": _iso(closes),
        "created_time": _iso(opened - timedelta(hours=2)),
        "early_close_condition": "This market will close and expire after the outcome is known.",
        "event_ticker": event,
        "expected_expiration_time": _iso(closes + timedelta(hours=2)),
        "expiration_time": _iso(closes + timedelta(days=7)),
        "expiration_value": "",
        "fractional_trading_enabled": True,
        "last_price_dollars": _dollars(fair),
        "latest_expiration_time": _iso(closes + timedelta(days=7)),
        "liquidity_dollars": _dollars(Decimal(seq * 977 % 9_000)),
        "market_type": "binary",
        "no_sub_title": outcome.subtitle,
        "notional_value_dollars": "1.0000",
        "open_interest_fp": _fp(volume // 3),
        "open_time": _iso(opened),
        "previous_price_dollars": _dollars(fair),
        "previous_yes_ask_dollars": _dollars(min(fair + _CENT, 1 - _CENT)),
        "previous_yes_bid_dollars": _dollars(max(fair - _CENT, _CENT)),
        "price_level_structure": "linear_cent",
        "price_ranges": [{"end": "1.0000", "start": "0.0000", "step": "0.0100"}],
        "response_price_units": "usd_cent",
        "result": result,
        "rules_primary": outcome.rules,
        "rules_secondary": "",
        "settlement_timer_seconds": 300,
        "status": status,
        "ticker": f"{event}-{outcome.suffix}",
        "title": outcome.title,
        "updated_time": _iso(opened),
        "volume_24h_fp": _fp(volume // 10),
        "volume_fp": _fp(volume),
        "yes_sub_title": outcome.subtitle,
        **_quotes(fair if status == "active" else None, seq),
        **outcome.strike,
    }


def _generate_markets() -> list[JSON]:
    markets: list[JSON] = []
    for event, status, days, outcomes in _EVENTS:
        when = _BASE_DAY + timedelta(days=days, hours=21)
        event_outcomes = list(outcomes(when))
        # A settled event has exactly one winning market: the favourite, here.
        winner = max(event_outcomes, key=lambda outcome: Decimal(outcome.fair))
        for outcome in event_outcomes:
            result = ("yes" if outcome is winner else "no") if status == "finalized" else ""
            markets.append(_market(event, status, when, outcome, len(markets), result))
    return markets


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the sandbox received it, for tests to inspect."""

    method: str
    raw_path: str  # path and query exactly as received (request.raw_path), never decoded
    key_id: str | None
    authenticated: bool  # a valid signature was verified
    auth_error: str | None  # Kalshi's error `details`, else its `code`, when verification failed
    timestamp_ms: int | None
    body: bytes  # as received, byte for byte


@dataclass(slots=True)
class _Order:
    seq: int
    order_id: str
    client_order_id: str
    ticker: str
    side: str  # legacy yes|no, kept as the client sent it
    action: str  # legacy buy|sell
    book_side: str  # bid buys YES; ask sells YES (that is, buys NO)
    yes_price: Decimal
    initial_count: Decimal
    remaining_count: Decimal
    self_trade_prevention_type: str
    created_ms: int
    updated_ms: int
    status: str = "resting"
    fill_count: Decimal = Decimal(0)
    fill_cost: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    def to_json(self) -> JSON:
        return {
            "action": self.action,
            "book_side": self.book_side,
            "client_order_id": self.client_order_id,
            "created_time": _iso_ms(self.created_ms),
            "fill_count_fp": _fp(self.fill_count),
            "initial_count_fp": _fp(self.initial_count),
            "last_update_time": _iso_ms(self.updated_ms),
            "maker_fees_dollars": "0.000000",
            "maker_fill_cost_dollars": "0.000000",
            "no_price_dollars": _dollars(1 - self.yes_price),
            "order_id": self.order_id,
            "outcome_side": "yes" if self.book_side == "bid" else "no",
            "remaining_count_fp": _fp(self.remaining_count),
            "self_trade_prevention_type": self.self_trade_prevention_type,
            "side": self.side,
            "status": self.status,
            "subaccount_number": 0,
            "taker_fees_dollars": _dollars(self.fees, 6),
            "taker_fill_cost_dollars": _dollars(self.fill_cost, 6),
            "ticker": self.ticker,
            "type": "limit",
            "user_id": SANDBOX_USER_ID,
            "yes_price_dollars": _dollars(self.yes_price),
        }


@dataclass(slots=True)
class _Position:
    ticker: str
    event_ticker: str
    updated_ms: int
    position: Decimal = Decimal(0)  # positive: YES contracts; negative: NO contracts
    exposure: Decimal = Decimal(0)  # what the open contracts cost
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    traded: Decimal = Decimal(0)
    traded_count: Decimal = Decimal(0)


class SandboxState:
    """What the sandbox remembers: keys, markets, orders, positions, balance, requests seen."""

    def __init__(
        self,
        keys: Mapping[str, RSAPublicKey],
        *,
        clock: Callable[[], float],
        window_ms: int,
        require_auth_everywhere: bool,
    ) -> None:
        self.keys: dict[str, RSAPublicKey] = dict(keys)
        self.clock = clock
        self.window_ms = window_ms
        self.require_auth_everywhere = require_auth_everywhere
        self.markets: dict[str, JSON] = {m["ticker"]: m for m in _generate_markets()}
        self.orders: dict[str, _Order] = {}
        # Kalshi never lets a client_order_id be reused, even after the order is gone.
        self.client_order_ids: set[str] = set()
        self.positions: dict[str, _Position] = {}
        self.balance: Decimal = STARTING_BALANCE
        self.seen: deque[SeenRequest] = deque(maxlen=10_000)

    def now_ms(self) -> int:
        """The sandbox clock in milliseconds since the epoch."""
        return int(self.clock() * 1000)


SANDBOX_STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)


# --- request helpers ------------------------------------------------------------------------


class _KalshiError(Exception):
    """An error answer in one of Kalshi's shapes, raised from inside a handler."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class _Call:
    params: tuple[str, ...]
    query: dict[str, list[str]]
    body: bytes


def _bad_request(details: str) -> _KalshiError:
    # The flat shape Kalshi uses when the body fails to decode (wire/orders__numeric_field_types).
    return _KalshiError(400, {"code": "bad_request", "message": "bad request", "details": details})


def _param_error(operation: str, field: str, tag: str) -> _KalshiError:
    # Go's validator wording, as recorded in wire/markets__limit_over_max.json.
    return _KalshiError(
        400,
        {
            "msg": f"Parameter validation failed for {operation}: Key: '{operation}Params.{field}' "
            f"Error:Field validation for '{field}' failed on the '{tag}' tag"
        },
    )


def _first(query: Mapping[str, list[str]], name: str) -> str:
    return query.get(name, [""])[0]


def _limit(query: Mapping[str, list[str]], operation: str, tags: tuple[str, str]) -> int:
    raw = _first(query, "limit")
    if not re.fullmatch(r"-?[0-9]+", raw or "0"):
        # Not recorded from Kalshi: Go's parse error in the shape of its validation errors.
        message = f'strconv.ParseInt: parsing "{raw}": invalid syntax'
        raise _KalshiError(400, {"msg": f"Invalid format for parameter limit: {message}"})
    limit = int(raw or "0")
    if limit < 0:
        raise _param_error(operation, "Limit", tags[0])
    if limit > 1000:
        raise _param_error(operation, "Limit", tags[1])
    return limit or 100  # "omitempty": Go's validator treats 0 as absent, hence the default


def _encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _decode_cursor(query: Mapping[str, list[str]], kind: str) -> int | None:
    raw = _first(query, "cursor")
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        seen_kind, _, position = text.partition(":")
        if seen_kind == kind:
            return int(position)
    except ValueError:
        pass
    # Not recorded from Kalshi: the bare shape of its other parameter errors.
    raise _KalshiError(400, {"msg": f"Parameter validation failed: invalid cursor {raw!r}"})


def _paginate(
    items: Sequence[_T], position: Callable[[_T], int], after: int | None, limit: int, kind: str
) -> tuple[list[_T], str]:
    """One page of `items` (ordered by ascending position) and the next cursor, "" on the last."""
    rest = [item for item in items if after is None or position(item) > after]
    page = rest[:limit]
    return page, _encode_cursor(kind, position(page[-1])) if len(rest) > limit else ""


def _go_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "number"


def _fits(value: object, go_type: str) -> bool:
    if go_type in ("int", "int64"):
        return isinstance(value, int) and not isinstance(value, bool)
    return _go_kind(value) == go_type


def _decode(body: bytes, struct: str, types: Mapping[str, str]) -> JSON:
    """Decode a JSON object as Go's encoding/json would, failing with Kalshi's flat 400."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        text = body.decode("utf-8", "replace").rstrip()
        position = getattr(exc, "pos", 0)
        # Go's wording for the common cases; rarer syntax errors are worded approximately.
        if not text:
            raise _bad_request("EOF") from None
        if position >= len(text):
            raise _bad_request("unexpected EOF") from None
        details = f"invalid character '{text[position]}' looking for beginning of value"
        raise _bad_request(details) from None
    if not isinstance(doc, dict):
        raise _bad_request(f"json: cannot unmarshal {_go_kind(doc)} into Go value of type {struct}")
    # Go reports the first mistyped field in document order, as Python's dict keeps it.
    for name, value in doc.items():
        expected = types.get(name)
        if expected and value is not None and not _fits(value, expected):
            kind = _go_kind(value)
            if kind == "number":
                kind = f"number {value}" if expected.startswith("int") else kind
            raise _bad_request(
                f"json: cannot unmarshal {kind} into Go struct field {struct}.{name} "
                f"of type {expected}"
            )
    return doc


def _choice(doc: JSON, name: str, allowed: Sequence[str], default: str | None = None) -> str:
    value = doc.get(name) or default
    if value not in allowed:
        raise _KalshiError(400, _INVALID_PARAMETERS)
    return str(value)


def _parse_count(value: object) -> Decimal:
    if not isinstance(value, str) or not _COUNT_RE.fullmatch(value) or Decimal(value) <= 0:
        raise _KalshiError(400, _INVALID_PARAMETERS)
    return Decimal(value)


def _parse_price(value: object) -> Decimal:
    # Every generated market is "linear_cent": whole cents strictly between 0 and 1.
    if not isinstance(value, str) or not _PRICE_RE.fullmatch(value):
        raise _KalshiError(400, _INVALID_PRICE)
    price = Decimal(value)
    if not _CENT <= price <= 1 - _CENT or price % _CENT:
        raise _KalshiError(400, _INVALID_PRICE)
    return price


def _market_or_404(state: SandboxState, ticker: str) -> JSON:
    market = state.markets.get(ticker)
    if market is None:
        raise _KalshiError(404, _NOT_FOUND)
    return market


def _order_or_404(state: SandboxState, order_id: str, *, resting: bool = False) -> _Order:
    order = state.orders.get(order_id)
    if order is None or (resting and order.status != "resting"):
        raise _KalshiError(404, _NOT_FOUND)
    return order


def _claim_client_order_id(state: SandboxState, client_order_id: str) -> None:
    if client_order_id in state.client_order_ids:
        raise _KalshiError(
            409, kalshi_error("order_already_exists", "order already exists", service="exchange")
        )
    state.client_order_ids.add(client_order_id)


# --- matching -------------------------------------------------------------------------------


def _taker_fee(count: Decimal, price: Decimal) -> Decimal:
    # Kalshi's taker fee, 0.07 x C x P x (1 - P), rounded up to a hundredth of a cent.
    fee = Decimal("0.07") * count * price * (1 - price)
    return fee.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def _apply_fill(state: SandboxState, order: _Order, count: Decimal, price: Decimal) -> None:
    """Book a taker fill of `count` contracts at YES `price` into the balance and position."""
    buying_yes = order.book_side == "bid"
    cost = count * (price if buying_yes else 1 - price)
    fee = _taker_fee(count, price)
    order.fill_count += count
    order.remaining_count -= count
    order.fill_cost += cost
    order.fees += fee
    order.status = "executed" if not order.remaining_count else order.status
    state.balance -= cost + fee
    pos = state.positions[order.ticker]
    pos.traded, pos.traded_count, pos.fees = (
        pos.traded + cost,
        pos.traded_count + count,
        pos.fees + fee,
    )
    pos.updated_ms = order.updated_ms
    sign = 1 if buying_yes else -1
    closing = min(count, abs(pos.position)) if (pos.position > 0) != buying_yes else Decimal(0)
    if closing:
        # A YES and a NO contract together always pay $1: netting them releases that $1 now.
        average = pos.exposure / abs(pos.position)
        pos.realized_pnl += closing * (1 - average - cost / count)
        pos.exposure -= closing * average
        pos.position += sign * closing
        state.balance += closing
    pos.position += sign * (count - closing)
    pos.exposure += (count - closing) * cost / count
    market = state.markets[order.ticker]
    market["last_price_dollars"] = _dollars(price)
    market["volume_fp"] = _fp(Decimal(market["volume_fp"]) + count)
    market["volume_24h_fp"] = _fp(Decimal(market["volume_24h_fp"]) + count)


def _match(state: SandboxState, order: _Order, time_in_force: str) -> None:
    """Fill an order that crosses the quoted book at the touch; otherwise it rests."""
    market = state.markets[order.ticker]
    bid, ask = Decimal(market["yes_bid_dollars"]), Decimal(market["yes_ask_dollars"])
    # The quoted size is treated as unlimited: a crossing order fills completely.
    if order.book_side == "bid" and ask and order.yes_price >= ask:
        _apply_fill(state, order, order.remaining_count, ask)
    elif order.book_side == "ask" and bid and order.yes_price <= bid:
        _apply_fill(state, order, order.remaining_count, bid)
    if order.remaining_count and time_in_force != "good_till_canceled":
        order.remaining_count, order.status = Decimal(0), "canceled"


def _place(
    state: SandboxState, doc: JSON, *, side: str, action: str, yes_price: Decimal, count: Decimal
) -> _Order:
    """Create an order from validated fields, match it, and remember it."""
    time_in_force = _choice(doc, "time_in_force", _TIME_IN_FORCE, "good_till_canceled")
    self_trade = _choice(doc, "self_trade_prevention_type", _SELF_TRADE, "taker_at_cross")
    market = _market_or_404(state, doc["ticker"])
    if market["status"] != "active":
        # Not recorded from Kalshi: the shape of its other exchange errors.
        raise _KalshiError(400, kalshi_error("market_closed", "market closed", service="exchange"))
    client_order_id = str(doc.get("client_order_id") or uuid.uuid4())
    _claim_client_order_id(state, client_order_id)
    now = state.now_ms()
    order = _Order(
        seq=len(state.orders) + 1,
        order_id=str(uuid.uuid4()),
        client_order_id=client_order_id,
        ticker=market["ticker"],
        side=side,
        action=action,
        book_side="bid" if (side == "yes") == (action == "buy") else "ask",
        yes_price=yes_price,
        initial_count=count,
        remaining_count=count,
        self_trade_prevention_type=self_trade,
        created_ms=now,
        updated_ms=now,
    )
    state.orders[order.order_id] = order
    state.positions.setdefault(order.ticker, _Position(order.ticker, market["event_ticker"], now))
    _match(state, order, time_in_force)
    return order


# --- handlers -------------------------------------------------------------------------------

_V2_TYPES: Final = {
    "ticker": "string", "client_order_id": "string", "side": "string", "count": "string",
    "price": "string", "time_in_force": "string", "self_trade_prevention_type": "string",
    "order_group_id": "string", "expiration_time": "int64", "post_only": "bool",
    "reduce_only": "bool", "cancel_order_on_pause": "bool", "subaccount": "int",
}  # fmt: skip
_LEGACY_TYPES: Final = {
    "ticker": "string", "client_order_id": "string", "side": "string", "action": "string",
    "count": "int", "count_fp": "string", "yes_price": "int", "no_price": "int",
    "yes_price_dollars": "string", "no_price_dollars": "string", "time_in_force": "string",
    "self_trade_prevention_type": "string", "expiration_ts": "int64", "buy_max_cost": "int",
    "post_only": "bool", "reduce_only": "bool", "subaccount": "int",
    "updated_client_order_id": "string",
}  # fmt: skip
_PRICE_FIELDS: Final = ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars")


def _legacy_yes_price(doc: JSON) -> Decimal:
    given = [name for name in _PRICE_FIELDS if doc.get(name) not in (None, 0, "")]
    if len(given) != 1:
        # Reported by third parties (not recorded here).
        details = "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars"
        raise _KalshiError(
            400,
            kalshi_error("invalid_order", "invalid order", details=f"{details} should be provided"),
        )
    name = given[0]
    if name.endswith("_dollars"):
        price = _parse_price(doc[name])
    else:
        price = _parse_price(str(Decimal(doc[name]) / 100))
    return price if name.startswith("yes") else 1 - price


def _legacy_count(doc: JSON, default: Decimal | None = None) -> Decimal:
    count, count_fp = doc.get("count"), doc.get("count_fp")
    if count_fp is not None:
        parsed = _parse_count(count_fp)
        if count and Decimal(count) != parsed:
            raise _KalshiError(400, _INVALID_PARAMETERS)
        return parsed
    if count is None and default is not None:
        return default
    if not isinstance(count, int) or count < 1:
        raise _KalshiError(400, _INVALID_PARAMETERS)
    return Decimal(count)


def _exchange_status(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"exchange_active": True, "trading_active": True}


def _account_limits(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {
        "grants": [],
        "read": {"bucket_capacity": 200, "refill_rate": 200},
        "usage_tier": "basic",
        "write": {"bucket_capacity": 100, "refill_rate": 100},
    }


_MARKET_STATUS: Final = {
    "unopened": ("initialized",),
    "open": ("active",),
    "paused": ("inactive",),
    "closed": ("closed",),
    "settled": ("determined", "finalized"),
}


def _list_markets(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    limit = _limit(call.query, "GetMarkets", ("gte", "lte"))
    after = _decode_cursor(call.query, "markets")
    status = _first(call.query, "status")
    if status and status not in _MARKET_STATUS:
        raise _param_error("GetMarkets", "Status", "oneof")
    event, series = _first(call.query, "event_ticker"), _first(call.query, "series_ticker")
    tickers = {t for t in _first(call.query, "tickers").split(",") if t}
    rows = [
        (i, m)
        for i, m in enumerate(state.markets.values())
        if (not status or m["status"] in _MARKET_STATUS[status])
        and (not event or m["event_ticker"] == event)
        and (not series or m["event_ticker"].split("-")[0] == series)
        and (not tickers or m["ticker"] in tickers)
    ]
    page, cursor = _paginate(rows, lambda row: row[0], after, limit, "markets")
    return 200, {"cursor": cursor, "markets": [market for _, market in page]}


def _get_market(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"market": _market_or_404(state, call.params[0])}


def _balance(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    exposure = sum((p.exposure for p in state.positions.values()), Decimal(0))
    return 200, {
        "balance": int(state.balance * 100),
        "balance_breakdown": [{"balance": _dollars(state.balance), "exchange_index": 0}],
        "balance_dollars": _dollars(state.balance),
        "portfolio_value": int(exposure * 100),
        "updated_ts": state.now_ms() // 1000,
    }


def _positions(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    ticker, event = _first(call.query, "ticker"), _first(call.query, "event_ticker")
    chosen = [
        p
        for p in sorted(state.positions.values(), key=lambda p: p.ticker)
        if (not ticker or p.ticker == ticker) and (not event or p.event_ticker == event)
    ]
    resting: dict[str, Decimal] = {}
    for order in state.orders.values():
        if order.status == "resting":
            resting[order.ticker] = resting.get(order.ticker, Decimal(0)) + order.remaining_count
    market_positions = [
        {
            "fees_paid_dollars": _dollars(p.fees, 6),
            "last_updated_ts": _iso_ms(p.updated_ms),
            "market_exposure_dollars": _dollars(p.exposure, 6),
            "position_fp": _fp(p.position),
            "realized_pnl_dollars": _dollars(p.realized_pnl, 6),
            "resting_orders_count": int(resting.get(p.ticker, 0)),
            "ticker": p.ticker,
            "total_traded_dollars": _dollars(p.traded, 6),
        }
        for p in chosen
    ]
    events: dict[str, list[_Position]] = {}
    for p in chosen:
        events.setdefault(p.event_ticker, []).append(p)
    event_positions = [
        {
            "event_exposure_dollars": _dollars(sum((p.exposure for p in ps), Decimal(0)), 6),
            "event_ticker": name,
            "fees_paid_dollars": _dollars(sum((p.fees for p in ps), Decimal(0)), 6),
            "realized_pnl_dollars": _dollars(sum((p.realized_pnl for p in ps), Decimal(0)), 6),
            "total_cost_dollars": _dollars(sum((p.traded for p in ps), Decimal(0)), 6),
            "total_cost_shares_fp": _fp(sum((p.traded_count for p in ps), Decimal(0))),
        }
        for name, ps in events.items()
    ]
    return 200, {
        "cursor": "",
        "event_positions": event_positions,
        "market_positions": market_positions,
    }


def _list_orders(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    limit = _limit(call.query, "GetOrders", ("min", "max"))
    after = _decode_cursor(call.query, "orders")
    ticker, status = _first(call.query, "ticker"), _first(call.query, "status")
    events = {e for e in _first(call.query, "event_ticker").split(",") if e}
    newest_first = [
        o
        for o in sorted(state.orders.values(), key=lambda o: -o.seq)
        if (not ticker or o.ticker == ticker)
        and (not status or o.status == status)
        and (not events or state.markets[o.ticker]["event_ticker"] in events)
    ]
    page, cursor = _paginate(newest_first, lambda o: -o.seq, after, limit, "orders")
    return 200, {"cursor": cursor, "orders": [o.to_json() for o in page]}


def _get_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    return 200, {"order": _order_or_404(state, call.params[0]).to_json()}


def _create_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "CreateOrderRequest", _LEGACY_TYPES)
    if not doc.get("ticker"):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    side, action = _choice(doc, "side", ("yes", "no")), _choice(doc, "action", ("buy", "sell"))
    count, price = _legacy_count(doc), _legacy_yes_price(doc)
    order = _place(state, doc, side=side, action=action, yes_price=price, count=count)
    return 201, {"order": order.to_json()}


def _create_order_v2(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "CreateOrderV2Request", _V2_TYPES)
    book_side = _choice(doc, "side", ("bid", "ask"))
    _choice(doc, "time_in_force", _TIME_IN_FORCE)  # required here, unlike the legacy endpoint
    _choice(doc, "self_trade_prevention_type", _SELF_TRADE)
    if not doc.get("ticker"):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    count, price = _parse_count(doc.get("count")), _parse_price(doc.get("price"))
    # The V2 book is quoted from the YES side: bid buys YES, ask sells it.
    action = "buy" if book_side == "bid" else "sell"
    order = _place(state, doc, side="yes", action=action, yes_price=price, count=count)
    answer: JSON = {
        "client_order_id": order.client_order_id,
        "fill_count": _fp(order.fill_count),
        "order_id": order.order_id,
        "remaining_count": _fp(order.remaining_count),
        "ts_ms": order.created_ms,
    }
    if order.fill_count:
        answer["average_fill_price"] = _dollars(order.fill_cost / order.fill_count)
        answer["average_fee_paid"] = _dollars(order.fees / order.fill_count)
    return 201, answer


def _amend_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    doc = _decode(call.body, "AmendOrderRequest", _LEGACY_TYPES)
    side, action = _choice(doc, "side", ("yes", "no")), _choice(doc, "action", ("buy", "sell"))
    yes_price = _legacy_yes_price(doc)
    order = _order_or_404(state, call.params[0], resting=True)
    book_side = "bid" if (side == "yes") == (action == "buy") else "ask"
    # `count` is the new maximum fillable: what has filled plus what should rest.
    total = _legacy_count(doc, default=order.fill_count + order.remaining_count)
    if (
        doc.get("ticker") != order.ticker
        or book_side != order.book_side
        or total <= order.fill_count
    ):
        raise _KalshiError(400, _INVALID_PARAMETERS)
    new_client_order_id = doc.get("updated_client_order_id")
    if new_client_order_id and new_client_order_id != order.client_order_id:
        _claim_client_order_id(state, new_client_order_id)
        order.client_order_id = new_client_order_id
    old = order.to_json()
    order.yes_price, order.remaining_count = yes_price, total - order.fill_count
    order.updated_ms = state.now_ms()
    _match(state, order, "good_till_canceled")
    return 200, {"old_order": old, "order": order.to_json()}


def _cancel(state: SandboxState, order_id: str) -> tuple[_Order, Decimal]:
    order = _order_or_404(state, order_id, resting=True)
    reduced = order.remaining_count
    order.remaining_count, order.status, order.updated_ms = Decimal(0), "canceled", state.now_ms()
    return order, reduced


def _cancel_order(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    order, reduced = _cancel(state, call.params[0])
    # `reduced_by_fp` is today's field (openapi.yaml); `reduced_by` is the older integer one.
    return 200, {
        "order": order.to_json(),
        "reduced_by": int(reduced),
        "reduced_by_fp": _fp(reduced),
    }


def _cancel_order_v2(state: SandboxState, call: _Call) -> tuple[int, JSON]:
    order, reduced = _cancel(state, call.params[0])
    return 200, {
        "client_order_id": order.client_order_id,
        "order_id": order.order_id,
        "reduced_by": _fp(reduced),
        "ts_ms": order.updated_ms,
    }


# --- routing --------------------------------------------------------------------------------

_Handler = Callable[[SandboxState, _Call], tuple[int, JSON]]


class _Route(NamedTuple):
    method: str
    segments: tuple[str, ...]  # "{}" marks a path parameter
    handler: _Handler
    public: bool = False  # Kalshi serves it without a signature


_ROUTES: Final = (
    _Route("GET", ("exchange", "status"), _exchange_status, public=True),
    _Route("GET", ("markets",), _list_markets, public=True),
    _Route("GET", ("markets", "{}"), _get_market, public=True),
    _Route("GET", ("account", "limits"), _account_limits),
    _Route("GET", ("portfolio", "balance"), _balance),
    _Route("GET", ("portfolio", "positions"), _positions),
    _Route("GET", ("portfolio", "orders"), _list_orders),
    _Route("POST", ("portfolio", "orders"), _create_order),
    _Route("GET", ("portfolio", "orders", "{}"), _get_order),
    _Route("DELETE", ("portfolio", "orders", "{}"), _cancel_order),
    _Route("POST", ("portfolio", "orders", "{}", "amend"), _amend_order),
    _Route("POST", ("portfolio", "events", "orders"), _create_order_v2),
    _Route("DELETE", ("portfolio", "events", "orders", "{}"), _cancel_order_v2),
)


def _match_route(method: str, path: str) -> tuple[_Route, tuple[str, ...]] | None:
    # Split the raw path before decoding, so an encoded "/" (%2F) stays inside its segment.
    parts = [unquote(part) for part in path.removeprefix(PREFIX + "/").split("/")]
    for route in _ROUTES:
        if route.method != method or len(route.segments) != len(parts):
            continue
        pairs = list(zip(route.segments, parts, strict=True))
        if all(want == got or (want == "{}" and got) for want, got in pairs):
            return route, tuple(got for want, got in pairs if want == "{}")
    return None


def _authenticate(
    state: SandboxState, request: web.Request, route: _Route | None
) -> tuple[bool, tuple[int, JSON] | None]:
    """Whether the request carries a valid signature, and the 401 to answer when it must."""
    headers = request.headers
    signed = any(name in headers for name in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_SIGNATURE))
    if route is not None and route.public and not signed and not state.require_auth_everywhere:
        return False, None
    now, window = state.now_ms(), state.window_ms
    failure = check_auth(headers, request.method, request.raw_path, state.keys, now, window)
    return failure is None, failure


def _json_response(status: int, payload: JSON, *, sort_keys: bool = False) -> web.Response:
    # Compact and unescaped UTF-8, like Go's encoder; Kalshi's data bodies have sorted keys.
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return web.Response(status=status, text=text, content_type="application/json")


async def handle_request(request: web.Request) -> web.Response:
    """Answer one request to the offline exchange, as Kalshi would."""
    state = request.app[SANDBOX_STATE]
    body = await request.read()
    path, _, raw_query = request.raw_path.partition("?")
    under_api = path == PREFIX or path.startswith(PREFIX + "/")
    matched = _match_route(request.method, path) if under_api else None
    authenticated, failure = False, None
    if under_api:  # outside the API Kalshi answers 404 whatever the headers say
        authenticated, failure = _authenticate(state, request, matched[0] if matched else None)
    error = failure[1]["error"] if failure else None
    state.seen.append(
        SeenRequest(
            method=request.method,
            raw_path=request.raw_path,
            key_id=request.headers.get(HEADER_KEY) or None,
            authenticated=authenticated,
            auth_error=None if error is None else error.get("details", error["code"]),
            timestamp_ms=parse_ms(request.headers.get(HEADER_TIMESTAMP)),
            body=body,
        )
    )
    if failure is not None:
        return _json_response(*failure)
    if matched is None:
        return _json_response(404, _NOT_FOUND)
    route, params = matched
    query = parse_qs(raw_query, keep_blank_values=True)
    try:
        status, payload = route.handler(state, _Call(params, query, body))
    except _KalshiError as exc:
        return _json_response(exc.status, exc.body)
    return _json_response(status, payload, sort_keys=True)
