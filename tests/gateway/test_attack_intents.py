"""Attacks on the intent log: readers racing the proxy's writes, the reader's limit, odd
journal names, two proxies putting back one dead proxy's file, garbage in a file, a log
that never empties, and a proxy killed while another already runs."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from signing_proxy.gateway import intents
from signing_proxy.gateway.journal import CallEntry, Journal, read
from signing_proxy.gateway.orders import ItemResult, OrderFields

pytestmark = pytest.mark.skipif(not intents.SUPPORTED, reason="no flock on this system")

ORDERS = "/trade-api/v2/portfolio/events/orders"
ORDER = OrderFields(ticker="T-1", side="bid", count=Decimal(3), price=Decimal("0.40"))

# Writes one intent (request id argv[2]), then is killed before SQLite gets its rows.
_KILLED_AFTER_INTENT = """
import os, signal, sys
from decimal import Decimal
from pathlib import Path
from signing_proxy.gateway.journal import CallEntry, Journal
from signing_proxy.gateway.orders import OrderFields
journal = Journal(Path(sys.argv[1]))
order = OrderFields(ticker="T-1", side="bid", count=Decimal(3), price=Decimal("0.40"))
journal.intend(CallEntry(sys.argv[2], "bot", "POST", "/o", "create", "forwarded", (order,)))
os.kill(os.getpid(), signal.SIGKILL)
"""

# Writes one intent, says so, and waits (a live proxy with an order in flight).
_IN_FLIGHT = """
import sys, time
from decimal import Decimal
from pathlib import Path
from signing_proxy.gateway.journal import CallEntry, Journal
from signing_proxy.gateway.orders import OrderFields
journal = Journal(Path(sys.argv[1]))
order = OrderFields(ticker="T-1", side="bid", count=Decimal(3), price=Decimal("0.40"))
journal.intend(CallEntry("r-1", "bot", "POST", "/o", "create", "forwarded", (order,)))
print("sent", flush=True)
time.sleep(60)
"""


def entry(request_id: str = "r-1") -> CallEntry:
    return CallEntry(request_id, "bot", "POST", ORDERS, "create", "forwarded", (ORDER,))


def intent_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}-intents-"))


def killed_after_intent(path: Path, request_id: str = "r-1") -> None:
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_INTENT, str(path), request_id], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr


ACCEPTED = [ItemResult("o-1", None)]


@pytest.mark.parametrize("empty_after", [intents.EMPTY_AFTER, 1])
def test_a_reader_never_misses_a_call_answered_as_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_after: int
) -> None:
    monkeypatch.setattr(intents, "EMPTY_AFTER", empty_after)
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    try:
        sent = journal.intend(entry())
        real = intents.read_all

        def answered_meanwhile(journal_path: Path) -> list[intents.Rows]:
            # The proxy is answered and writes the call's rows (emptying its log when it is
            # large) while a reader is between its look at SQLite and at the intent logs.
            if sent.first is None:
                journal.finish(sent, 201, ACCEPTED, None)
            return real(journal_path)

        monkeypatch.setattr(intents, "read_all", answered_meanwhile)
        assert [r["request_id"] for r in read(path)] == ["r-1"]
    finally:
        journal.close()
