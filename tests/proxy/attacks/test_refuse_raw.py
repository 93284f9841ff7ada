"""Refuse mode, sent byte-exact (aiohttp's client would normalise %6F to o)."""

from __future__ import annotations

import asyncio

import pytest

from tests.proxy.attacks.helpers import V1
from tests.proxy.attacks.test_refuse_spellings import SPELLINGS

pytestmark = pytest.mark.usefixtures("clean_env")
MORE = [
    ("POST", "/trade-api/v2/portfolio/%6Frders"),
    ("POST", "/trade-api/v2/portfolio/orders%2f"),
    ("POST", "/trade-api/v2/%70ortfolio/orders"),
    ("POST", "/trade-api/v2/portfolio/%4Frders"),
    ("DELETE", V1 + "/%62atched"),
    ("POST", V1 + "/x/%41MEND"),
    ("POST", V1 + "%2Fx%2Famend"),
    ("POST", V1 + "/x/amend%3B"),
    ("POST", V1 + "/x/amend%3Bq"),
    ("DELETE", V1 + "/abc%3F"),
    ("POST", V1 + "%5Cx%5Camend"),
    ("POST", "/trade-api/v2/portfolio%5Corders"),
    ("POST", V1 + "%09"),
    ("POST", V1 + "%20"),
    ("POST", "/trade-api/v2/portfolio/orders?x=1"),
]


@pytest.mark.parametrize(("method", "path"), SPELLINGS + MORE)
async def test_refused_raw(make_upstream, make_proxy, method, path) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    body = b'{"a":1}'
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    print(method, path, answer.split(b"\r\n", 1)[0], [s.raw_path for s in upstream.seen])
    assert upstream.seen == []
