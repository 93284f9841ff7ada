"""A V1 cancel whose id decodes to CR LF: the proxy writes it raw into the upstream request."""

from __future__ import annotations

import asyncio

import pytest

from tests.proxy.attacks.helpers import V1, cfg

pytestmark = pytest.mark.usefixtures("clean_env")


async def raw_upstream():
    got: list[bytes] = []

    async def serve(reader, writer):
        data = await asyncio.wait_for(reader.read(65536), 2)
        got.append(data)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, got


async def send_raw(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"DELETE {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "oid",
    [
        "abc%0D%0AX-Injected:%20yes%0D%0AX-Pad:%20",
        "abc%20HTTP",
        "abc%0DX-Injected:%20yes%0D",
        "abc%00x",
        "abc%09x",
    ],
)
async def test_crlf_in_v1_cancel_id(make_proxy, tmp_path, oid) -> None:
    server, got = await raw_upstream()
    port = server.sockets[0].getsockname()[1]
    client = await make_proxy(
        f"http://127.0.0.1:{port}", config_file=cfg(tmp_path, "compat: {v1_orders: translate}\n")
    )
    answer = await send_raw(client.server.port, f"{V1}/{oid}")
    print(answer[:300])
    print(got)
    server.close()
    assert not any(b"X-Injected: yes\r\n" in g or b"abc HTTP" in g for g in got), got
