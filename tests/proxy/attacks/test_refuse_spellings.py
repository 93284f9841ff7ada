"""Refuse mode: no V1 write reaches the upstream in any spelling."""

from __future__ import annotations

import pytest

from tests.proxy.attacks.helpers import V1

pytestmark = pytest.mark.usefixtures("clean_env")

SPELLINGS = [
    ("POST", V1),
    ("POST", V1 + "/"),
    ("POST", V1 + "//"),
    ("POST", V1 + ";x=1"),
    ("POST", "/trade-api/v2/portfolio//orders"),
    ("POST", "/trade-api/v2/portfolio/%6Frders"),
    ("POST", "/trade-api/v2/PORTFOLIO/ORDERS"),
    ("POST", "/trade-api/v2/portfolio/orders%2F"),
    ("POST", "/trade-api/v2/portfolio/%256Frders"),
    ("POST", "/trade-api/v2/portfolio;a/orders"),
    ("DELETE", V1 + "/abc"),
    ("DELETE", V1 + "/abc/"),
    ("DELETE", V1 + "/a%2Fb"),
    ("DELETE", V1 + "/abc;v"),
    ("DELETE", V1 + "/BATCHED"),
    ("POST", V1 + "/Batched"),
    ("POST", V1 + "/abc/AMEND"),
    ("POST", V1 + "/abc/%61mend"),
    ("POST", V1 + "/abc/decrease;x"),
    ("POST", V1 + "//abc//amend//"),
    ("POST", V1 + "/abc%2Famend"),
    ("DELETE", V1 + "/%20"),
    ("DELETE", V1 + "/abc%23x"),
    ("DELETE", V1 + "/abc%0d%0ax"),
]


@pytest.mark.parametrize(("method", "path"), SPELLINGS)
async def test_refused(make_upstream, make_proxy, method, path) -> None:
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    reply = await client.request(method, path, data=b'{"a":1}')
    assert reply.status in (400, 404, 410), (reply.status, await reply.text())
    assert upstream.seen == []


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
async def test_method_override_header_reaches_upstream(make_upstream, make_proxy, header) -> None:
    """GET (a read, allowed even to a read_only token) carrying 'POST' in an override header."""
    upstream = await make_upstream()
    client = await make_proxy(upstream.url)
    reply = await client.request("PUT", V1, data=b'{"ticker":"T"}', headers={header: "POST"})
    reply2 = await client.request("GET", V1, headers={header: "POST"})
    print(
        reply.status,
        reply2.status,
        [(s.method, s.raw_path, s.headers.get(header)) for s in upstream.seen],
    )
    assert not any(s.headers.get(header) for s in upstream.seen), "override header forwarded"
