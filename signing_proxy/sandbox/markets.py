"""The sandbox's generated markets: weather, bitcoin, the Fed and baseball, with quotes.

Their times follow the sandbox clock: today's events (UTC) are open, yesterday's are
closed or settled, tomorrow's not open yet, whatever day the sandbox starts on; nothing
else about them changes from run to run. The tickers keep their names (KXHIGHNY-26JUN12,
...) so that scripts, docs and tests can name a market without asking for it first: the
date in a ticker is a name here, not the date of the event (titles, rules and every
time field carry the real one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, NamedTuple

from signing_proxy.sandbox.wire import CENT, JSON, dollars, fixed_point, iso

# --- generated markets ----------------------------------------------------------------------

_HOUR: Final = timedelta(hours=1)


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


# (event ticker, status of its markets, days after the start day, outcome generator);
# 60 markets. Times are UTC: an event at 21:00 (5 pm EDT) of its day.
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
    ("KXMLBGAME-26JUN11ATLPHI", "closed", -2, _baseball("ATL", "PHI", "0.57")),
    ("KXMLBGAME-26JUN11SEASD", "closed", -2, _baseball("SEA", "SD", "0.45")),
    ("KXHIGHNY-26JUN11", "finalized", -2, _temperature),
)


class _Times(NamedTuple):
    opens: datetime
    closes: datetime
    expected: datetime  # expected expiration
    latest: datetime  # latest expiration


def _times(status: str, when: datetime, today: datetime) -> _Times:
    """A market's times, in order, and consistent with its status on the start day.

    Open markets opened three days before their event (or before today, for those of a
    later day); unopened ones open tomorrow; the others closed a day before today.
    """
    closes = when + 23 * _HOUR + timedelta(minutes=59)
    opens = min(when, today) - timedelta(days=3)
    if status == "initialized":
        opens = today + timedelta(days=1)
    expected = closes + 2 * _HOUR
    latest = expected if status == "finalized" else closes + timedelta(days=7)
    return _Times(opens, closes, expected, latest)


def _quotes(fair: Decimal | None, seq: int) -> JSON:
    # An unopened or finished market has an empty book; Kalshi then shows 0 for YES and 1 for NO.
    bid = ask = Decimal(0)
    if fair is not None:
        bid, ask = max(fair - CENT, CENT), min(fair + CENT, 1 - CENT)
    size = Decimal(0) if fair is None else Decimal(25 + seq * 37 % 400)
    return {
        "yes_bid_dollars": dollars(bid),
        "yes_ask_dollars": dollars(ask),
        "no_bid_dollars": dollars(1 - ask),
        "no_ask_dollars": dollars(1 - bid),
        "yes_bid_size_fp": fixed_point(size),
        "yes_ask_size_fp": fixed_point(size + 15),
    }


def _market(
    event: str, status: str, times: _Times, outcome: _Outcome, seq: int, result: str
) -> JSON:
    fair = Decimal(outcome.fair).quantize(CENT)
    opened, closes = times.opens, times.closes
    volume = Decimal(seq * 1_531 % 40_000)
    return {
        "can_close_early": True,
        "close_time": iso(closes),
        "created_time": iso(opened - timedelta(hours=2)),
        "early_close_condition": "This market will close and expire after the outcome is known.",
        "event_ticker": event,
        "expected_expiration_time": iso(times.expected),
        "expiration_time": iso(times.latest),
        "expiration_value": "",
        "fractional_trading_enabled": True,
        "last_price_dollars": dollars(fair),
        "latest_expiration_time": iso(times.latest),
        "liquidity_dollars": dollars(Decimal(seq * 977 % 9_000)),
        "market_type": "binary",
        "no_sub_title": outcome.subtitle,
        "notional_value_dollars": "1.0000",
        "open_interest_fp": fixed_point(volume // 3),
        "open_time": iso(opened),
        "previous_price_dollars": dollars(fair),
        "previous_yes_ask_dollars": dollars(min(fair + CENT, 1 - CENT)),
        "previous_yes_bid_dollars": dollars(max(fair - CENT, CENT)),
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
        "updated_time": iso(opened),
        "volume_24h_fp": fixed_point(volume // 10),
        "volume_fp": fixed_point(volume),
        "yes_sub_title": outcome.subtitle,
        **_quotes(fair if status == "active" else None, seq),
        **outcome.strike,
    }


def generate_markets(now: float) -> list[JSON]:
    """The sandbox's markets, dated around the UTC day of `now` (seconds since the epoch)."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    markets: list[JSON] = []
    for event, status, days, outcomes in _EVENTS:
        when = today + timedelta(days=days, hours=21)
        times = _times(status, when, today)
        event_outcomes = list(outcomes(when))
        # A settled event has exactly one winning market: the favourite, here.
        winner = max(event_outcomes, key=lambda outcome: Decimal(outcome.fair))
        for outcome in event_outcomes:
            result = ("yes" if outcome is winner else "no") if status == "finalized" else ""
            markets.append(_market(event, status, times, outcome, len(markets), result))
    return markets
