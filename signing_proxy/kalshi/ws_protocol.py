"""Kalshi's WebSocket command protocol (asyncapi.yaml): channels, commands, replies and
error codes. The sandbox serves it as Kalshi does; the proxy's shared feed speaks it to
each client while one upstream connection serves them all."""

from __future__ import annotations

import json
from typing import Any, Final

JSON = dict[str, Any]

# Every channel name Kalshi accepts.
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
# Channels about the key's own account: only clients that may read the portfolio get them.
PRIVATE_CHANNELS: Final = frozenset(
    {"fill", "user_orders", "market_positions", "order_group_updates", "communications"}
)
# A subscription to these must name its markets (error 14 otherwise).
MARKETS_REQUIRED: Final = frozenset({"orderbook_delta"})
UPDATE_ACTIONS: Final = ("add_markets", "delete_markets", "get_snapshot")
# Message types that carry their subscription's `seq`.
SEQUENCED: Final = frozenset({"orderbook_snapshot", "orderbook_delta", "order_group_updates"})
# The message type of each channel's data (most are named after their channel).
MESSAGE_TYPES: Final = {
    "market_positions": "market_position",
    "user_orders": "user_order",
}


class CommandError(Exception):
    """A command Kalshi refuses: answered as {"id", "type": "error", "msg": {code, msg}}."""

    def __init__(self, code: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def reply(self, cmd_id: int | None) -> JSON:
        """The error message a client gets."""
        return {
            **reply_id(cmd_id),
            "type": "error",
            "msg": {"code": self.code, "msg": self.message, **self.extra},
        }


UNPROCESSABLE: Final = (1, "Unable to process message")
PARAMS_REQUIRED: Final = (2, "Params required")
CHANNELS_REQUIRED: Final = (3, "Channels required")
SIDS_REQUIRED: Final = (4, "Subscription IDs required")
UNKNOWN_COMMAND: Final = (5, "Unknown command")
ALREADY_SUBSCRIBED: Final = (6, "Already subscribed")
UNKNOWN_SID: Final = (7, "Unknown subscription ID")
UNKNOWN_CHANNEL: Final = (8, "Unknown channel name")
AUTH_REQUIRED: Final = (9, "Authentication required")
INVALID_PARAMETER: Final = (11, "Invalid parameter")
ONE_SID: Final = (12, "Exactly one subscription ID is required")
UNSUPPORTED_ACTION: Final = (13, "Unsupported action")
TICKER_REQUIRED: Final = (14, "Market Ticker required")
ACTION_REQUIRED: Final = (15, "Action required")
MARKET_NOT_FOUND: Final = (16, "Market not found")
INTERNAL_ERROR: Final = (17, "Internal error")
COMMAND_TIMEOUT: Final = (18, "Command timeout")


def error(code: tuple[int, str], **extra: str) -> CommandError:
    """The CommandError for one of the codes above."""
    return CommandError(code[0], code[1], **extra)


def reply_id(cmd_id: int | None) -> JSON:
    """A reply's id field: absent when the command had none."""
    return {} if cmd_id is None else {"id": cmd_id}


def command_doc(text: str) -> JSON | None:
    """The command a frame holds: a JSON object, or None (Kalshi's error 1 then)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def command_id(doc: JSON) -> int | None:
    """A command's id; Kalshi treats 0 (or anything but a positive integer) as none."""
    raw = doc.get("id")
    return raw if type(raw) is int and raw > 0 else None


def params_of(doc: JSON) -> JSON:
    """A command's params object, or error 2."""
    params = doc.get("params")
    if not isinstance(params, dict):
        raise error(PARAMS_REQUIRED)
    return params


def tickers_of(params: JSON) -> list[str]:
    """The market tickers named by market_ticker or market_tickers, in order, once each."""
    single, many = params.get("market_ticker"), params.get("market_tickers")
    if single is not None and many is not None:
        raise error(INVALID_PARAMETER)
    tickers = [single] if single is not None else many if many is not None else []
    if not isinstance(tickers, list) or not all(isinstance(t, str) and t for t in tickers):
        raise error(INVALID_PARAMETER)
    return list(dict.fromkeys(tickers))


def channels_of(params: JSON) -> list[str]:
    """The channels a subscribe names, each known, in order, once each."""
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        raise error(CHANNELS_REQUIRED)
    if not all(isinstance(c, str) and c in CHANNELS for c in channels):
        raise error(UNKNOWN_CHANNEL)
    return list(dict.fromkeys(channels))


def one_sid(params: JSON) -> int:
    """The single subscription an update_subscription names (sid, or sids of one)."""
    sids = params.get("sids")
    if "sid" in params and sids is None:
        sids = [params["sid"]]
    if not isinstance(sids, list) or len(sids) != 1 or type(sids[0]) is not int:
        raise error(ONE_SID)
    sid: int = sids[0]
    return sid


def update_action(params: JSON) -> str:
    """An update_subscription's action, or error 15 / 13."""
    action = params.get("action")
    if action is None:
        raise error(ACTION_REQUIRED)
    if action not in UPDATE_ACTIONS:
        raise error(UNSUPPORTED_ACTION)
    return str(action)
