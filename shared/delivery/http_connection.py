"""One kept-alive HTTP/1.1 client connection: a request's bytes written, its answer parsed by httptools (llhttp, the
parser aiohttp's and uvicorn's C speedups use), the body kept up to a limit.

One exchange at a time. A connection is handed back for another request only when its answer was read to the end and
the server did not ask to close it; any other end (a body over the limit, a timeout, a parse error) closes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

# What an answer's status line and headers may take, and how many interim (1xx) answers may come before the final
# one: a receiver sending more is cut off (aiohttp allowed 8,190 bytes a line and 100 lines).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_INTERIM_ANSWERS = 10


class HttpClientError(Exception):
    """The exchange failed before a whole answer arrived; the message says how."""


class ServerDisconnectedError(HttpClientError):
    """The server closed the connection before its answer ended."""

    def __init__(self, message: str, *, answered: bool, sent: bool = True) -> None:
        super().__init__(message)
        # False: not one byte of an answer came back, so the request may not have reached the server's application
        # (a kept-alive connection it had just closed): an idempotent request may be sent again on a fresh one.
        self.answered = answered
        # False: the connection was found closing before the request was written: any request may go again.
        self.sent = sent


class BadResponseError(HttpClientError):
    """The bytes that came back are not an HTTP/1.1 response."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A response: its status, its headers (names lower-cased, the last of a repeated one), and its body up to the
    limit asked for (`truncated` when there was more)."""

    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False


class HttpConnection(asyncio.Protocol):
    """A client connection driven by `exchange`; `reusable` says whether it may carry another request."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[HttpAnswer] | None = None
        self._limit = 0
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._truncated = False
        self._headers_done = False
        self._answered = False
        self._head_bytes = 0
        self._interim = 0
        self.closed = False
        self.reusable = False
        # When it went back to its pool (loop time), so an idle one can be closed after a while.
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (which does not derive from asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted with another request
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponseError("the server switched protocols, which was not asked for"))
        except httptools.HttpParserError as exc:
            self._fail(BadResponseError(f"the server's answer is not valid HTTP/1.1: {exc}"))
        if not self._headers_done:  # httptools gathers a header piece by piece, in time quadratic in its length
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(BadResponseError(f"the server's answer has more than {MAX_HEAD_BYTES} bytes of headers"))

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if exc is None and self._headers_done and self._delimited_by_close():
            self._finish()  # a body delimited by the end of the connection (HTTP/1.0 style) has ended
            return
        how = "before its answer ended" if self._answered else "without answering"
        self._waiter.set_exception(
            ServerDisconnectedError(f"the server closed the connection {how}", answered=self._answered)
        )

    def _delimited_by_close(self) -> bool:
        return "content-length" not in self._headers and "chunked" not in self._headers.get("transfer-encoding", "")

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            # A second answer after the one asked for (in the same read): nothing more on this connection is trusted.
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADERS:
            self._fail(BadResponseError(f"the server's answer has more than {MAX_HEADERS} headers"))
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = self._status >= 200
        if not self._headers_done:
            self._interim += 1
            if self._interim > MAX_INTERIM_ANSWERS:
                self._fail(BadResponseError(f"the server sent more than {MAX_INTERIM_ANSWERS} interim answers"))

    def on_body(self, body: bytes) -> None:
        if self._truncated:
            return
        room = self._limit - len(self._body)
        if len(body) > room:
            self._body += body[:room]
            self._truncated = True
            self._finish()  # what is kept is complete: the rest is not waited for
        else:
            self._body += body

    def on_message_complete(self) -> None:
        if not self._headers_done:  # an interim answer (1xx): the final one follows on the same connection
            self._headers = {}
            self._head_bytes = 0
            return
        self._finish(keep_alive=self._parser.should_keep_alive())

    # the exchange

    async def exchange(self, request: bytes, body_limit: int) -> HttpAnswer:
        """Send `request` (a whole serialized request) and wait for its answer. If the wait ends any other way (a
        timeout, a cancellation, an error), the connection is closed."""
        if self._transport is None or not self.usable:
            self.close()
            raise ServerDisconnectedError(
                "the connection closed before the request was sent", answered=False, sent=False
            )
        self._waiter = asyncio.get_running_loop().create_future()
        self._limit = body_limit
        self._status, self._headers, self._body = 0, {}, bytearray()
        self._truncated = self._headers_done = self._answered = False
        self._head_bytes = self._interim = 0
        self.reusable = False
        self._transport.write(request)
        try:
            answer = await self._waiter
        except BaseException:
            self.close()  # a cancellation may land after the answer came: the connection is not handed back then
            raise
        if not self.reusable:
            self.close()
        return answer

    @property
    def usable(self) -> bool:
        """Open, and not being closed (a FIN already read, connection_lost not yet run)."""
        return self._transport is not None and not self.closed and not self._transport.is_closing()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()  # nothing of ours is left to flush that the server should still read

    def _finish(self, *, keep_alive: bool = False) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self.reusable = keep_alive and not self._truncated and not self.closed
        waiter.set_result(HttpAnswer(self._status, dict(self._headers), bytes(self._body), self._truncated))

    def _fail(self, error: HttpClientError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()
