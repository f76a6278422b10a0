"""A :class:`~layered_cache.core.operations.Batch` performed at once over every server it names.

Each server of a batch (``get_many``, ``set_many``, ``delete_many``, meta
batches) gets its request before any reply is awaited; the replies are then
read as they arrive, whichever server answers first, from non-blocking
sockets watched by one :func:`select.poll` (no thread per call). A batch over
eight servers therefore costs about one round trip, not eight.

Failures read as they do one server at a time:

* a server being skipped (or whose pool stays exhausted) fails the call
  before anything is sent to anyone, unless fail-silent mode absorbs it, in
  which case its part of the answer is :data:`~layered_cache.core.operations.FAILED`;
* a server that fails mid-exchange (reset, garbled reply, the deadline)
  counts toward its own health, and its connection is closed; outside
  fail-silent mode the call raises its error at once and the connections
  still waiting for other servers are closed too (their replies are never
  read, so they cannot be left for the next call);
* a pooled connection the server had closed while it idled is replaced and
  the exchange sent once more (when it is safe to repeat), as
  :meth:`~layered_cache.sync.node.ServerNode.exchange` does.

``timeout`` bounds the batch as a whole: every server must have answered in
full within it. With listeners, each server's exchange is reported as it
settles (:data:`Report`), timed from the start of the batch.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from layered_cache.core.operations import FAILED, Batch, Exchange
from layered_cache.core.translate import STALE_ERRORS, ErrorReplyReceived, PeerClosedError
from layered_cache.errors import CacheConnectionError
from layered_cache.protocol import ErrorReply
from layered_cache.protocol.framing import command_writes
from layered_cache.sync.connection import Connection
from layered_cache.sync.node import ServerNode

__all__ = ["Report", "perform_batch"]

#: ``report(exchange, start, reply, error)``: one server's part of a batch has
#: settled (``start`` is the batch's ``time.perf_counter()`` start; one of
#: ``reply`` and ``error`` is None).
Report = Callable[[Exchange, float, Any, Exception | None], None]

# What a non-blocking socket raises when it must wait (TLS: for the other direction too).
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_ANY = _READABLE | select.POLLOUT
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class _InFlight:
    """One server's part of a batch: its connection, what is left to send, what came back."""

    __slots__ = (
        "conn",
        "flags",
        "index",
        "left",
        "node",
        "offset",
        "replies",
        "request",
        "rest",
        "reused",
        "settled",
        "step",
    )

    def __init__(
        self, index: int, step: Exchange, node: ServerNode, conn: Connection, reused: bool
    ) -> None:
        self.index = index
        self.step = step
        self.node = node
        self.conn = conn
        self.reused = reused
        #: The write under way, and (TLS) the writes after it, last first: over TLS a
        #: pipeline goes out cut at command boundaries (layered_cache.protocol.framing).
        self.request = memoryview(step.request)
        self.rest: list[memoryview] = []
        if conn.tls:
            self.rest = command_writes(step.request)[::-1]
            self.request = self.rest.pop()
        # A kernel-timed (blocking) socket is asked not to wait, call by call;
        # any other is made non-blocking for the batch.
        self.flags = _DONTWAIT if conn.kernel_timed else 0
        self.offset = 0
        #: Replies still awaited.
        expect = step.expect
        self.left = 0 if expect is None else step.count
        if expect is not None:
            for _ in range(self.left):
                conn.parser.expect(expect, step.keys)
        self.replies: list[Any] = []
        #: Answered, or failed: its connection is back in the pool or closed.
        self.settled = False

    def send(self) -> bool:
        """Send what the socket takes now; True once the whole request is out."""
        request = self.request
        sock = self.conn.sock
        while True:
            while self.offset < len(request):
                try:
                    # (A TLS write that must wait is retried with these very bytes.)
                    self.offset += sock.send(request[self.offset :], self.flags)
                except _WOULD_BLOCK:
                    return False
            if not self.rest:
                return True
            self.request = request = self.rest.pop()
            self.offset = 0

    def receive(self) -> bool:
        """Read what has arrived; True once every reply is in."""
        conn = self.conn
        sock = conn.sock
        parser = conn.parser
        while True:
            try:
                data = sock.recv(parser.wanted(), self.flags)
            except _WOULD_BLOCK:
                return False
            if not data:
                raise PeerClosedError(f"{conn.name} closed the connection")
            parser.feed(data)
            while self.left:
                reply = parser.next_reply()
                if reply is None:
                    break
                if type(reply) is ErrorReply:
                    raise ErrorReplyReceived(reply)
                self.replies.append(reply)
                self.left -= 1
            if not self.left:
                return True
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                # (A TLS socket may hold decrypted bytes poll cannot see: read those now.)
                return False

    def answer(self) -> Any:
        """The exchange's answer, as :meth:`Connection.exchange` gives it."""
        if self.step.expect is None:
            return None
        return self.replies[0] if self.step.count == 1 else self.replies


def perform_batch(
    batch: Batch, absorb: Callable[[CacheConnectionError], bool], report: Report | None = None
) -> list[Any]:
    """Perform every exchange of ``batch`` at once; their answers, in the batch's order.

    Args:
        batch: the step.
        absorb: fail-silent mode's verdict on a server's failure (True: answer
            :data:`~layered_cache.core.operations.FAILED` for that server),
            consulted only when the batch allows it.
        report: told of each server's exchange as it settles (listeners).

    Raises:
        CacheConnectionError: a server failed and was not absorbed.
    """
    exchanges = batch.exchanges
    answers: list[Any] = [None] * len(exchanges)
    start = time.perf_counter()

    def failed(step: Exchange, error: CacheConnectionError) -> bool:
        if report is not None:
            report(step, start, None, error)
        return batch.absorb and absorb(error)

    def answered(step: Exchange, reply: Any) -> Any:
        if report is not None:
            report(step, start, reply, None)
        return reply

    if len(exchanges) < 2 or any(step.admin is not None for step in exchanges):
        for index, step in enumerate(exchanges):
            if report is not None:
                start = time.perf_counter()
            try:
                answers[index] = answered(step, step.node.exchange(step))
            except CacheConnectionError as error:
                if not failed(step, error):
                    raise
                answers[index] = FAILED
        return answers
    flights: list[_InFlight] = []
    try:
        # Connections are taken in one order (by server name) by every batch, so
        # that batches waiting for each other's connections cannot deadlock.
        for index in sorted(range(len(exchanges)), key=lambda i: exchanges[i].node.name):
            step = exchanges[index]
            node: ServerNode = step.node
            try:
                conn, reused = node.checkout(step)
            except CacheConnectionError as error:
                if not failed(step, error):
                    raise
                answers[index] = FAILED
                continue
            flights.append(_InFlight(index, step, node, conn, reused))
        _Exchanges(flights, answers, failed, answered).run()
    except BaseException:
        for flight in flights:
            if not flight.settled:
                flight.node.pool.discard(flight.conn)
        raise
    return answers


class _Exchanges:
    """The flights of one batch, driven to their end by one poller."""

    def __init__(
        self,
        flights: list[_InFlight],
        answers: list[Any],
        failed: Callable[[Exchange, CacheConnectionError], bool],
        answered: Callable[[Exchange, Any], Any],
    ) -> None:
        self.answers = answers
        self.failed = failed
        self.answered = answered
        self.poller = select.poll()
        self.waiting: dict[int, _InFlight] = {}
        #: Flights whose pooled connection the server had closed, and what that raised.
        self.stale: list[tuple[_InFlight, Exception]] = []
        timeout = None
        for flight in flights:
            timeout = flight.conn.timeout
            if not flight.flags:
                flight.conn.sock.settimeout(0.0)
        self.deadline = None if timeout is None else time.monotonic() + timeout
        sent = [self.start(flight) for flight in flights]
        for flight, whole in zip(flights, sent, strict=True):
            if not flight.settled:
                self.look(flight, whole)

    def start(self, flight: _InFlight) -> bool:
        """Send what goes out at once; True when the whole request is out."""
        try:
            sent = flight.send()
        except Exception as exc:
            self.finish(flight, exc)
            return False
        if sent and not flight.left:
            self.finish(flight, None)
        return sent

    def look(self, flight: _InFlight, sent: bool) -> None:
        """Read what is there already; watch the rest (and what is left to send).

        By the time every server has its request, the first ones have often
        answered: reading straight away spares a ``poll`` for them.
        """
        if sent:
            try:
                done = flight.receive()
            except Exception as exc:
                self.finish(flight, exc)
                return
            if done:
                self.finish(flight, None)
                return
        fd = flight.conn.sock.fileno()
        self.waiting[fd] = flight
        # (Nothing is read for a noreply request: only its sending is watched.)
        self.poller.register(fd, _READABLE if sent else _ANY if flight.left else select.POLLOUT)

    def run(self) -> None:
        """Wait for the servers until every reply is in (or the deadline passes)."""
        waiting = self.waiting
        while waiting:
            wait_ms = None
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    for flight in list(waiting.values()):
                        name = flight.conn.name
                        self.finish(
                            flight, TimeoutError(f"{name}: the reply did not complete in time")
                        )
                    break
                wait_ms = max(1, int(left * 1000 + 0.999))
            for fd, events in self.poller.poll(wait_ms):
                ready = waiting.get(fd)
                if ready is not None:
                    self.step(fd, ready, events)
        for flight, exc in self.stale:
            try:
                self.answers[flight.index] = self.answered(
                    flight.step, flight.node.stale(flight.step, exc)
                )
            except CacheConnectionError as error:
                if not self.failed(flight.step, error):
                    raise
                self.answers[flight.index] = FAILED

    def step(self, fd: int, flight: _InFlight, events: int) -> None:
        """Go on with ``flight``, whose socket became ready."""
        try:
            if flight.offset < len(flight.request) and flight.send():
                if not flight.left:
                    self.finish(flight, None)
                    return
                self.poller.modify(fd, _READABLE)
            # Replies are read even while a long request is still going out: a
            # server whose answers pile up unread stops reading requests.
            done = bool(flight.left and events & _READABLE) and flight.receive()
        except Exception as exc:
            self.finish(flight, exc)
            return
        if done:
            self.finish(flight, None)

    def finish(self, flight: _InFlight, exc: Exception | None) -> None:
        """Settle ``flight``: its answer and connection back, or its failure counted.

        Raises:
            CacheConnectionError: it failed, and fail-silent mode did not absorb it.
        """
        conn = flight.conn
        node = flight.node
        fd = conn.sock.fileno()
        if self.waiting.pop(fd, None) is not None:
            self.poller.unregister(fd)
        flight.settled = True
        if exc is None:
            if not flight.flags:
                conn.sock.settimeout(conn.timeout)
            if flight.step.expect is None:
                conn.quiet = True
            node.checkin(conn)
            self.answers[flight.index] = self.answered(flight.step, flight.answer())
            return
        node.pool.discard(conn)
        if flight.reused and not flight.replies and isinstance(exc, STALE_ERRORS):
            self.stale.append((flight, exc))  # sent again afterwards, on a connection of its own
            return
        error = node.failed(exc, first_use=not flight.reused)
        if not isinstance(error, CacheConnectionError) or not self.failed(flight.step, error):
            raise error from exc
        self.answers[flight.index] = FAILED
