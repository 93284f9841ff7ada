"""What the intent-log tests share: a call to journal, the intent files of a journal, and
real processes that write an intent log and then are killed (or wait), for what a dead or
live proxy leaves behind. Each script's first argument is the journal file."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from signing_proxy.gateway.journal import CallEntry
from signing_proxy.gateway.orders import OrderFields

ORDERS = "/trade-api/v2/portfolio/events/orders"
ORDER = OrderFields(ticker="T-1", side="bid", count=Decimal(3), price=Decimal("0.40"))


def entry(request_id: str = "r-1") -> CallEntry:
    """A forwarded create of one bid, from client `bot`."""
    return CallEntry(request_id, "bot", "POST", ORDERS, "create", "forwarded", (ORDER,))


def intent_files(journal: Path) -> list[Path]:
    """The intent files of `journal` (read by name: its name may hold glob characters)."""
    prefix = f"{journal.name}-intents-"
    return sorted(p for p in journal.parent.iterdir() if p.name.startswith(prefix))


# A journal, one bid, and intend(request_id, path): what every script starts with.
_OPEN = """
import os, signal, sys, time
from decimal import Decimal
from pathlib import Path
from signing_proxy.gateway.journal import CallEntry, Journal
from signing_proxy.gateway.orders import ItemResult, OrderFields
journal = Journal(Path(sys.argv[1]))
order = OrderFields(ticker="T-1", side="bid", count=Decimal(3), price=Decimal("0.40"))
def intend(request_id, path="/o"):
    call = CallEntry(request_id, "bot", "POST", path, "create", "forwarded", (order,))
    return journal.intend(call)
"""
# Writes one intent (request id, path), its rows put in SQLite too when asked, then dies.
KILLED_AFTER_INTENT = (
    _OPEN
    + """
intent = intend(sys.argv[2], sys.argv[3])
if sys.argv[4:] == ["recorded"]:
    journal.record(intent)  # in SQLite, and still in the intent file (not emptied yet)
os.kill(os.getpid(), signal.SIGKILL)
"""
)
# Writes one intent, says so, and waits (a live proxy with an order in flight).
IN_FLIGHT = (
    _OPEN
    + """
intend("r-1")
print("sent", flush=True)
time.sleep(60)
"""
)
# Sends r-1 (in flight when killed) and then r-2 (answered), then dies.
KILLED_WITH_ONE_ANSWERED = (
    _OPEN
    + """
intend("r-1")
time.sleep(0.003)
journal.finish(intend("r-2"), 201, [ItemResult("o-2", None)], None)
os.kill(os.getpid(), signal.SIGKILL)
"""
)


def run_killed(script: str, journal: Path, *args: str) -> None:
    """Run `script` on `journal` and check that it was killed, as it kills itself."""
    killed = subprocess.run(
        [sys.executable, "-c", script, str(journal), *args], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr


def killed_after_intent(
    journal: Path, request_id: str = "r-1", path: str = "/o", *, recorded: bool = False
) -> None:
    """A proxy that sent one order (`request_id` on `path`) and was killed."""
    run_killed(KILLED_AFTER_INTENT, journal, request_id, path, *(["recorded"] if recorded else []))
