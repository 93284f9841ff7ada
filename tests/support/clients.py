"""Clients that speak below aiohttp: raw bytes on a socket, for targets no client library sends."""

from __future__ import annotations

import asyncio


async def raw_request(port: int, text: str) -> bytes:
    """Send `text` as it is to 127.0.0.1:`port` and read the reply until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text.encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data
