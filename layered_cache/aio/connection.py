"""One asyncio connection to one server: the only place the asyncio engine reads and writes.

Built on an :class:`asyncio.Protocol`: bytes that arrive go straight into the
shared :class:`~layered_cache.protocol.replies.ReplyParser`, and the call
awaiting a reply is woken. Opened from the transport's
:class:`~layered_cache.transport.ConnectionPlan` (asyncio's own TLS), then
authenticated by the authenticator's handshake flow, driven here. A
connection belongs to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable
from typing import Any

from layered_cache.auth._base import Authenticator
from layered_cache.core.connection_flows import CLOSED, ConnectionFlow, handshake_flow
from layered_cache.core.translate import ErrorReplyReceived, PeerClosedError
from layered_cache.protocol import ErrorReply, ReplyParser
from layered_cache.protocol.framing import write_commands
from layered_cache.transport.tcp import ConnectionPlan, apply_socket_options, input_waiting

__all__ = ["AsyncConnection"]

# Above this many buffered bytes, a write waits for the socket to drain.
_HIGH_WATER = 1 << 16


class _Protocol(asyncio.Protocol):
    """Feeds the parser and wakes the waiting call; records why the connection ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.parser = ReplyParser()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        #: The exchange under way ran out of time.
        self.expired = False
        #: The socket is closed (``connection_lost`` ran).
        self.closed = False
        self._on_closed: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        self._wake()

    def eof_received(self) -> bool:
        self.lost = PeerClosedError(f"{self.name} closed the connection")
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = (
                exc if exc is not None else PeerClosedError(f"{self.name} closed the connection")
            )
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        self.closed = True
        on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket is closed (now, if it is)."""
        if self.closed:
            callback()
        else:
            self._on_closed = callback

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def expire(self) -> None:
        """The exchange's time is up: wake the call waiting for data (it raises)."""
        self.expired = True
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_data(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        await waiter

    async def drain(self) -> None:
        drained = self._drained
        if drained is not None:
            await drained


class AsyncConnection:
    """A connected, authenticated asyncio connection and the parser of its reply stream."""

    __slots__ = ("_protocol", "_transport", "_write", "idle_since", "loop", "name")

    def __init__(
        self, transport: asyncio.Transport, protocol: _Protocol, name: str, *, tls: bool = False
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        # Over TLS a pipelined request is written cut at command boundaries: each
        # write() of asyncio's TLS transport ends a record, and memcached's TLS mode
        # can stall on a record that ends inside a command (protocol.framing).
        self._write: Callable[[bytes], None] = (
            functools.partial(write_commands, transport.write) if tls else transport.write
        )
        self.name = name
        self.loop = asyncio.get_running_loop()
        #: loop time the connection went back to the pool (kept only with an idle timeout).
        self.idle_since = 0.0

    @classmethod
    async def open(
        cls,
        plan: ConnectionPlan,
        *,
        name: str,
        auth: Authenticator,
        connect_timeout: float | None,
    ) -> AsyncConnection:
        """Connect as ``plan`` says and run ``auth``'s handshake, all within ``connect_timeout``."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            address = plan.address
            tls: dict[str, Any] = {}
            if plan.ssl_context is not None:
                tls = {"ssl": plan.ssl_context, "server_hostname": plan.server_hostname}
            if isinstance(address, str):
                transport, protocol = await loop.create_unix_connection(
                    lambda: _Protocol(name), address, **tls
                )
            else:
                transport, protocol = await loop.create_connection(
                    lambda: _Protocol(name), address[0], address[1], **tls
                )
            conn = cls(transport, protocol, name, tls=plan.ssl_context is not None)
            try:
                sock = transport.get_extra_info("socket")
                if isinstance(sock, socket.socket) or hasattr(sock, "setsockopt"):
                    apply_socket_options(sock, plan)
                await conn.run_flow(handshake_flow(auth.handshake(name)))
            except BaseException:
                conn.close()
                raise
        return conn

    @property
    def broken(self) -> bool:
        """The server closed this connection, or sent bytes nobody asked for, while it idled."""
        protocol = self._protocol
        return protocol.lost is not None or not protocol.parser.idle

    def peer_closed(self) -> bool:
        """Whether the server closed this idle connection (or sent bytes nobody asked for).

        Asks the socket itself, so an end-of-file the loop has not handled yet
        counts too.
        """
        if self.broken:
            return True
        sock = self._transport.get_extra_info("socket")
        return sock is None or input_waiting(sock)

    async def exchange(
        self, request: bytes, expect: int | None, count: int, keys: Any, timeout: float | None
    ) -> Any:
        """Send ``request``; read ``count`` replies of kind ``expect`` (one reply, or a list).

        ``timeout`` bounds the exchange as a whole. One timer per exchange, armed
        on the loop directly: much cheaper than a timeout context per call.

        Raises:
            TimeoutError: the whole reply did not arrive within ``timeout``.
            ErrorReplyReceived: the server answered with an error line.
            ProtocolError: the reply does not fit what was asked (or extra bytes came).
            PeerClosedError: the server closed the connection before answering.
            OSError: the connection failed.
        """
        protocol = self._protocol
        if protocol.lost is not None:
            raise protocol.lost
        if timeout is None:
            timer = None
        else:
            # A timer that fired just as the previous reply completed (both due in
            # one turn of the loop) must not fail this exchange.
            protocol.expired = False
            timer = self.loop.call_later(timeout, protocol.expire)
        try:
            self._write(request)
            if self._transport.get_write_buffer_size() > _HIGH_WATER:
                await protocol.drain()
                if protocol.expired:
                    raise TimeoutError(f"{self.name}: the request was not sent in time")
            if expect is None:
                return None
            parser = protocol.parser
            if count == 1:
                parser.expect(expect, keys)
                return await self._read()
            for _ in range(count):
                parser.expect(expect, keys)
            return [await self._read() for _ in range(count)]
        finally:
            if timer is not None:
                timer.cancel()

    async def _read(self) -> Any:
        protocol = self._protocol
        parser = protocol.parser
        reply = parser.next_reply()
        while reply is None:
            if protocol.lost is not None:
                raise protocol.lost
            if protocol.expired:
                raise TimeoutError(f"{self.name}: the reply did not complete in time")
            await protocol.wait_data()
            reply = parser.next_reply()
        if type(reply) is ErrorReply:
            raise ErrorReplyReceived(reply)
        return reply

    async def run_flow(self, flow: ConnectionFlow) -> Any:
        """Drive a connection flow (handshake, probe): send each request, hand back its reply."""
        try:
            step = next(flow)
        except StopIteration as done:
            return done.value
        protocol = self._protocol
        parser = protocol.parser
        while True:
            request, expect = step
            del step  # a handshake request may carry a password
            if protocol.lost is None:
                self._transport.write(request)
            del request
            parser.expect(expect)
            reply = parser.next_reply()
            while reply is None:
                if protocol.lost is not None:
                    if not isinstance(protocol.lost, PeerClosedError):
                        raise protocol.lost
                    reply = CLOSED
                    break
                await protocol.wait_data()
                reply = parser.next_reply()
            try:
                step = flow.send(reply)
            except StopIteration as done:
                if reply is not CLOSED:
                    parser.check_idle()
                return done.value

    def close(self) -> None:
        """Drop the connection at once (nothing more is sent; unread replies are discarded).

        The socket itself closes on the loop's next turn (:meth:`when_closed`).
        """
        self._transport.abort()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket is really closed (now, if it is)."""
        self._protocol.when_closed(callback)
