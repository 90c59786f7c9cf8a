"""The dispatcher's HTTP/1.1 client: kept-alive connections per origin, a request written in one piece, the answer
parsed by httptools.

A webhook call is a small request to a receiver called again and again, and aiohttp's client spent about four times
the CPU of this path on it (docs/performance.md, issue 17, fourth session). What it keeps of aiohttp's behaviour:
connections only to addresses the resolver (the egress guard) lets through, names resolved at most every
DNS_TTL_SECONDS, TLS verified against the system's trust store, no proxy, no redirect followed (a 3xx is an answer),
credentials in the URL sent as Basic authorization, and a request that met a kept-alive connection the server had
just closed sent again once on a fresh one only when its method is idempotent.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import aiohappyeyeballs
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from shared.delivery.egress import ip_literal
from shared.delivery.http_connection import HttpAnswer, HttpClientError, HttpConnection, ServerDisconnectedError
from shared.domain.job_checks import HTTP_TOKEN, control_character_in

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# A connection idle this long is closed (aiohttp's keep-alive default): servers close theirs after 5 s to minutes.
IDLE_SECONDS = 15.0
SWEEP_EVERY_SECONDS = 1.0
DNS_TTL_SECONDS = 10.0
HAPPY_EYEBALLS_DELAY_SECONDS = 0.25
MAX_NAMES_CACHED = 4096
DEFAULT_HEADERS = (("Accept", "*/*"),)
# The request's framing is the client's: a header naming it would make a request read two ways.
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

Origin = tuple[str, str, int]


class ConnectError(HttpClientError):
    """No connection could be opened to any address of the target; `os_error` is the last reason."""

    def __init__(self, message: str, os_error: OSError) -> None:
        super().__init__(message)
        self.os_error = os_error


def request_bytes(method: str, url: URL, headers: Iterable[tuple[str, str]], body: bytes | None) -> bytes:
    """The whole request as sent: request line, headers, body. Raises ValueError for what cannot be sent (a header
    with a line break or a control character, a URL without a host, credentials in both the URL and a header)."""
    host = url.raw_host
    if not host or not url.is_absolute():
        raise ValueError(f"not an absolute URL with a host: {url}")
    if not HTTP_TOKEN.fullmatch(method):
        raise ValueError(f"method {method!r} cannot be sent")
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {url.host_port_subcomponent}"]
    given = list(headers)
    names = {name.lower() for name, _ in given}
    lines.extend(f"{name}: {value}" for name, value in DEFAULT_HEADERS if name.lower() not in names)
    if url.user is not None:
        if "authorization" in names:
            raise ValueError("credentials are in both the URL and an Authorization header")
        pair = f"{url.user}:{url.password or ''}".encode("latin-1")
        lines.append(f"Authorization: Basic {base64.b64encode(pair).decode()}")
    for name, value in given:
        if not HTTP_TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} cannot be sent")
        if name.lower() in _FRAMING_HEADERS:
            raise ValueError(f"header {name!r} is set by the client, not by a webhook")
        if control_character_in(value):
            raise ValueError(f"header {name!r} has a control character in its value")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + body if body else head


class HttpClient:
    """Sends requests over pooled connections. `resolver` names the addresses a host may be connected to (the egress
    guard); an IP literal is connected to as written (checked by the caller). How many requests are in flight is the
    caller's to bound (the dispatcher's slots)."""

    def __init__(self, resolver: AbstractResolver, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._resolver = resolver
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[Origin, list[HttpConnection]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, asyncio.Future[list[ResolveResult]]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def send(
        self, method: str, url: URL, headers: Iterable[tuple[str, str]], body: bytes | None, body_limit: int
    ) -> HttpAnswer:
        """One request and its answer (any status: a 3xx is not followed). Raises HttpClientError (ConnectError for
        a target it could not connect to, EgressRefusedError inside it for one the resolver refused) or ValueError
        for a request that cannot be sent."""
        data = request_bytes(method, url, headers, body)
        origin = (url.scheme, url.raw_host or "", url.port or 0)  # yarl gives http's and https's default ports
        connection = self._reused(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, data, body_limit)
            except ServerDisconnectedError as exc:
                if exc.sent and (exc.answered or method not in IDEMPOTENT_METHODS):
                    raise
        connection = await self._connect(origin)
        return await self._exchange(origin, connection, data, body_limit)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _exchange(self, origin: Origin, connection: HttpConnection, data: bytes, body_limit: int) -> HttpAnswer:
        answer = await connection.exchange(data, body_limit)
        if not connection.reusable or self._closed:
            connection.close()
            return answer
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        self._idle.setdefault(origin, []).append(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_EVERY_SECONDS, self._sweep)
        return answer

    def _reused(self, origin: Origin) -> HttpConnection | None:
        """The most recently used idle connection to `origin` still open (the least likely to have been closed by
        the server), or None."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    def _sweep(self) -> None:
        """Close connections idle for IDLE_SECONDS (or closed by their server); look again while any is left."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for origin in list(self._idle):
            kept = []
            for connection in self._idle[origin]:
                if connection.usable and now - connection.idle_since < IDLE_SECONDS:
                    kept.append(connection)
                else:
                    connection.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]
        if self._idle and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_SECONDS, self._sweep)

    async def _connect(self, origin: Origin) -> HttpConnection:
        """A new connection to `origin`: its addresses raced as aiohttp does (happy eyeballs, 0.25 s apart), so an
        address that does not answer (a broken IPv6 route) does not cost the whole delivery timeout."""
        scheme, host, port = origin
        # A name's trailing dot is not part of it for SNI and the certificate (as aiohttp does).
        name = host.strip("[]").rstrip(".")
        tls: dict[str, Any] = {"ssl": self._ssl, "server_hostname": name} if scheme == "https" else {}
        infos = [
            (a["family"], socket.SOCK_STREAM, socket.IPPROTO_TCP, "", _sockaddr(a))
            for a in await self._addresses_of(host, port)
        ]
        try:
            sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_SECONDS)
            _, connection = await asyncio.get_running_loop().create_connection(HttpConnection, sock=sock, **tls)
        except OSError as exc:  # ssl.SSLError included
            raise ConnectError(f"cannot connect to {host}:{port}: {exc}", exc) from exc
        return connection

    async def _addresses_of(self, host: str, port: int) -> list[ResolveResult]:
        """Where `host` may be connected to: an IP literal as is, a name through the resolver, cached for
        DNS_TTL_SECONDS; one resolution at a time per name."""
        if (ip := ip_literal(host)) is not None:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            address = host.strip("[]").rstrip(".")  # a zone (fe80::1%eth0) kept
            return [ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)]
        loop = asyncio.get_running_loop()
        key = (host, port)
        cached = self._addresses.get(key)
        if cached is None or cached[0] < loop.time() or (cached[1].done() and cached[1].exception() is not None):
            if len(self._addresses) >= MAX_NAMES_CACHED:
                self._addresses = {k: v for k, v in self._addresses.items() if v[0] >= loop.time()}
            found = asyncio.ensure_future(self._resolver.resolve(host, port, socket.AF_UNSPEC))
            self._addresses[key] = (loop.time() + DNS_TTL_SECONDS, found)
            cached = self._addresses[key]
        try:
            return await asyncio.shield(cached[1])
        except OSError as exc:
            raise ConnectError(f"cannot connect to {host}:{port}: {exc}", exc) from exc


def _sockaddr(address: ResolveResult) -> tuple[str, int] | tuple[str, int, int, int]:
    if address["family"] == socket.AF_INET6:
        return (address["host"], address["port"], 0, 0)
    return (address["host"], address["port"])
