"""The exceptions layered_cache raises.

Everything derives from :class:`LayeredCacheError`::

    LayeredCacheError
    ├── ConfigurationError (also ValueError)   bad options, credentials or strategy names
    ├── InvalidKeyError (also ValueError)      a key memcached cannot store safely
    ├── InvalidArgumentError (also ValueError) an expire, delta or cas memcached cannot take
    ├── SerializationError                     a value the serializer cannot (de)serialize
    ├── AuthenticationError                    the server refused the credentials
    ├── DiscoveryError                         no node list from the discovery endpoint(s)
    └── ServerError                            a failure tied to one server
        ├── ServerResponseError                the server answered with an error
        │   └── UnsupportedCommandError        a proxy (twemproxy) refused an admin command
        └── CacheConnectionError               the server could not be reached or dropped us
            ├── CacheTimeoutError              no answer within the timeout
            │   └── PoolTimeoutError           no free connection within pool_timeout
            ├── TLSError                       the TLS handshake or certificate check failed
            ├── ServerUnavailableError         skipped: the server failed recently
            ├── UnexpectedReplyError           a reply the client does not understand
            └── UpstreamUnavailableError       a proxy says the server behind it is down

Messages name the server (``host:port``) and never contain a password.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CacheConnectionError",
    "CacheTimeoutError",
    "ConfigurationError",
    "DiscoveryError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "LayeredCacheError",
    "PoolTimeoutError",
    "SerializationError",
    "ServerError",
    "ServerResponseError",
    "ServerUnavailableError",
    "TLSError",
    "UnexpectedReplyError",
    "UnsupportedCommandError",
    "UpstreamUnavailableError",
]


class LayeredCacheError(Exception):
    """Base class of every exception layered_cache raises."""


class ConfigurationError(LayeredCacheError, ValueError):
    """An option, credential or strategy name is not acceptable.

    Raised while a client is being built, before any network I/O.
    """


class InvalidKeyError(LayeredCacheError, ValueError):
    """A key is longer than 250 bytes or contains whitespace or control characters.

    Raised before anything is sent, so a bad key never reaches the server.
    """


class InvalidArgumentError(LayeredCacheError, ValueError):
    """An argument other than the key (expire, delta, cas token) is not what memcached takes.

    Raised before anything is sent.
    """


class SerializationError(LayeredCacheError):
    """A value cannot be serialized, or stored bytes cannot be deserialized."""


class AuthenticationError(LayeredCacheError):
    """The server refused the credentials (or the handshake) of a new connection.

    Attributes:
        server: the ``host:port`` that refused.
        username: the user the handshake presented.
    """

    def __init__(self, message: str, *, server: str, username: str | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.username = username


class DiscoveryError(LayeredCacheError):
    """Discovery could not produce a node list: no endpoint answered, or none made sense.

    Raised only by an explicit ``refresh()``; the background refresh logs it
    and keeps the last good node list.

    Attributes:
        endpoints: the endpoints (``host:port``) or names that were asked.
    """

    def __init__(self, message: str, *, endpoints: tuple[str, ...]) -> None:
        super().__init__(message)
        self.endpoints = endpoints


class ServerError(LayeredCacheError):
    """A failure tied to one server.

    Attributes:
        server: the ``host:port`` (or socket path) concerned.
    """

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class ServerResponseError(ServerError):
    """The server answered with an error (``SERVER_ERROR`` or ``CLIENT_ERROR``).

    For example, memcached refuses values larger than its item size limit
    (1 MB by default). Nothing else is affected: the client replaces the
    connection concerned and the next call works as usual.
    """


class UnsupportedCommandError(ServerResponseError):
    """The server hung up instead of answering a command it does not support.

    This is what proxies such as twemproxy do with ``flush_all`` and ``stats``.
    It is not an outage: the server stays in service for everything else.

    Attributes:
        command: the command that was refused (e.g. ``"flush_all"``).
    """

    def __init__(self, message: str, *, server: str, command: str) -> None:
        super().__init__(message, server=server)
        self.command = command


class CacheConnectionError(ServerError):
    """The server could not be reached, or the connection broke mid-call.

    The connection concerned is discarded; the next call opens (and
    authenticates) a fresh one.
    """


class CacheTimeoutError(CacheConnectionError):
    """The server did not connect or answer within the configured timeout."""


class PoolTimeoutError(CacheTimeoutError):
    """Every connection to the server stayed busy for ``pool_timeout``: the client is overloaded.

    Connections per server are bounded (``max_connections``); a call that finds
    them all busy waits for one to come back. This is not a server failure:
    it does not count toward the server's health. Fail-silent mode absorbs it
    like an outage.
    """


class TLSError(CacheConnectionError):
    """The TLS handshake failed: untrusted certificate, wrong hostname, or refused client."""


class ServerUnavailableError(CacheConnectionError):
    """The server failed recently and is being skipped until its retry time comes.

    Raised at once, without a network round trip, so that a dead server does
    not cost every call a full timeout.
    """


class UnexpectedReplyError(CacheConnectionError):
    """The server sent bytes that are not a reply to what was asked: a garbled stream.

    A misbehaving server or proxy, or a connection out of step. The connection
    is closed (its later replies could be read by the wrong call), the failure
    counts toward the server's health like an outage, and fail-silent mode
    absorbs it like an outage.
    """


class UpstreamUnavailableError(CacheConnectionError):
    """A proxy (twemproxy) answered that the memcached server behind it is unreachable.

    Only the keys on that server are affected; the proxy itself stays in
    service. Fail-silent mode treats it like any other outage.
    """
