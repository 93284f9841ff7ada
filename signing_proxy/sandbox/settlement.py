"""Settling a market: resting orders cancelled, every position paid out ($1 per winning
contract), a settlement recorded per account, the market finalized."""

from __future__ import annotations

from decimal import Decimal

from signing_proxy.sandbox.events import MarketLifecycle, emit
from signing_proxy.sandbox.matching import cancel
from signing_proxy.sandbox.state import SandboxState
from signing_proxy.sandbox.wire import dollars, fixed_point, iso_ms


def settle(state: SandboxState, ticker: str, result: str) -> None:
    """Settle `ticker` as `result` ('yes' or 'no') for every account holding it."""
    if result not in ("yes", "no"):
        raise ValueError("result must be yes or no")
    for order in list(state.orders.values()):
        if order.ticker == ticker and order.status == "resting":
            cancel(state, order)
    market, now = state.markets[ticker], state.now_ms()
    for account in state.accounts.values():
        position = account.positions.get(ticker)
        if position is None or not position.position:
            continue
        yes, no = max(position.position, Decimal(0)), max(-position.position, Decimal(0))
        paid = yes if result == "yes" else no
        account.balance += paid
        state.settlements.append(
            {
                "event_ticker": market["event_ticker"],
                "fee_cost": dollars(position.fees),
                "market_result": result,
                "no_count_fp": fixed_point(no),
                "no_total_cost_dollars": dollars(position.exposure if no else Decimal(0)),
                "revenue": int(paid * 100),
                "settled_time": iso_ms(now),
                "ticker": ticker,
                "value": int(paid * 100),
                "yes_count_fp": fixed_point(yes),
                "yes_total_cost_dollars": dollars(position.exposure if yes else Decimal(0)),
            }
        )
        position.realized_pnl += paid - position.exposure
        position.position, position.exposure = Decimal(0), Decimal(0)
    market.update({"status": "finalized", "result": result})
    # Kalshi announces both steps; the sandbox determines and settles at once.
    for event_type in ("determined", "settled"):
        emit(state, MarketLifecycle(ticker, event_type, result, now))
