"""The one boundary where socket, TLS and pymemcache exceptions become layered_cache errors."""

from __future__ import annotations

import socket
import ssl

from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheIllegalInputError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from layered_cache.errors import (
    CacheConnectionError,
    CacheTimeoutError,
    InvalidArgumentError,
    LayeredCacheError,
    ServerError,
    ServerResponseError,
    TLSError,
    UpstreamUnavailableError,
)

__all__ = ["STALE_ERRORS", "translate"]

#: Errors a pooled connection gives when the server (or a proxy) closed it
#: while it sat idle. A fresh connection is expected to work.
STALE_ERRORS: tuple[type[BaseException], ...] = (
    MemcacheUnexpectedCloseError,
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


def _reply_text(exc: MemcacheError) -> str:
    said = exc.args[0] if exc.args else b""
    text = said.decode("ascii", "backslashreplace") if isinstance(said, bytes) else str(said)
    return text.strip()


def translate(  # noqa: PLR0912 - one branch per kind of failure, in one place
    exc: BaseException, server: str, timeout: float | None, *, first_use: bool = False
) -> LayeredCacheError:
    """Return the layered_cache error that reports ``exc`` raised while talking to ``server``.

    Args:
        exc: what was raised.
        server: ``host:port``, for the message.
        timeout: the socket timeout in force, for the message.
        first_use: the connection was opened for this call. A TLS connection
            the server closes before its first answer was refused (typically
            a client certificate is required), which is not an outage.
    """
    if isinstance(exc, LayeredCacheError):
        return exc
    error: ServerError
    if isinstance(exc, ssl.SSLCertVerificationError):
        error = TLSError(
            f"{server}: TLS certificate not accepted: {exc.verify_message}", server=server
        )
    elif isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        if first_use:
            error = TLSError(
                f"{server} closed the new TLS connection before answering: it refused "
                "this client (does it require a client certificate? see TLSTransport "
                "cert_file/key_file)",
                server=server,
            )
        else:
            error = CacheConnectionError(f"{server} closed the TLS connection", server=server)
    elif isinstance(exc, ssl.SSLError):
        error = TLSError(f"{server}: TLS failed: {exc.reason or exc}", server=server)
    elif isinstance(exc, TimeoutError):
        within = "" if timeout is None else f" within {timeout:g} s"
        error = CacheTimeoutError(f"{server} did not answer{within}", server=server)
    elif isinstance(exc, socket.gaierror):
        error = CacheConnectionError(
            f"{server}: cannot resolve the host name ({exc.strerror})", server=server
        )
    elif isinstance(exc, ConnectionRefusedError):
        error = CacheConnectionError(f"{server} refused the connection", server=server)
    elif isinstance(exc, MemcacheUnexpectedCloseError):
        error = CacheConnectionError(f"{server} closed the connection", server=server)
    elif isinstance(exc, OSError):
        error = CacheConnectionError(f"{server}: {exc.strerror or repr(exc)}", server=server)
    elif isinstance(exc, MemcacheIllegalInputError):
        return InvalidArgumentError(str(exc))
    elif isinstance(exc, MemcacheServerError) and _reply_text(exc) in _UPSTREAM_FAILURES:
        error = UpstreamUnavailableError(
            f"{server} answered 'SERVER_ERROR {_reply_text(exc)}': "
            "a memcached server behind this proxy is unreachable",
            server=server,
        )
    elif isinstance(exc, MemcacheServerError | MemcacheClientError):
        reply = _reply_text(exc) or exc.__class__.__name__
        error = ServerResponseError(f"{server} answered with an error: {reply}", server=server)
    elif isinstance(exc, MemcacheError):
        # An unexpected reply means the stream is out of step; the connection
        # has been discarded, which is all that can be done safely.
        error = CacheConnectionError(f"{server} sent an unexpected reply: {exc}", server=server)
    else:
        return LayeredCacheError(f"{server}: {exc.__class__.__name__}: {exc}")
    return error
