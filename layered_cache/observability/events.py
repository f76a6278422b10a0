"""The events a client reports to its listeners: immutable values, safe to keep and share.

Every event is immutable (hashable, thread-safe). None carries a password, and
none carries a cache key unless the client was built with
``include_keys=True`` (keys can be session ids): then ``key_names`` holds them,
and it never shows in the event's repr.

- :class:`OperationEvent`: one exchange with one server, named after the
  public method that made it (``get_many`` over three servers: three events).
- :class:`ConnectEvent`, :class:`HandshakeEvent`: a new connection, and its
  authentication.
- :class:`ServerDownEvent`, :class:`ServerUpEvent`: the health policy starts
  skipping a server, or takes it back.
- :class:`StaleConnectionEvent`: a pooled connection the server had closed
  was replaced.
- :class:`HerdEvent`: ``get_or_set`` won the right to compute, waited for
  the winner, or was served a stale value.
- :class:`WriteFailureEvent`: in fail-silent mode, a write that failed and
  was answered with False: the server may still hold the old value.
"""

from __future__ import annotations

from typing import Final, NamedTuple, TypeAlias

import attrs

__all__ = [
    "HERD_LEASE_WAITED",
    "HERD_LEASE_WON",
    "HERD_STALE_SERVED",
    "ConnectEvent",
    "Event",
    "HandshakeEvent",
    "HerdEvent",
    "OperationEvent",
    "ServerDownEvent",
    "ServerUpEvent",
    "StaleConnectionEvent",
    "WriteFailureEvent",
]

#: :attr:`HerdEvent.kind`: this caller won the right to compute the value.
HERD_LEASE_WON: Final = "lease_won"
#: :attr:`HerdEvent.kind`: this caller waited for another caller's value.
HERD_LEASE_WAITED: Final = "lease_waited"
#: :attr:`HerdEvent.kind`: this caller got a value another caller is refreshing.
HERD_STALE_SERVED: Final = "stale_served"


class OperationEvent(NamedTuple):
    """One exchange with one server, as a public method made it.

    A named tuple (immutable and hashable, like the other events, and the
    cheapest object Python builds: there is one per exchange).

    Attributes:
        operation: the public method's name (``"get"``, ``"get_many"``,
            ``"set"``, ``"get_or_set"``, ...).
        server: ``"host:port"``.
        keys: how many keys the exchange carried (0 for ``stats``, ``version``...).
        hits: keys found (reads only; 0 for writes).
        misses: keys not found (reads only; 0 for writes).
        duration: seconds, from sending to the last byte of the reply.
        error: None, or the name of the exception class the exchange failed
            with (``"CacheTimeoutError"``, ``"ServerUnavailableError"``, ...).
        key_names: the keys, only with ``include_keys=True`` (else None).
    """

    operation: str
    server: str
    keys: int
    hits: int
    misses: int
    duration: float
    error: str | None = None
    key_names: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        # Never the key names, even when the client was asked to include them.
        return (
            f"OperationEvent(operation={self.operation!r}, server={self.server!r}, "
            f"keys={self.keys}, hits={self.hits}, misses={self.misses}, "
            f"duration={self.duration!r}, error={self.error!r})"
        )


@attrs.frozen
class ConnectEvent:
    """A new connection to ``server`` was opened (or could not be).

    Attributes:
        server: ``"host:port"``.
        duration: seconds spent connecting (TLS handshake and authentication included).
        error: None, or the name of the exception class the attempt failed with.
    """

    server: str
    duration: float
    error: str | None = None


@attrs.frozen
class HandshakeEvent:
    """A new connection authenticated (or was refused); only for authenticators that log in.

    Attributes:
        server: ``"host:port"``.
        mechanism: the authenticator's class name (``"MemCachierAuth"``, ``"AsciiAuth"``).
        user: the user name, if the authenticator has one (never the password).
        ok: whether the server accepted the credentials.
        error: None, or the name of the exception class of the refusal.
    """

    server: str
    mechanism: str
    user: str | None
    ok: bool
    error: str | None = None


@attrs.frozen
class ServerDownEvent:
    """The health policy skips ``server`` for ``retry_in`` seconds after a failure.

    Attributes:
        server: ``"host:port"``.
        failures: failures in a row so far.
        down: True once ``failures`` reached ``retry_attempts`` (the server is
            reported down and tried every ``dead_timeout``); False for the
            shorter ``retry_timeout`` window before that.
        retry_in: seconds until one call tries it again.
        error: the name of the exception class of the failure.
    """

    server: str
    failures: int
    down: bool
    retry_in: float
    error: str


@attrs.frozen
class ServerUpEvent:
    """``server`` answered again after ``failures`` failures in a row: it is back in service."""

    server: str
    failures: int


@attrs.frozen
class StaleConnectionEvent:
    """A pooled connection to ``server`` had been closed by the server and was replaced.

    (A restart, or a proxy's idle timeout; the pool's other idle connections
    are dropped with it.)

    Attributes:
        server: ``"host:port"``.
        error: the name of the exception class that showed it.
    """

    server: str
    error: str


@attrs.frozen
class HerdEvent:
    """What ``get_or_set`` did about a miss (see :doc:`/thundering-herds`).

    Attributes:
        kind: :data:`HERD_LEASE_WON` (this caller computes the value),
            :data:`HERD_LEASE_WAITED` (it waited ``waited`` seconds for the
            winner's value, or until ``wait_timeout``), or
            :data:`HERD_STALE_SERVED` (it got a value marked stale, or due
            for refresh, while another caller recomputes it).
        server: ``"host:port"``.
        operation: the public method (``"get_or_set"``).
        waited: seconds spent waiting (0 except for :data:`HERD_LEASE_WAITED`).
        key_names: the key, only with ``include_keys=True``.
    """

    kind: str
    server: str
    operation: str = "get_or_set"
    waited: float = 0.0
    key_names: tuple[str, ...] | None = attrs.field(default=None, repr=False)


@attrs.frozen
class WriteFailureEvent:
    """In fail-silent mode, a write failed and its caller got False instead of an error.

    The server may still hold the value from before the write: a stale value
    that nothing will correct until it expires. Listeners see this event
    (with ``key_names`` only under ``include_keys=True``); the client's
    ``on_write_failure`` hook gets it with ``key_names`` always filled in, to
    queue the keys for invalidation.

    Attributes:
        operation: the public method (``"set"``, ``"delete"``, ``"set_many"``, ...).
        server: ``"host:port"``.
        keys: how many keys the failed exchange carried.
        error: the name of the exception class.
        key_names: the keys, as sent (str, UTF-8 decoded), or None (see above).
    """

    operation: str
    server: str
    keys: int
    error: str
    key_names: tuple[str, ...] | None = attrs.field(default=None, repr=False)


#: Any event a listener may receive.
Event: TypeAlias = (
    OperationEvent
    | ConnectEvent
    | HandshakeEvent
    | ServerDownEvent
    | ServerUpEvent
    | StaleConnectionEvent
    | HerdEvent
    | WriteFailureEvent
)
