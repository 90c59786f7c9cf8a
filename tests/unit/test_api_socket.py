"""The api's listening socket: connections it accepts send small responses at once (Nagle off)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from scheduler.runner import bind_api_socket

pytestmark = pytest.mark.unit


async def test_accepted_connections_have_nagle_off() -> None:
    # With Nagle on, a response written in two parts waits for the client's delayed ACK: 40 ms per request.
    sock = bind_api_socket("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    nodelay: asyncio.Future[int] = loop.create_future()

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            nodelay.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = await loop.create_server(Accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(nodelay, 5) != 0
        writer.close()
    finally:
        server.close()
