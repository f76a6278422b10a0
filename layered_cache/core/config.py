"""What both clients are built from: their options, checked once, and their servers.

:func:`client_config` takes the constructor arguments common to
:class:`~layered_cache.Client` and :class:`~layered_cache.AsyncClient`,
refuses what is wrong (before any connection), fills in the defaults, and
returns a :class:`ClientConfig`; each engine then builds its own server
objects from it. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from layered_cache._addresses import ServerSpec, hash_name, parse_servers
from layered_cache._keys import KeyPolicy
from layered_cache._keys import key_policy as _key_policy
from layered_cache.auth import NoAuth
from layered_cache.auth._base import Authenticator
from layered_cache.core.codec import ValueCodec
from layered_cache.core.health import FailSilent, HealthPolicy, ServerHealth
from layered_cache.core.membership import Membership
from layered_cache.core.observer import Observer, make_observer
from layered_cache.discovery import StaticDiscovery
from layered_cache.discovery._base import Discovery
from layered_cache.errors import ConfigurationError
from layered_cache.serialization import PickleSerializer
from layered_cache.serialization._base import Serializer
from layered_cache.transport import TCPTransport, format_address
from layered_cache.transport._base import Address, Transport

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "ClientConfig",
    "ServerEntry",
    "check_count",
    "check_timeout",
    "client_config",
    "server_entry",
]

#: Connections per server (and, for the asyncio client, per event loop), unless
#: ``max_connections`` says otherwise.
DEFAULT_MAX_CONNECTIONS = 16


def check_timeout(name: str, value: float | None) -> float | None:
    """``value`` as a float if it is a positive number of seconds (or None), else raise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, not {value!r}"
        )
    return float(value)


def check_count(name: str, value: float, *, minimum: float) -> float:
    """``value`` if it is a number of at least ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigurationError(f"{name} must be a number >= {minimum:g}, not {value!r}")
    return value


def _check_strategy(name: str, value: object, method: str) -> None:
    if not callable(getattr(value, method, None)):
        raise ConfigurationError(
            f"{name} must provide {method}() (e.g. a layered_cache.{name} strategy), "
            f"not {type(value).__name__}"
        )


@attrs.frozen
class ServerEntry:
    """One server of a client: where it is, its names, and its health record."""

    address: Address
    #: The name placement hashes (as pymemcache's HashClient names it).
    key: str
    #: ``host:port`` as shown in errors and logs.
    name: str
    health: ServerHealth = attrs.field(eq=False)


def server_entry(
    address: Address,
    policy: HealthPolicy,
    membership: Membership,
    observer: Observer | None = None,
) -> ServerEntry:
    """The entry of one server, with a fresh health record (reporting to ``observer``).

    With background discovery, a failure of the server asks for a lookup soon
    (the node may have been replaced).
    """
    name = format_address(address)
    health = ServerHealth(name, policy, observer)
    if membership.interval:
        health.on_failure = membership.hint
    return ServerEntry(address, hash_name(address), name, health)


@attrs.frozen
class ClientConfig:
    """A client's checked options and servers (see :func:`client_config`)."""

    transport: Transport
    auth: Authenticator
    serializer: Serializer
    connect_timeout: float | None
    timeout: float | None
    policy: HealthPolicy = attrs.field(eq=False)
    max_pool_size: int | None
    idle_timeout: float
    servers: tuple[ServerEntry, ...]
    fail_silent: FailSilent = attrs.field(eq=False)
    codec: ValueCodec = attrs.field(eq=False)
    keys: KeyPolicy = attrs.field(eq=False)
    namespace_cache_ttl: float
    #: The discovery strategy and its state (static discovery: the servers, for good).
    membership: Membership = attrs.field(eq=False)
    #: None when nothing listens (see :mod:`layered_cache.core.observer`).
    observer: Observer | None = attrs.field(default=None, eq=False)


def client_config(
    servers: ServerSpec | Iterable[ServerSpec],
    *,
    transport: Transport | None,
    auth: Authenticator | None,
    serializer: Serializer | None,
    connect_timeout: float | None,
    timeout: float | None,
    retry_attempts: int,
    retry_timeout: float,
    dead_timeout: float,
    max_pool_size: int | None,
    pool_idle_timeout: float,
    ignore_exceptions: bool,
    key_policy: str = "strict",
    namespace_cache_ttl: float = 1.0,
    discovery: Discovery | None = None,
    listeners: Iterable[Any] | None = None,
    include_keys: bool = False,
    on_write_failure: Any = None,
) -> ClientConfig:
    """Check the common constructor arguments and fill in the defaults.

    Raises:
        ConfigurationError: an option is invalid (named in the message).
    """
    transport = TCPTransport() if transport is None else transport
    auth = NoAuth() if auth is None else auth
    serializer = PickleSerializer() if serializer is None else serializer
    _check_strategy("transport", transport, "connect")
    _check_strategy("auth", auth, "handshake")
    _check_strategy("serializer", serializer, "serialize")
    _check_strategy("serializer", serializer, "deserialize")
    discovery = StaticDiscovery() if discovery is None else discovery
    _check_strategy("discovery", discovery, "lookup")
    policy = HealthPolicy(
        retry_attempts=int(check_count("retry_attempts", retry_attempts, minimum=1)),
        retry_timeout=check_count("retry_timeout", retry_timeout, minimum=0),
        dead_timeout=check_count("dead_timeout", dead_timeout, minimum=0),
    )
    if max_pool_size is not None:
        max_pool_size = int(check_count("max_pool_size", max_pool_size, minimum=1))
    observer = make_observer(
        listeners,
        include_keys=include_keys,
        on_write_failure=on_write_failure,
        fail_silent=bool(ignore_exceptions),
    )
    seeds = tuple(parse_servers(servers))
    membership = Membership(discovery, seeds)
    entries: dict[str, ServerEntry] = {}
    for address in seeds:
        entry = server_entry(address, policy, membership, observer)
        if entry.key in entries:
            raise ConfigurationError(f"server {entry.name} is listed twice")
        entries[entry.key] = entry
    return ClientConfig(
        transport=transport,
        auth=auth,
        serializer=serializer,
        connect_timeout=check_timeout("connect_timeout", connect_timeout),
        timeout=check_timeout("timeout", timeout),
        policy=policy,
        max_pool_size=max_pool_size,
        idle_timeout=check_count("pool_idle_timeout", pool_idle_timeout, minimum=0),
        servers=tuple(entries.values()),
        fail_silent=FailSilent(bool(ignore_exceptions)),
        codec=ValueCodec(serializer),
        keys=_key_policy(key_policy),
        namespace_cache_ttl=check_count("namespace_cache_ttl", namespace_cache_ttl, minimum=0),
        membership=membership,
        observer=observer,
    )
