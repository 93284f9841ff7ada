"""The sandbox's wire format: Kalshi's errors, money and count strings, cursors,
strict JSON decoding of request bodies (as Kalshi's Go server does)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from signing_proxy.kalshi.verifier import kalshi_error

JSON = dict[str, Any]
_T = TypeVar("_T")

PREFIX: Final = "/trade-api/v2"
SANDBOX_USER_ID: Final = "5a9d3c1e-0b7f-4e2a-9c64-2f1d8e7b6a50"
STARTING_BALANCE: Final = Decimal("1000.0000")

CENT: Final = Decimal("0.01")
TIME_IN_FORCE: Final = ("fill_or_kill", "good_till_canceled", "immediate_or_cancel")
SELF_TRADE: Final = ("taker_at_cross", "maker")
_COUNT_RE: Final = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
_PRICE_RE: Final = re.compile(r"[0-9]+(\.[0-9]{1,6})?")


NOT_FOUND: Final = kalshi_error("not_found", "not found", service="exchange")
# Not recorded here; third parties report these bodies (Kalshi names no field in them).
INVALID_PARAMETERS: Final = kalshi_error("invalid_parameters", "invalid parameters")
# Kalshi's answer to the V1 order writes since spec 3.22 (third parties report the code and
# message, API_FACTS.md; the status is not recorded: 400, as for its other refusals).
V1_REMOVED: Final = kalshi_error(
    "deprecated_v1_order_endpoint", "Please switch to the V2 endpoints", service="exchange"
)
_INVALID_PRICE: Final = kalshi_error("invalid_price", "invalid price", service="exchange")
# A 2xx answer Kalshi sends with no body at all (its spec: "void (empty response body)").
NO_BODY: Final[JSON] = {}


# --- formatting -----------------------------------------------------------------------------


def dollars(amount: Decimal, places: int = 4) -> str:
    return f"{amount:.{places}f}"


def fixed_point(count: Decimal) -> str:
    return f"{count:.2f}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- request helpers ------------------------------------------------------------------------


class KalshiError(Exception):
    """An error answer in one of Kalshi's shapes, raised from inside a handler."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Call:
    params: tuple[str, ...]
    query: dict[str, list[str]]
    body: bytes


def _bad_request(details: str) -> KalshiError:
    # The flat shape Kalshi uses when the body fails to decode (wire/orders__numeric_field_types).
    return KalshiError(400, {"code": "bad_request", "message": "bad request", "details": details})


def param_error(operation: str, field: str, tag: str) -> KalshiError:
    # Go's validator wording, as recorded in wire/markets__limit_over_max.json.
    return KalshiError(
        400,
        {
            "msg": f"Parameter validation failed for {operation}: Key: '{operation}Params.{field}' "
            f"Error:Field validation for '{field}' failed on the '{tag}' tag"
        },
    )


def plain_int(raw: str) -> int | None:
    """`raw` as a decimal integer of ASCII digits (an optional '-'), or None.

    Not str.isdigit: it takes '³', which int() then refuses (a 500); nor int() alone: it
    takes ' 3' and '3_0', which Kalshi's Go parser refuses."""
    return int(raw) if _PLAIN_INT.fullmatch(raw) else None


_PLAIN_INT: Final = re.compile(r"-?[0-9]+")


def first_param(query: Mapping[str, list[str]], name: str) -> str:
    return query.get(name, [""])[0]


def limit_param(query: Mapping[str, list[str]], operation: str, tags: tuple[str, str]) -> int:
    raw = first_param(query, "limit")
    if not _PLAIN_INT.fullmatch(raw or "0"):
        # Not recorded from Kalshi: Go's parse error in the shape of its validation errors.
        message = f'strconv.ParseInt: parsing "{raw}": invalid syntax'
        raise KalshiError(400, {"msg": f"Invalid format for parameter limit: {message}"})
    limit = int(raw or "0")
    if limit < 0:
        raise param_error(operation, "Limit", tags[0])
    if limit > 1000:
        raise param_error(operation, "Limit", tags[1])
    return limit or 100  # "omitempty": Go's validator treats 0 as absent, hence the default


def page_limit(query: Mapping[str, list[str]], operation: str, maximum: int, default: int) -> int:
    """The `limit` query parameter of an operation with its own bounds: 1 to `maximum`."""
    if not first_param(query, "limit"):
        return default
    limit = limit_param(query, operation, ("min", "max"))
    if limit > maximum:
        raise param_error(operation, "Limit", "max")
    return limit


def refused(details: str) -> KalshiError:
    """A 400 saying what was wrong (not recorded from Kalshi: its code, our details)."""
    body = kalshi_error("invalid_parameters", "invalid parameters", details=details,
                        service="exchange")  # fmt: skip
    return KalshiError(400, body)


def _encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_cursor(query: Mapping[str, list[str]], kind: str) -> int | None:
    raw = first_param(query, "cursor")
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
    raise KalshiError(400, {"msg": f"Parameter validation failed: invalid cursor {raw!r}"})


def paginate(
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


def decode_body(body: bytes, struct: str, types: Mapping[str, str]) -> JSON:
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
    return typed(doc, struct, types)


def typed(doc: object, struct: str, types: Mapping[str, str]) -> JSON:
    """`doc` if it is an object whose known fields have their Go types; else Kalshi's 400."""
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


def choice(doc: JSON, name: str, allowed: Sequence[str], default: str | None = None) -> str:
    value = doc.get(name) or default
    if value not in allowed:
        raise KalshiError(400, INVALID_PARAMETERS)
    return str(value)


def parse_count(value: object) -> Decimal:
    if not isinstance(value, str) or not _COUNT_RE.fullmatch(value) or Decimal(value) <= 0:
        raise KalshiError(400, INVALID_PARAMETERS)
    return Decimal(value)


def parse_price(value: object) -> Decimal:
    # Every generated market is "linear_cent": whole cents strictly between 0 and 1.
    if not isinstance(value, str) or not _PRICE_RE.fullmatch(value):
        raise KalshiError(400, _INVALID_PRICE)
    price = Decimal(value)
    if not CENT <= price <= 1 - CENT or price % CENT:
        raise KalshiError(400, _INVALID_PRICE)
    return price
