"""Conversations on one connection, outside any call: the auth handshake and the meta probe.

(And how long closing a connection in order may wait: ``quiet_close_limit``.)

A connection flow yields ``(request, expect)`` pairs and receives each reply
(an :class:`~layered_cache.protocol.replies.ErrorReply` included, or :data:`CLOSED`
when the server hung up instead of answering). Each engine drives them on
its own kind of connection; the conversation itself is written once, here.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final, TypeAlias

from layered_cache.auth._base import HandshakeFlow
from layered_cache.core.translate import ErrorReplyReceived, PeerClosedError
from layered_cache.protocol import ErrorReply, Expect, ReplyParser, requests

__all__ = [
    "CLOSED",
    "Conversation",
    "ConnectionFlow",
    "handshake_flow",
    "meta_probe_flow",
    "quiet_close_limit",
]


class _Closed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CLOSED"


#: Sent into a connection flow when the server closed the connection instead of answering.
CLOSED: Final[Any] = _Closed()

#: Yields ``(request, expect kind)``, receives the reply; returns the conversation's result.
ConnectionFlow: TypeAlias = Generator[tuple[bytes, int], Any, Any]

_PROBE_KEY: Final = b"layered_cache:meta-probe"

# How long closing in order waits for a server when its connection has no timeout.
_QUIET_CLOSE_TIMEOUT: Final = 1.0


def quiet_close_limit(timeout: float | None) -> float:
    """How long closing a connection in order may wait for its server, on either engine.

    A connection whose last requests were ``noreply`` is closed only once the
    server has read them (closing at once could make it drop them): for at
    most the connection's ``timeout``, or a second when it has none.
    """
    return _QUIET_CLOSE_TIMEOUT if timeout is None else timeout


class Conversation:
    """A connection flow being driven: the stepping both engines' connections share.

    The connection writes each request :meth:`start` and :meth:`reply` give
    (the parser already expects its reply), reads until the parser has the
    reply (or the server hung up: :data:`CLOSED`), and hands it to
    :meth:`reply`, until there is no request left; then :attr:`result` is what
    the flow returned. No request is kept here: one may carry a password.
    """

    __slots__ = ("_flow", "_parser", "result")

    def __init__(self, flow: ConnectionFlow, parser: ReplyParser) -> None:
        self._flow = flow
        self._parser = parser
        #: What the flow returned, once :meth:`reply` answered None.
        self.result: Any = None

    def start(self) -> bytes | None:
        """The first request, or None if the flow asks nothing."""
        try:
            request, expect = next(self._flow)
        except StopIteration as done:
            self.result = done.value
            return None
        self._parser.expect(expect)
        return request

    def reply(self, reply: Any) -> bytes | None:
        """Hand the flow its reply; the next request, or None once the flow is done.

        Raises:
            ProtocolError: the flow is done but bytes nobody asked for came after the reply.
        """
        try:
            request, expect = self._flow.send(reply)
        except StopIteration as done:
            if reply is not CLOSED:
                self._parser.check_idle()
            self.result = done.value
            return None
        self._parser.expect(expect)
        return request


def handshake_flow(flow: HandshakeFlow) -> ConnectionFlow:
    """An authenticator's handshake as a connection flow (each reply is one line).

    The authenticator receives the reply line without its CRLF, or ``b""``
    when the server closed the connection instead of answering.
    """
    try:
        request = next(flow)
    except StopIteration:
        return None
    while True:
        try:
            reply = yield request, Expect.LINE
        finally:
            # The request may carry a password: keep it out of tracebacks' locals.
            del request
        try:
            request = flow.send(b"" if reply is CLOSED else reply)
        except StopIteration:
            return None


def meta_probe_flow() -> ConnectionFlow:
    """Whether the server speaks meta: ``get <key>``, then ``mn``, on one connection.

    Every memcached and proxy answers the ``get`` (``END``), which proves the
    server is up; then memcached 1.6+ answers ``MN``, older servers ``ERROR``,
    and twemproxy hangs up. Only those answers mean "no meta"; anything else
    is a failure like any other. Two round trips, not one pipelined:
    twemproxy drops the replies queued before a command it refuses.
    """
    reply = yield requests.get([_PROBE_KEY]), Expect.VALUES
    if reply is CLOSED:
        raise PeerClosedError("closed the connection instead of answering a get")
    if isinstance(reply, ErrorReply):
        raise ErrorReplyReceived(reply)
    reply = yield requests.META_NOOP, Expect.META_BATCH
    return isinstance(reply, list)
