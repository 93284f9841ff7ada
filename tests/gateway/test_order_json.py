"""Orders are read (and their intents written) with orjson on the order's path: whatever
Python's json reads, they are read the same, field for field; whatever a row holds, its
intent line reads back as it was written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing_proxy.gateway import intents, orders
from signing_proxy.gateway.orders import read_answer, read_json, read_orders

pytestmark = pytest.mark.skipif(not intents.SUPPORTED, reason="intent logs need flock")

KEYS = st.sampled_from(
    ["ticker", "Ticker", "side", "count", "COUNT", "price", "subaccount", "order_id",
     "client_order_id", "orders", "ids", "order", "error", "code", "x"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # past 64 bits: orjson makes floats
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates among them
    | st.sampled_from(["bid", "ask", "0.40", "10", "1e400", "NaN"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=20,
)
KINDS = ["create", "batch_create", "amend", "batch_cancel", "cancel"]


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself (a float the order's fields never keep anyway)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, kind=st.sampled_from(KINDS), bom=st.booleans())
def test_orders_and_answers_read_as_pythons_json_reads_them(
    value: Any, kind: orders.Kind, bom: bool
) -> None:
    body = (b"\xef\xbb\xbf" if bom else b"") + json.dumps(value).encode()
    fast = read_orders(kind, body), read_answer(body)
    with patch.object(orders, "read_json", lambda b: json.loads(b or b"")):
        reference = read_orders(kind, body), read_answer(body)
    assert fast == reference


@pytest.mark.parametrize(
    "body",
    [b'{"ticker":"\\ud800"}', b'{"count":NaN}', b"\xef\xbb\xbf{}", '{"a":1}'.encode("utf-16")],
)
def test_what_orjson_refuses_and_json_reads_is_still_read(body: bytes) -> None:
    assert _same(read_json(body), json.loads(body)) or read_json(body) == json.loads(body)


def test_unreadable_bodies_are_refused_as_before() -> None:
    for body in (b"", b"{", b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00"):
        assert read_orders("create", body) is None


@pytest.mark.parametrize(
    "text", ["KXBENCH-1", "caf\u00e9 \u2603", "lone \ud800 surrogate", "new\nline", 'q"uote']
)
def test_an_intent_line_reads_back_as_written(tmp_path: Path, text: str) -> None:
    journal = tmp_path / "journal.sqlite3"
    log = intents.IntentLog(journal)
    row = (2**55, 0, text, None, 3, *([None] * (intents.ROW_WIDTH - 5)))
    log.append([row, row])
    log.close()  # the row waits for SQLite: the file stays, as a killed proxy's would
    (calls,) = intents.read_all(journal)
    assert calls == [row, row]
