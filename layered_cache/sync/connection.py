"""One blocking socket to one server: the only place the sync engine reads and writes.

A :class:`Connection` is opened by the client's transport, authenticated by
the client's authenticator (its handshake flow, driven here), and then speaks
through the shared reply parser. It knows nothing of pools, health or retries
(that is :mod:`layered_cache.sync.node`).
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from layered_cache.auth._base import Authenticator
from layered_cache.core.connection_flows import (
    CLOSED,
    ConnectionFlow,
    Conversation,
    handshake_flow,
    quiet_close_limit,
)
from layered_cache.core.translate import ErrorReplyReceived, PeerClosedError
from layered_cache.protocol import ErrorReply, ReplyParser, whole_reply
from layered_cache.protocol.framing import write_commands
from layered_cache.transport._base import Address, Transport
from layered_cache.transport.tcp import input_watch

__all__ = ["Connection", "close_in_order"]

# What one read asks for when no value body of known size is awaited.
_RECV_SIZE = 65536


# Plain sockets are timed by the kernel (SO_RCVTIMEO/SO_SNDTIMEO on a blocking
# socket) rather than by Python's socket timeout: with a timeout, Python polls
# before every send and every recv, which doubles the system calls of an
# exchange, and each one lets go of the GIL: threads sharing a client then
# queue for the GIL twice as often (8 threads did fewer gets than one).
_KERNEL_TIMEOUTS = sys.platform == "linux"
_SOL_SOCKET = socket.SOL_SOCKET
_SO_RCVTIMEO = socket.SO_RCVTIMEO


def _timeval(seconds: float | None) -> bytes:
    """``seconds`` as the ``struct timeval`` of ``SO_RCVTIMEO``/``SO_SNDTIMEO`` (0: forever)."""
    if seconds is None:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    micro = int((seconds - whole) * 1e6)
    return struct.pack("ll", whole, micro or (0 if whole else 1))


class Connection:
    """A connected, authenticated socket and the parser of its reply stream."""

    __slots__ = (
        "_deadline",
        "_input_waiting",
        "_stretched",
        "_timeval",
        "idle_since",
        "kernel_timed",
        "name",
        "parser",
        "quiet",
        "send",
        "sock",
        "timeout",
        "tls",
    )

    def __init__(self, sock: socket.socket, name: str, timeout: float | None = None) -> None:
        self.sock = sock
        #: Whether the socket is TLS, over which a pipelined request goes out cut at
        #: command boundaries (:mod:`layered_cache.protocol.framing`; memcached's TLS
        #: mode can stall on a record that ends inside a command).
        self.tls = isinstance(sock, ssl.SSLSocket)
        #: Writes a whole request with ``sock.sendall``, over TLS command-aligned.
        self.send: Callable[[bytes], None] = (
            functools.partial(write_commands, sock.sendall) if self.tls else sock.sendall
        )
        self.name = name
        #: Seconds an exchange may take as a whole, or None for no bound.
        self.timeout = timeout
        self._deadline = 0.0
        self._stretched = False
        self.parser = ReplyParser()
        #: monotonic time the connection went back to the pool (kept only with an idle timeout).
        self.idle_since = 0.0
        #: A ``noreply`` command was sent: an error reply to it may be waiting.
        self.quiet = False
        #: A blocking socket timed by the kernel (see :meth:`time_by_kernel`).
        self.kernel_timed = False
        self._timeval = b""
        # Asked before commands that must not reach a server that hung up (see peer_closed).
        self._input_waiting = input_watch(sock)

    def time_by_kernel(self) -> None:
        """Make a plain socket blocking, its ``timeout`` enforced by the kernel.

        Each send and recv is then one system call (Python's own socket
        timeout adds a poll before each). A read or write that runs out of
        time raises :class:`BlockingIOError`, which :meth:`exchange` reports as
        a :class:`TimeoutError`. TLS sockets keep Python's timeout.
        """
        sock = self.sock
        if not _KERNEL_TIMEOUTS or type(sock) is not socket.socket:
            return
        self._timeval = _timeval(self.timeout)
        sock.settimeout(None)
        sock.setsockopt(_SOL_SOCKET, _SO_RCVTIMEO, self._timeval)
        sock.setsockopt(_SOL_SOCKET, socket.SO_SNDTIMEO, self._timeval)
        self.kernel_timed = True

    @classmethod
    def open(
        cls,
        address: Address,
        *,
        name: str,
        transport: Transport,
        auth: Authenticator,
        connect_timeout: float | None,
        timeout: float | None,
    ) -> Connection:
        """Connect through ``transport`` and authenticate, all within ``connect_timeout``."""
        sock = transport.connect(address, connect_timeout=connect_timeout, timeout=timeout)
        try:
            conn = cls(sock, name, timeout)
            # Authenticating is part of connecting: connect_timeout bounds it.
            sock.settimeout(connect_timeout)
            conn.run_flow(handshake_flow(auth.handshake(name)))
            sock.settimeout(timeout)
            conn.time_by_kernel()
        except BaseException:
            sock.close()
            raise
        return conn

    def exchange(self, request: bytes, expect: int | None, count: int, keys: Any) -> Any:  # noqa: PLR0912 - the hot path, kept inline
        """Send ``request``; read ``count`` replies of kind ``expect`` (one reply, or a list).

        Raises:
            ErrorReplyReceived: the server answered with an error line.
            ProtocolError: the reply does not fit what was asked (or extra bytes came).
            PeerClosedError: the server closed the connection before answering.
            OSError: the socket failed (timeouts included).
        """
        if self.timeout is not None:
            # The socket timeout bounds each read; this bounds the exchange as a whole
            # (a reply trickling in byte by byte cannot stretch a call past it).
            self._deadline = time.monotonic() + self.timeout
        try:
            self.send(request)
            if expect is None:
                self.quiet = True
                return None
            parser = self.parser
            if count == 1:
                # Right after a request nothing is buffered (an exchange ends with the
                # parser empty, or the connection is closed): read before parsing.
                data = self.sock.recv(_RECV_SIZE)
                if data:
                    reply = whole_reply(expect, keys, data)  # the common case
                    if reply is not None:
                        return reply
                parser.expect(expect, keys)
                if data:
                    parser.feed(data)
                    reply = parser.next_reply()
                    if reply is not None:
                        if type(reply) is ErrorReply:
                            raise ErrorReplyReceived(reply)
                        return reply
                count = 0  # expected already
            for _ in range(count):
                parser.expect(expect, keys)
            try:
                if count == 0:
                    return self._read()
                return [self._read() for _ in range(count)]
            finally:
                if self._stretched:
                    self._stretched = False
                    self._restore_timeout()
        except BlockingIOError as exc:  # a kernel-timed socket ran out of time
            raise TimeoutError(f"{self.name}: the exchange did not complete in time") from exc

    def _read(self) -> Any:
        parser = self.parser
        recv = self.sock.recv
        reply = parser.next_reply() if parser.buffered else None
        while reply is None:
            if self.timeout is not None:
                self._shorten_timeout()
            data = recv(parser.wanted())
            if not data:
                raise PeerClosedError(f"{self.name} closed the connection")
            parser.feed(data)
            reply = parser.next_reply()
        if type(reply) is ErrorReply:
            raise ErrorReplyReceived(reply)
        return reply

    def _shorten_timeout(self) -> None:
        """Before a further read: wait only for what is left of the exchange's time."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self.name}: the reply did not complete in time")
        if self.kernel_timed:
            self.sock.setsockopt(_SOL_SOCKET, _SO_RCVTIMEO, _timeval(left))
        else:
            self.sock.settimeout(left)
        self._stretched = True

    def _restore_timeout(self) -> None:
        if self.kernel_timed:
            self.sock.setsockopt(_SOL_SOCKET, _SO_RCVTIMEO, self._timeval)
        else:
            self.sock.settimeout(self.timeout)

    def run_flow(self, flow: ConnectionFlow) -> Any:
        """Drive a connection flow (handshake, probe): send each request, hand back its reply."""
        talk = Conversation(flow, self.parser)
        request = talk.start()
        while request is not None:
            self.sock.sendall(request)
            del request  # a handshake request may carry a password
            request = talk.reply(self._flow_reply())
        return talk.result

    def _flow_reply(self) -> Any:
        """The reply a connection flow waits for, or :data:`CLOSED` if the server hung up."""
        parser = self.parser
        reply = parser.next_reply()
        while reply is None:
            data = self.sock.recv(parser.wanted())
            if not data:
                return CLOSED
            parser.feed(data)
            reply = parser.next_reply()
        return reply

    def peer_closed(self) -> bool:
        """Whether this idle connection has bytes or an end-of-file waiting (the server hung up).

        A connection on which the server closed, or sent something nobody
        asked for (an error answering a ``noreply`` command), must not carry
        the next command.
        """
        if not self._input_waiting():
            return False
        return not self.tls or self._tls_input()

    def _tls_input(self) -> bool:
        """Read, without waiting, all a TLS socket has: True if it held data or an end-of-file.

        What a TLS socket has waiting may be TLS's own records only: a TLS 1.3
        server sends its session tickets after the handshake, and a connection
        whose first command was ``noreply`` has not read them yet. They are not
        the server hanging up: once read, the connection is as good as before
        (closing it instead would also lose the ``noreply`` commands the server
        had not read yet).
        """
        sock = self.sock
        sock.settimeout(0.0)
        data = False
        try:
            while sock.recv(_RECV_SIZE):
                data = True  # bytes nobody asked for
            return True  # end-of-file: the server hung up
        except ssl.SSLWantReadError:
            return data  # nothing more: without data, the connection is as it was
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.timeout)

    def close(self) -> None:
        """Close the socket at once (sends nothing more to the server).

        (:func:`close_in_order` closes connections that may still carry
        ``noreply`` commands the server has not read.)
        """
        with contextlib.suppress(OSError):  # closing never matters to the caller
            self.sock.close()

    def _end_writes(self) -> bool:
        """Shut our sending side, for :func:`close_in_order`; False if the socket is gone.

        On a TLS socket this leaves TLS: what the server sends from now on is
        read as plain bytes, and discarded.
        """
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.setblocking(False)
        except (OSError, ValueError):
            return False
        return True

    def _hung_up(self) -> bool:
        """Read and discard what arrived after :meth:`_end_writes`; True once the server hung up."""
        try:
            while self.sock.recv(_RECV_SIZE):
                pass
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            pass  # (reset, or gone: the server will not read more either)
        return True


def close_in_order(conns: Iterable[Connection]) -> None:
    """Close ``conns``, letting each server first read the ``noreply`` commands it was sent.

    A socket closed while its peer still sends is reset (a TCP RST), and a
    server reset drops what it had not read yet. Over TLS the server does send
    unasked: its session tickets, which a connection that never read a reply
    has not consumed, and which may still arrive after the close. So a TLS
    connection whose last commands were ``noreply`` says it is done and waits
    for the server to hang up, which it does once it has read (and carried
    out) everything before. Those waits overlap: closing many connections
    takes at most the longest of their timeouts. Any other connection, and
    any still open when the time is up, is closed at once.
    """
    waiting: dict[int, Connection] = {}
    poller = select.poll()
    longest = 0.0
    try:
        for conn in conns:
            if conn.tls and conn.quiet and conn._end_writes():
                fd = conn.sock.fileno()
                waiting[fd] = conn
                poller.register(fd, select.POLLIN)
                longest = max(longest, quiet_close_limit(conn.timeout))
            else:
                conn.close()
        deadline = time.monotonic() + longest
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                conn = waiting[fd]
                if conn._hung_up():
                    poller.unregister(fd)
                    del waiting[fd]
                    conn.close()
    finally:
        for conn in waiting.values():
            conn.close()
