"""The dispatcher's HTTP client against real servers: an aiohttp application for what receivers usually do, and raw
sockets for what they sometimes do (close a kept-alive connection, answer in pieces, never answer, speak nonsense)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from shared.delivery import http_client
from shared.delivery.egress import EgressPolicy, EgressRefusedError, GuardedResolver
from shared.delivery.http_client import ConnectError, HttpClient, request_bytes
from shared.delivery.http_connection import BadResponseError, ServerDisconnectedError

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on loopback running `handler` per connection; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request with a Content-Length body (what the client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head + await reader.readexactly(length)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: int  # the client's port: which connection it came on


@asynccontextmanager
async def app_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, list[Seen]]]:
    """An aiohttp receiver answering "echo"; yields its port and what it was sent."""
    seen: list[Seen] = []

    async def echo(request: web.Request) -> web.Response:
        assert request.transport is not None
        port = int(request.transport.get_extra_info("peername")[1])
        body = await request.read()
        seen.append(Seen(request.method, request.raw_path, dict(request.query), dict(request.headers), body, port))
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b"one ", b"two ", b"three"):
                await response.write(part)
            await response.write_eof()
            return response  # type: ignore[return-value]
        if request.path == "/big":
            return web.Response(body=b"x" * 100_000)
        if request.path == "/limited":
            return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")
        return web.Response(text="echo")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


def client(resolver: object | None = None, ssl_context: ssl.SSLContext | None = None) -> HttpClient:
    return HttpClient(resolver or DefaultResolver(), ssl_context=ssl_context)  # type: ignore[arg-type]


async def test_requests_to_one_receiver_reuse_kept_alive_connections_and_are_sent_as_asked() -> None:
    http = client()
    async with app_server() as (port, seen):
        url = URL(f"http://u%40x:p%20w@127.0.0.1:{port}/hook/a%20b?x=1&y=%C3%A9")
        headers = [("User-Agent", "ours/1"), ("X-Tag", "café"), ("Content-Type", "application/json")]
        for i in range(5):
            answer = await http.send("POST", url, headers, f'{{"n":{i}}}'.encode(), 1024)
            assert (answer.status, answer.body, answer.truncated) == (200, b"echo", False)
        answers = await asyncio.gather(*(http.send("PUT", url, [], b"", 1024) for _ in range(10)))
        assert {a.status for a in answers} == {200}
        await http.send("DELETE", url.with_user(None), [], None, 1024)
    await http.close()
    first = seen[0]
    assert (first.method, first.raw_path, first.query["y"]) == ("POST", "/hook/a%20b?x=1&y=%C3%A9", "é")
    assert first.headers["User-Agent"] == "ours/1" and first.headers["X-Tag"] == "café"
    assert first.headers["Host"] == f"127.0.0.1:{port}" and first.headers["Accept"] == "*/*"
    assert first.headers["Authorization"] == "Basic dUB4OnAgdw==", "u@x:p w, as aiohttp sends credentials in a URL"
    assert [s.body for s in seen[:5]] == [f'{{"n":{i}}}'.encode() for i in range(5)]
    assert seen[5].headers["Content-Length"] == "0", "a PUT without a body says so"
    assert "Content-Length" not in seen[-1].headers and "Authorization" not in seen[-1].headers
    assert len({r.peer for r in seen[:5]}) == 1, "one after another: one connection"
    assert len({r.peer for r in seen[5:15]}) <= 10


async def test_what_cannot_be_sent_is_refused_before_anything_is_written() -> None:
    url = URL("http://u:p@example.invalid/")
    with pytest.raises(ValueError, match="both the URL and an Authorization header"):
        request_bytes("POST", url, [("Authorization", "Bearer x")], None)
    for headers in ([("X-Split", "a\r\nInjected: yes")], [("X-Bell", "ding\x01")], [("Bad Name", "v")]):
        with pytest.raises(ValueError, match=r"cannot be sent|control character"):
            request_bytes("POST", URL("http://example.invalid/"), headers, None)
    for framing in ("Host", "content-length", "Transfer-Encoding", "Connection"):
        with pytest.raises(ValueError, match="set by the client"):
            request_bytes("POST", URL("http://example.invalid/"), [(framing, "x")], None)
    with pytest.raises(ValueError, match="method"):
        request_bytes("GET /admin HTTP/1.1\r\nX:", URL("http://example.invalid/"), [], None)
    with pytest.raises(ValueError, match="absolute URL"):
        request_bytes("GET", URL("/relative"), [], None)


async def test_bodies_chunked_limited_and_delimited_by_the_end_of_the_connection() -> None:
    http = client()
    async with app_server() as (port, seen):
        base = URL(f"http://127.0.0.1:{port}")
        chunked = await http.send("GET", base / "chunked", [], None, 1024)
        assert (chunked.status, chunked.body) == (200, b"one two three")
        limited = await http.send("GET", base / "limited", [], None, 1024)
        assert (limited.status, limited.headers["retry-after"], limited.body) == (429, "7", b"slow down")
        big = await http.send("GET", base / "big", [], None, 1000)
        assert (big.body, big.truncated) == (b"x" * 1000, True)
        after = await http.send("GET", base / "after", [], None, 1000)
        assert after.status == 200
    await http.close()
    assert seen[0].peer == seen[1].peer == seen[2].peer, "whole answers leave the connection reusable"
    assert seen[3].peer != seen[2].peer, "an answer cut at the limit closes its connection"

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Y: z\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(until_close) as port:
        answer = await http.send("POST", URL(f"http://127.0.0.1:{port}/"), [], b"{}", 1024)
    assert (answer.status, answer.headers["x-y"], answer.body) == (200, "z", b"all of it")


async def test_a_kept_alive_connection_the_server_dropped_is_retried_once_for_idempotent_methods_only() -> None:
    """The server answers one request per connection, then takes the next and closes without a word: the race of a
    keep-alive timeout. A PUT goes again on a fresh connection; a POST may have reached the application: it fails."""
    connections = 0

    async def one_answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await read_request(reader)

    http = client()
    async with raw_server(one_answer_each) as port:
        url = URL(f"http://127.0.0.1:{port}/")
        assert (await http.send("PUT", url, [], b"1", 64)).status == 200
        assert (await http.send("PUT", url, [], b"2", 64)).status == 200
        assert connections == 2
        with pytest.raises(ServerDisconnectedError, match="without answering") as caught:
            await http.send("POST", url, [], b"3", 64)
        assert not caught.value.answered
        assert connections == 2, "a POST is not sent twice"
        assert (await http.send("POST", url, [], b"4", 64)).status == 200, "the dropped connection is not reused"
    await http.close()


async def test_a_timed_out_request_closes_its_connection_and_garbage_is_refused() -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        assert await reader.read() == b""  # blocks until the client closes
        closed.set()

    http = client()
    async with raw_server(silent) as port:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await http.send("POST", URL(f"http://127.0.0.1:{port}/"), [], b"{}", 64)
        await asyncio.wait_for(closed.wait(), 5)

    async def nonsense(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(nonsense) as port:
        with pytest.raises(BadResponseError, match="not valid HTTP"):
            await http.send("GET", URL(f"http://127.0.0.1:{port}/"), [], None, 64)

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with raw_server(cut_short) as port:
        with pytest.raises(ServerDisconnectedError, match="before its answer ended"):
            await http.send("GET", URL(f"http://127.0.0.1:{port}/"), [], None, 64)
    await http.close()


async def test_tls_is_verified_and_names_go_through_the_egress_guard() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    loopback = GuardedResolver(EgressPolicy.parse("127.0.0.0/8"))
    async with app_server(server_context) as (port, seen):
        trusted = client(loopback, trusting)
        answer = await trusted.send("GET", URL(f"https://localhost:{port}/secure"), [], None, 64)
        assert (answer.status, answer.body) == (200, b"echo")
        assert (await trusted.send("GET", URL(f"https://127.0.0.1:{port}/by-address"), [], None, 64)).status == 200
        await trusted.close()
        untrusting = client(loopback)
        with pytest.raises(ConnectError) as caught:
            await untrusting.send("GET", URL(f"https://localhost:{port}/"), [], None, 64)
        assert isinstance(caught.value.os_error, ssl.SSLCertVerificationError)
        await untrusting.close()
        guarded = client(GuardedResolver(EgressPolicy.parse("")), trusting)
        with pytest.raises(ConnectError) as refused:
            await guarded.send("GET", URL(f"https://localhost:{port}/"), [], None, 64)
        assert isinstance(refused.value.os_error, EgressRefusedError)
        assert "loopback address" in str(refused.value.os_error)
        await guarded.close()
    assert [r.raw_path for r in seen] == ["/secure", "/by-address"]


class TwoAddresses(DefaultResolver):
    """A name with two addresses: the first refuses connections (nothing listens on its port), the second is
    the receiver."""

    def __init__(self, dead_port: int) -> None:
        super().__init__()
        self._dead_port = dead_port

    async def resolve(self, host: str, port: int = 0, family: object = socket.AF_INET) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=p, family=socket.AF_INET, proto=0, flags=0)
            for p in (self._dead_port, port)
        ]


async def test_a_name_whose_first_address_refuses_is_reached_on_the_next() -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    http = client(TwoAddresses(dead.getsockname()[1]))
    try:
        async with app_server() as (port, seen):
            answer = await http.send("GET", URL(f"http://receiver.test:{port}/second"), [], None, 64)
    finally:
        dead.close()
        await http.close()
    assert answer.status == 200
    assert [(s.raw_path, s.headers["Host"]) for s in seen] == [("/second", f"receiver.test:{port}")]


async def test_endless_headers_two_answers_at_once_and_idle_connections_are_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver trickling a header without end is cut off at MAX_HEAD_BYTES (httptools' time grows with the square
    of a header's length); a second answer sent unasked after the first leaves that connection unused; a connection
    idle for IDLE_SECONDS is closed though nothing else is sent."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
        for _ in range(1000):
            writer.write(b"y" * 1000)
            await writer.drain()
        await reader.read()

    http = client()
    async with raw_server(endless) as port:
        with pytest.raises(BadResponseError, match="bytes of headers"):
            await http.send("GET", URL(f"http://127.0.0.1:{port}/"), [], None, 64)

    connections = 0

    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await read_request(reader)
            writer.write(OK.replace(b"OK\r\n", b"OK\r\nX-N: 1\r\n", 1) + OK.replace(b"OK\r\n", b"OK\r\nX-N: 2\r\n", 1))
            await writer.drain()

    async with raw_server(twice) as port:
        url = URL(f"http://127.0.0.1:{port}/")
        first = await http.send("GET", url, [], None, 64)
        second = await http.send("GET", url, [], None, 64)
    assert (first.headers["x-n"], second.headers["x-n"]) == ("1", "1"), "each its own answer, none the stray one"
    assert connections == 2, "a connection that sent an answer unasked is not used again"

    monkeypatch.setattr(http_client, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(http_client, "SWEEP_EVERY_SECONDS", 0.1)
    closed = asyncio.Event()

    async def one_then_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        assert await reader.read() == b""
        closed.set()

    async with raw_server(one_then_wait) as port:
        assert (await http.send("GET", URL(f"http://127.0.0.1:{port}/"), [], None, 64)).status == 200
        await asyncio.wait_for(closed.wait(), 5)
    await http.close()
