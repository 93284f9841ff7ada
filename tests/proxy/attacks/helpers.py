"""Shared bits for the throwaway attack tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

V1 = "/trade-api/v2/portfolio/orders"
V2 = "/trade-api/v2/portfolio/events/orders"


def cfg(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def kalshi_v2(read_back: Any = None, write_status: int = 201, write_body: bytes | None = None):
    """Answers V2 writes like Kalshi, the V1 read with an order; `read_back` may replace it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith(V1 + "/"):
            if read_back is not None:
                return await read_back(request)
            oid = request.path.rsplit("/", 1)[1]
            return web.json_response({"order": {"order_id": oid, "book_side": "bid"}})
        if request.path.startswith(V2):
            if write_body is not None:
                return web.Response(
                    status=write_status, body=write_body, content_type="application/json"
                )
            if request.path.endswith("/batched"):
                doc = json.loads(await request.read() or b"{}")
                return web.json_response(
                    {
                        "orders": [
                            {"order_id": f"o{i}"} for i, _ in enumerate(doc.get("orders", []))
                        ]
                    },
                    status=write_status,
                )
            return web.json_response({"order_id": "o1", "reduced_by": "1.00"}, status=write_status)
        return web.json_response({"ok": True})

    return handler


def create(**over: Any) -> dict[str, Any]:
    doc = {"ticker": "T", "side": "yes", "action": "buy", "count": 1, "yes_price": 50}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}
