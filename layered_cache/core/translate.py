"""The one boundary where socket, TLS and protocol failures become layered_cache errors.

Both engines send whatever their I/O raised (and the error replies and
protocol errors the parser produced) through :func:`translate`, so a failure
reads the same whichever engine met it.
"""

from __future__ import annotations

import socket
import ssl

from layered_cache.errors import (
    CacheConnectionError,
    CacheTimeoutError,
    LayeredCacheError,
    PoolTimeoutError,
    ServerError,
    ServerResponseError,
    ServerUnavailableError,
    TLSError,
    UnexpectedReplyError,
    UnsupportedCommandError,
    UpstreamUnavailableError,
)
from layered_cache.protocol import ErrorReply, ProtocolError

__all__ = [
    "STALE_ERRORS",
    "ErrorReplyReceived",
    "PeerClosedError",
    "counts_against_health",
    "fail_silent_absorbs",
    "pool_exhausted",
    "translate",
    "unsupported_command",
]


class PeerClosedError(ConnectionError):
    """The server closed the connection while a reply was awaited (``recv`` gave ``b""``)."""


class ErrorReplyReceived(Exception):
    """The server answered with an error line (the engine raises it, :func:`translate` reads it).

    Attributes:
        reply: the :class:`~layered_cache.protocol.replies.ErrorReply`.
    """

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.code, reply.message)
        self.reply = reply


#: Errors a pooled connection gives when the server (or a proxy) closed it
#: while it sat idle. A fresh connection is expected to work.
STALE_ERRORS: tuple[type[BaseException], ...] = (
    PeerClosedError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


#: What twemproxy forwards (as ``SERVER_ERROR <text>``) when a server behind it is down.
_UPSTREAM_FAILURES = frozenset(
    {
        "Connection refused",
        "Connection timed out",
        "Connection reset by peer",
        "No route to host",
        "Host is unreachable",
        "Network is unreachable",
        "Broken pipe",
    }
)


def counts_against_health(error: Exception) -> bool:
    """Whether ``error`` says the server is unreachable (an outage), not misconfigured.

    Unreachable, stalled or garbling servers are skipped for a while; TLS and
    authentication refusals are configuration problems, reported each time;
    a proxy saying a server *behind* it is down says nothing of the proxy; a
    call that found every connection busy says the client is overloaded.
    """
    return isinstance(error, CacheConnectionError) and not isinstance(
        error, TLSError | UpstreamUnavailableError | ServerUnavailableError | PoolTimeoutError
    )


def fail_silent_absorbs(error: Exception) -> bool:
    """Whether fail-silent mode answers ``error`` as a miss (or a write as False).

    Outages are absorbed (unreachable, timed out, dropped, garbled, skipped
    servers, and servers a proxy cannot reach); TLS refusals are not: they are
    mistakes to fix, not outages to ride out.
    """
    return isinstance(error, CacheConnectionError) and not isinstance(error, TLSError)


def pool_exhausted(
    server: str, max_connections: int, pool_timeout: float | None, callers: str
) -> PoolTimeoutError:
    """The error for a call that found all of ``server``'s connections busy for ``pool_timeout``.

    ``callers`` says what to have fewer of ("concurrent calls", "threads calling at once").
    """
    waited = "" if pool_timeout is None else f" for {pool_timeout:g} s (pool_timeout)"
    return PoolTimeoutError(
        f"{server}: all {max_connections} connections (max_connections) stayed busy{waited}; "
        f"raise max_connections, or lower the number of {callers}",
        server=server,
    )


def unsupported_command(server: str, command: str) -> UnsupportedCommandError:
    """The error for a server that opened fine, then hung up on ``command`` instead of answering.

    That is what proxies such as twemproxy do with ``stats`` and ``flush_all``;
    it is not an outage.
    """
    return UnsupportedCommandError(
        f"{server} closed the connection instead of answering '{command}': it is "
        f"probably a proxy such as twemproxy (nutcracker), which does not support "
        f"{command}; run it against the memcached servers behind the proxy",
        server=server,
        command=command,
    )


def _error_reply(reply: ErrorReply, server: str) -> ServerError:
    text = reply.message.decode("ascii", "backslashreplace").strip()
    if reply.code == b"SERVER_ERROR" and text in _UPSTREAM_FAILURES:
        return UpstreamUnavailableError(
            f"{server} answered 'SERVER_ERROR {text}': "
            "a memcached server behind this proxy is unreachable",
            server=server,
        )
    if reply.code == b"ERROR":
        text = "ERROR (it does not know the command)"
    return ServerResponseError(f"{server} answered with an error: {text}", server=server)


def _tls_failure(exc: ssl.SSLError, server: str, *, first_use: bool) -> ServerError:
    if not first_use:
        # The connection already carried exchanges (handshake and certificate were
        # fine): a TLS failure now is a corrupted stream, e.g. a misbehaving proxy,
        # and is handled as any garbled reply.
        return UnexpectedReplyError(
            f"{server} sent a corrupted TLS stream: {exc.reason or exc}", server=server
        )
    return TLSError(f"{server}: TLS failed: {exc.reason or exc}", server=server)


def translate(
    exc: BaseException,
    server: str,
    timeout: float | None,
    *,
    first_use: bool = False,
    tls: bool = False,
) -> LayeredCacheError:
    """Return the layered_cache error that reports ``exc`` raised while talking to ``server``.

    Args:
        exc: what was raised.
        server: ``host:port``, for the message.
        timeout: the socket timeout in force, for the message.
        first_use: the connection was opened for this call. A TLS connection
            the server closes before its first answer was refused (typically
            a client certificate is required), which is not an outage; a TLS
            error on a connection that already served calls is a corrupted
            stream (:class:`~layered_cache.errors.UnexpectedReplyError`).
        tls: the connection is a TLS one (how it was closed then depends on the
            engine: a TLS EOF, or a plain reset or EOF under asyncio).
    """
    if isinstance(exc, LayeredCacheError):
        return exc
    if isinstance(exc, ErrorReplyReceived):
        return _error_reply(exc.reply, server)
    if isinstance(exc, ProtocolError):
        # The stream is out of step; the connection has been discarded, which
        # is all that can be done safely.
        return UnexpectedReplyError(f"{server} sent an unexpected reply: {exc}", server=server)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(
            f"{server}: TLS certificate not accepted: {exc.verify_message}", server=server
        )
    refused = isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) or (
        tls and isinstance(exc, PeerClosedError | ConnectionResetError | BrokenPipeError)
    )
    if refused:
        if first_use:
            return TLSError(
                f"{server} closed the new TLS connection before answering: it refused "
                "this client (does it require a client certificate? see TLSTransport "
                "cert_file/key_file)",
                server=server,
            )
        return CacheConnectionError(f"{server} closed the TLS connection", server=server)
    if isinstance(exc, ssl.SSLError):
        return _tls_failure(exc, server, first_use=first_use)
    if isinstance(exc, TimeoutError):
        within = "" if timeout is None else f" within {timeout:g} s"
        return CacheTimeoutError(f"{server} did not answer{within}", server=server)
    if isinstance(exc, socket.gaierror):
        return CacheConnectionError(
            f"{server}: cannot resolve the host name ({exc.strerror})", server=server
        )
    if isinstance(exc, ConnectionRefusedError):
        return CacheConnectionError(f"{server} refused the connection", server=server)
    if isinstance(exc, PeerClosedError):
        return CacheConnectionError(f"{server} closed the connection", server=server)
    if isinstance(exc, OSError):
        return CacheConnectionError(f"{server}: {exc.strerror or repr(exc)}", server=server)
    return LayeredCacheError(f"{server}: {exc.__class__.__name__}: {exc}")
