"""One asyncio connection to one server: the only place the asyncio engine reads and writes.

Built on an :class:`asyncio.Protocol`: bytes that arrive go straight into the
shared :class:`~layered_cache.protocol.replies.ReplyParser`, and each complete
reply is handed, in order, to the call that waits for it. Opened from the
transport's :class:`~layered_cache.transport.ConnectionPlan` (asyncio's own
TLS), then authenticated by the authenticator's handshake flow, driven here.
A connection belongs to the event loop that opened it.

Once in use, a connection carries one :class:`~layered_cache.aio.batch.Batch`
at a time: the requests of one turn of the event loop, written at once
(pipelined) and answered in order. Every reply is read, including those of
calls that were cancelled meanwhile (their reply is dropped), so no reply is
ever left for a later call. One loop timer bounds the whole batch; when it
fires, or the connection fails, every call still waiting gets the error and the
connection is closed, never reused.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from layered_cache.aio.batch import FUTURE, Batch, Failed, deliver, fail, over
from layered_cache.auth._base import Authenticator
from layered_cache.core.connection_flows import (
    CLOSED,
    ConnectionFlow,
    Conversation,
    handshake_flow,
    quiet_close_limit,
)
from layered_cache.core.translate import STALE_ERRORS, PeerClosedError
from layered_cache.protocol import ErrorReply, ProtocolError, ReplyParser
from layered_cache.protocol.framing import write_commands
from layered_cache.transport.tcp import ConnectionPlan, apply_socket_options, input_waiting

if TYPE_CHECKING:
    from layered_cache.aio.node import LoopPool

__all__ = ["AsyncConnection"]


class _Protocol(asyncio.Protocol):
    """Feeds the parser; hands replies to the connection's batch (or wakes a handshake)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.parser = ReplyParser()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        #: The connection in use, once handshaken: it takes every reply from then on.
        self.conn: AsyncConnection | None = None
        #: The socket is closed (``connection_lost`` ran).
        self.closed = False
        self._on_closed: list[Callable[[], None]] = []
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        conn = self.conn
        if conn is not None:
            if conn.inflight:
                conn.deliver()
        else:
            self._wake()

    def eof_received(self) -> bool:
        self._lose(PeerClosedError(f"{self.name} closed the connection"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(exc or PeerClosedError(f"{self.name} closed the connection"))
        self.closed = True
        on_closed, self._on_closed = self._on_closed, []
        for callback in on_closed:
            callback()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket is closed (now, if it is)."""
        if self.closed:
            callback()
        else:
            self._on_closed.append(callback)

    def _lose(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        conn = self.conn
        if conn is not None and conn.inflight:
            conn.fail(self.lost)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_data(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        await waiter


class AsyncConnection:
    """A connected, authenticated asyncio connection and the parser of its reply stream."""

    __slots__ = (
        "_deadline",
        "_parser",
        "_protocol",
        "_timer",
        "_transport",
        "_write",
        "closed",
        "idle_since",
        "inflight",
        "loop",
        "name",
        "poisoned",
        "pool",
        "quiet",
        "reused",
        "timeout",
        "used",
    )

    def __init__(
        self, transport: asyncio.Transport, protocol: _Protocol, name: str, *, tls: bool = False
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        # Over TLS a pipelined write is cut at command boundaries: each write() of
        # asyncio's TLS transport ends a record, and memcached's TLS mode can stall on a
        # record that ends inside a command (protocol.framing).
        self._write: Callable[[bytes], None] = (
            functools.partial(write_commands, transport.write) if tls else transport.write
        )
        self._parser = protocol.parser
        self.name = name
        self.loop = asyncio.get_running_loop()
        #: loop time the connection went back to the pool (kept only with an idle timeout).
        self.idle_since = 0.0
        #: What the batch on the wire still waits for, in reply order.
        self.inflight: deque[Any] = deque()
        #: The pool it goes back to when its batch is answered (None: a connection of its own).
        self.pool: LoopPool | None = None
        #: Seconds a batch may take as a whole; None: no limit.
        self.timeout: float | None = None
        #: Loop time the batch on the wire must be answered by (None: nothing awaited).
        self._deadline: float | None = None
        # One timer per connection, re-armed only when it fires early: a timer made
        # and cancelled for every batch would cost more than the rest of a small call.
        self._timer: asyncio.TimerHandle | None = None
        #: Batches sent on it so far.
        self.used = 0
        #: The batch on the wire went out on a connection that had served before.
        self.reused = False
        #: The server answered with an error line: no new batch goes on it.
        self.poisoned = False
        #: ``noreply`` requests went out and no batch answered after them: the server
        #: may not have read them all yet (see :meth:`close`).
        self.quiet = False
        self.closed = False

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

    def attach(self, pool: LoopPool | None, timeout: float | None) -> None:
        """Start carrying batches; each answered batch returns the connection to ``pool``."""
        self.pool = pool
        self.timeout = timeout
        self._protocol.conn = self

    @property
    def broken(self) -> bool:
        """The server closed this connection, or sent bytes nobody asked for, while it idled."""
        protocol = self._protocol
        return self.closed or protocol.lost is not None or not protocol.parser.idle

    def peer_closed(self) -> bool:
        """Whether the server closed this idle connection (or sent bytes nobody asked for).

        Asks the socket itself, so an end-of-file the loop has not handled yet
        counts too.
        """
        if self.broken:
            return True
        sock = self._transport.get_extra_info("socket")
        return sock is None or input_waiting(sock)

    # -- batches ----------------------------------------------------------------------

    def send(self, batch: Batch) -> None:
        """Write ``batch`` (one write) and wait for its replies; the calls get them as they come.

        A call cancelled before its batch was written is left out: what it asked
        is never sent.
        """
        self.reused = self.used > 0
        self.used += 1
        expect = self._parser.expect
        inflight = self.inflight
        data = []
        for entry, request, kind, keys, count in batch.items:
            if over(entry):
                continue
            data.append(request)
            inflight.append(entry)
            expect(kind, keys)
            for _ in range(count - 1):
                expect(kind, keys)
        written = []
        for waiter, request in batch.noreply:
            if not waiter.done():
                data.append(request)
                written.append(waiter)
        lost = self._protocol.lost
        if lost is not None:
            # Closed between the pool's check and now: the calls see why.
            self.fail(lost)
            for waiter in written:
                waiter.set_exception(Failed(lost, reused=self.reused))
            return
        if data:
            self._write(data[0] if len(data) == 1 else b"".join(data))
        for waiter in written:
            waiter.set_result(None)
        # (A reply to come vouches for everything sent before it: memcached answers in order.)
        self.quiet = bool(written) or (self.quiet and not inflight)
        if not inflight:
            self._answered()
        elif self.timeout is not None:
            self._arm(self.timeout)

    def send_one(self, waiter: asyncio.Future[Any], request: bytes, kind: int, keys: Any) -> None:
        """:meth:`send` of a batch of one request with one reply, without building the batch."""
        self.reused = self.used > 0
        self.used += 1
        self.quiet = False  # (its reply vouches for what went before: see send)
        lost = self._protocol.lost
        self.inflight.append(waiter)
        if lost is not None:
            self.fail(lost)
            return
        self._parser.expect(kind, keys)
        self._write(request)
        if self.timeout is not None:
            self._arm(self.timeout)

    def deliver(self) -> None:
        """Hand every complete reply to its call (the protocol calls this as bytes arrive)."""
        inflight = self.inflight
        next_reply = self._parser.next_reply
        try:
            while inflight:
                reply = next_reply()
                if reply is None:
                    return
                entry = inflight[0]
                if type(reply) is ErrorReply:
                    # An error line answers one request and the stream stays in
                    # step, but the connection takes no new batch (the sync
                    # engine closes it too).
                    self.poisoned = True
                elif type(entry) is FUTURE:
                    # The common case, inline: one call waiting for one reply.
                    inflight.popleft()
                    if not entry.done():
                        entry.set_result(reply)
                    continue
                if deliver(entry, reply):
                    inflight.popleft()
        except ProtocolError as exc:
            self.fail(exc)
            return
        self._answered()

    def _arm(self, timeout: float) -> None:
        """The batch just sent must be answered within ``timeout`` seconds."""
        deadline = self._deadline = self.loop.time() + timeout
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        """The timer fired: fail the batch if it is late, else wait for its own deadline."""
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.closed:
            return
        if self.loop.time() >= deadline:
            self._deadline = None
            self.fail(TimeoutError(f"{self.name}: the reply did not complete in time"))
        else:
            self._timer = self.loop.call_at(deadline, self._check_deadline)

    def _answered(self) -> None:
        self._deadline = None  # (the timer, if it fires, finds nothing awaited)
        pool = self.pool
        if pool is not None:
            if self.poisoned:
                pool.discard(self)
            else:
                pool.release(self)

    def fail(self, error: BaseException) -> None:
        """Give every call still waiting on this connection ``error``; close it for good."""
        if self.closed:
            return
        self.closed = True
        self.quiet = False  # (a failed connection is dropped at once, see close)
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        inflight, self.inflight = self.inflight, deque()
        reused = self.reused
        for entry in inflight:
            fail(entry, lambda: Failed(error, reused=reused))
        pool = self.pool
        if pool is None:
            self._transport.abort()
        else:
            pool.discard(self)  # closed; its slot comes back once the socket is
            if reused and isinstance(error, STALE_ERRORS):
                # The server closed a pooled connection (a restart, an idle timeout
                # at a proxy); its siblings idled through the same event.
                pool.close_idle()

    # -- handshakes and probes ----------------------------------------------------------

    async def run_flow(self, flow: ConnectionFlow) -> Any:
        """Drive a connection flow (handshake, probe): send each request, hand back its reply."""
        talk = Conversation(flow, self._protocol.parser)
        request = talk.start()
        while request is not None:
            if self._protocol.lost is None:
                self._transport.write(request)
            del request  # a handshake request may carry a password
            request = talk.reply(await self._flow_reply())
        return talk.result

    async def _flow_reply(self) -> Any:
        """The reply a connection flow waits for, or :data:`CLOSED` if the server hung up."""
        protocol = self._protocol
        reply = protocol.parser.next_reply()
        while reply is None:
            if protocol.lost is not None:
                if not isinstance(protocol.lost, PeerClosedError):
                    raise protocol.lost
                return CLOSED
            await protocol.wait_data()
            reply = protocol.parser.next_reply()
        return reply

    def close(self) -> None:
        """Drop the connection (unread replies are discarded).

        An idle connection whose last requests were ``noreply`` is closed in
        order: what the transport still holds of them goes out first, and the
        server reads them all before it sees the end of the connection (an
        abort would drop the first; a reset, the second). That takes at most
        the connection's timeout; any other connection is aborted at once.
        The socket itself closes on a later turn of the loop (:meth:`when_closed`).
        """
        self.closed = True
        transport = self._transport
        if transport.is_closing():
            return  # (closing in order already: a second close() would undo its time limit)
        if self.quiet and not self.inflight and self._protocol.lost is None:
            transport.close()
            self.loop.call_later(quiet_close_limit(self.timeout), transport.abort)
        else:
            transport.abort()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket is really closed (now, if it is)."""
        self._protocol.when_closed(callback)

    async def wait_closed(self) -> None:
        """Return once the socket is really closed."""
        closed: asyncio.Future[None] = self.loop.create_future()

        def on_closed() -> None:
            if not closed.done():
                closed.set_result(None)

        self.when_closed(on_closed)
        await closed
