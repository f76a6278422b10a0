"""The Client: one transport, one authenticator and one serializer over one or many servers."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from layered_cache._addresses import ServerSpec, hash_name, parse_servers
from layered_cache._connection import UNREADABLE, Connection, ReadGuard
from layered_cache._fastpath import get_many_direct, get_one, set_many_direct, set_one
from layered_cache._keys import encode_key
from layered_cache._meta import meta_add, meta_arithmetic, meta_mark_stale, meta_set_many
from layered_cache._ring import Ring
from layered_cache._server import HealthPolicy, ServerNode
from layered_cache._stampede import get_or_set, speaks_meta
from layered_cache.auth import NoAuth
from layered_cache.auth._base import Authenticator
from layered_cache.errors import (
    CacheConnectionError,
    ConfigurationError,
    InvalidArgumentError,
    TLSError,
)
from layered_cache.serialization import PickleSerializer
from layered_cache.serialization._base import Serializer
from layered_cache.transport import TCPTransport, format_address
from layered_cache.transport._base import Address, Transport

__all__ = ["Client"]

Key = str | bytes

# pymemcache's unbound methods, looked up once: each call passes a connection.
_gets = Connection.gets
_gets_many = Connection.gets_many
_add = Connection.add
_replace = Connection.replace
_append = Connection.append
_prepend = Connection.prepend
_cas = Connection.cas
_delete = Connection.delete
_delete_many = Connection.delete_many
_incr = Connection.incr
_decr = Connection.decr
_touch = Connection.touch
_stats = Connection.stats
_version = Connection.version
_flush_all = Connection.flush_all


def _check_timeout(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, not {value!r}"
        )
    return float(value)


def _check_count(name: str, value: float, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigurationError(f"{name} must be a number >= {minimum:g}, not {value!r}")
    return value


def _check_strategy(name: str, value: object, method: str) -> None:
    if not callable(getattr(value, method, None)):
        raise ConfigurationError(
            f"{name} must provide {method}() (e.g. a layered_cache.{name} strategy), "
            f"not {type(value).__name__}"
        )


class Client:
    """A thread-safe memcached client composed of a transport, an authenticator and a serializer.

    Args:
        servers: ``"host:port"``, ``(host, port)``, or a list of either; a string
            may also list several servers separated by commas or spaces. With
            several servers, keys are spread by rendezvous hashing exactly as
            Django's ``PyMemcacheCache`` spreads them.
        transport: how bytes travel: :class:`~layered_cache.transport.TCPTransport`
            (default) or :class:`~layered_cache.transport.TLSTransport`.
        auth: what each new connection proves before its first command:
            :class:`~layered_cache.auth.NoAuth` (default),
            :class:`~layered_cache.auth.MemCachierAuth` or
            :class:`~layered_cache.auth.AsciiAuth`.
        serializer: what the stored bytes mean:
            :class:`~layered_cache.serialization.PickleSerializer` (default) or
            :class:`~layered_cache.serialization.JSONSerializer`.
        connect_timeout: seconds allowed to connect, complete the TLS handshake
            and authenticate; None waits forever.
        timeout: seconds allowed for each send or receive; None waits forever.
        retry_attempts: failures in a row after which a server is reported down
            (a warning on the ``layered_cache`` logger).
        retry_timeout: seconds a server that just failed is skipped: calls for
            its keys raise :class:`~layered_cache.errors.ServerUnavailableError`
            at once. Then exactly one call tries it again while the others
            keep failing fast; a success puts it back in service.
        dead_timeout: the same window once the server is down (after
            ``retry_attempts`` failures): one call every ``dead_timeout``
            seconds tries it. The default (1 s) uses a restarted server again
            within about a second; raise it to try a long-dead server less often.
        max_pool_size: idle connections kept per server (None: as many as
            threads used them). Calls never wait for a connection.
        pool_idle_timeout: seconds after which an idle connection is replaced
            instead of reused (0: never), for servers or proxies that drop idle
            connections.
        ignore_exceptions: fail-silent mode. When a server cannot be reached
            (refused, timed out, dropped, being skipped), reads answer as a miss
            and writes return False instead of raising; each such call is
            counted in :attr:`ignored_errors`, and each failure burst is logged
            once per server on the ``layered_cache`` logger. Bad keys, values,
            credentials and TLS refusals still raise: they are mistakes to fix,
            not outages to ride out.

    Connections are pooled per server and shared by threads; a process forked
    from this one (a gunicorn or Celery worker) starts with an empty pool and
    opens its own connections.

    While a server is being skipped, calls for its keys raise
    :class:`~layered_cache.errors.ServerUnavailableError` at once (no timeout
    wait); keys on the other servers keep working. A miss (``None``) therefore
    always means "not in the cache", never "could not ask".

    Raises:
        ConfigurationError: an option is invalid; no connection is attempted.

    Example:
        >>> client = Client(memcached_address)
        >>> client.set("greeting", {"text": "hello"}, expire=60)
        True
        >>> client.get("greeting")
        {'text': 'hello'}
        >>> client.close()
    """

    def __init__(
        self,
        servers: ServerSpec | Iterable[ServerSpec],
        *,
        transport: Transport | None = None,
        auth: Authenticator | None = None,
        serializer: Serializer | None = None,
        connect_timeout: float | None = 2.0,
        timeout: float | None = 2.0,
        retry_attempts: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 1.0,
        max_pool_size: int | None = None,
        pool_idle_timeout: float = 0.0,
        ignore_exceptions: bool = False,
    ) -> None:
        self.transport: Transport = TCPTransport() if transport is None else transport
        self.auth: Authenticator = NoAuth() if auth is None else auth
        self.serializer: Serializer = PickleSerializer() if serializer is None else serializer
        _check_strategy("transport", self.transport, "connect")
        _check_strategy("auth", self.auth, "handshake")
        _check_strategy("serializer", self.serializer, "serialize")
        _check_strategy("serializer", self.serializer, "deserialize")
        self.ignore_exceptions = bool(ignore_exceptions)
        self._ignored_errors = 0
        self._ignored_lock = threading.Lock()
        self.connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        self.timeout = _check_timeout("timeout", timeout)
        policy = HealthPolicy(
            retry_attempts=int(_check_count("retry_attempts", retry_attempts, minimum=1)),
            retry_timeout=_check_count("retry_timeout", retry_timeout, minimum=0),
            dead_timeout=_check_count("dead_timeout", dead_timeout, minimum=0),
        )
        if max_pool_size is not None:
            max_pool_size = int(_check_count("max_pool_size", max_pool_size, minimum=1))
        idle_timeout = _check_count("pool_idle_timeout", pool_idle_timeout, minimum=0)

        self._serde = ReadGuard(self.serializer)
        self._nodes: dict[str, ServerNode] = {}
        for address in parse_servers(servers):
            name = hash_name(address)
            if name in self._nodes:
                raise ConfigurationError(f"server {format_address(address)} is listed twice")
            self._nodes[name] = ServerNode(
                address,
                format_address(address),
                _connection_factory(
                    address,
                    transport=self.transport,
                    auth=self.auth,
                    serde=self._serde,
                    connect_timeout=self.connect_timeout,
                    timeout=self.timeout,
                ),
                policy,
                timeout=self.timeout,
                max_idle=max_pool_size,
                idle_timeout=idle_timeout,
            )
        nodes = list(self._nodes.values())
        # One server needs no hashing at all: the common case stays cheap.
        self._only: ServerNode | None = nodes[0] if len(nodes) == 1 else None
        self._ring = Ring(list(self._nodes))
        # Sockets of a client that is simply dropped are closed, not left to the GC.
        weakref.finalize(self, _close_all, nodes)
        _live_clients.add(self)

    # -- routing ------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        """The servers, as ``host:port`` strings, in the order given."""
        return [node.name for node in self._nodes.values()]

    def server_for(self, key: Key) -> str:
        """The server (``host:port``) that holds ``key``."""
        return self._node(key).name

    def _node(self, key: Key) -> ServerNode:
        only = self._only
        if only is not None:
            return only
        try:
            return self._nodes[self._ring.node_for(key)]
        except TypeError:
            encode_key(key)  # raises InvalidKeyError naming the problem
            raise

    def _group(self, keys: Iterable[Key], *, validate: bool) -> dict[ServerNode, list[Key]]:
        only = self._only
        if only is not None:
            return {only: keys if isinstance(keys, list) else list(keys)}
        groups: dict[ServerNode, list[Key]] = {}
        for key in keys:
            if validate:
                # A multi-server write refuses every key before any server is written.
                encode_key(key)
            groups.setdefault(self._node(key), []).append(key)
        return groups

    # -- reads --------------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` when it is missing.

        Raises:
            InvalidKeyError: the key is not a valid memcached key (nothing is sent).
            ServerError: the server could not be reached or answered with an error.
        """
        try:
            value = self._node(key).run(get_one, True, key, default)
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return default
        return default if value is UNREADABLE else value

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """Return ``{key: value}`` for the keys in the cache, in one round trip per server.

        Raises:
            InvalidKeyError: a key is not valid (nothing is sent to its server).
            ServerError: a server could not be reached; outside fail-silent mode
                the whole call raises, even if other servers already answered.
        """
        found: dict[Key, Any] = {}
        for node, group in self._group(keys, validate=False).items():
            if group:
                try:
                    found.update(node.run(get_many_direct, True, group))
                except CacheConnectionError as error:
                    if not self._absorb(error):
                        raise
        return _readable(found)

    def gets(self, key: Key, default: Any = None, cas_default: Any = None) -> tuple[Any, Any]:
        """Return ``(value, cas_token)`` for ``key``, or ``(default, cas_default)`` when missing.

        Pass the token to :meth:`cas` to write only if nobody wrote in between.
        """
        try:
            value, token = self._node(key).run(_gets, True, key, default, cas_default)
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return default, cas_default
        if value is UNREADABLE:
            return default, cas_default
        return value, token

    def gets_many(self, keys: Iterable[Key]) -> dict[Key, tuple[Any, Any]]:
        """Return ``{key: (value, cas_token)}`` for the keys that are in the cache."""
        found: dict[Key, tuple[Any, Any]] = {}
        for node, group in self._group(keys, validate=False).items():
            if group:
                try:
                    found.update(node.run(_gets_many, True, group))
                except CacheConnectionError as error:
                    if not self._absorb(error):
                        raise
        return {key: pair for key, pair in found.items() if pair[0] is not UNREADABLE}

    # -- writes -------------------------------------------------------------

    def set(
        self,
        key: Key,
        value: Any,
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> bool:
        """Store ``value`` under ``key``.

        Args:
            key: the key.
            value: anything the serializer can hold.
            expire: seconds to live (0: no expiry; over 30 days: a Unix timestamp;
                negative: expired at once).
            noreply: don't wait for the server's answer (the result is then
                always True, even if the write failed).
            flags: override the serializer's flags (advanced).

        Returns:
            True when the server stored it.

        Raises:
            InvalidKeyError, SerializationError: refused before anything was sent.
            ServerResponseError: the server refused it (e.g. larger than its item limit).
        """
        # With noreply no error can come back to trigger a retry, so the
        # connection is checked before sending instead (as for non-idempotent ones).
        return self._write(key, set_one, not noreply, key, value, expire, noreply, flags)

    def set_many(
        self,
        values: Mapping[Key, Any],
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> list[Key]:
        """Store several values (one round trip per server); return the keys that were not stored.

        Every key and value is checked before anything is sent, so a bad one
        leaves the cache as it was. On servers that speak memcached's meta
        protocol the batch is pipelined as quiet ``ms`` commands, which only
        answer for failures.

        Raises:
            InvalidKeyError, SerializationError: refused before anything was sent.
            ServerError: a server could not be reached; outside fail-silent mode
                the call raises, and servers written before it keep their values.
        """
        # Validate and serialize everything first: nothing is sent unless all is well.
        batches: dict[ServerNode, list[tuple[Key, bytes, bytes, int]]] = {}
        serialize = self.serializer.serialize
        for key, value in values.items():
            encoded = encode_key(key)
            data, data_flags = serialize(encoded, value)
            item = (key, encoded, data, data_flags if flags is None else flags)
            batches.setdefault(self._node(key), []).append(item)
        failed: list[Key] = []
        for node, items in batches.items():
            try:
                failed.extend(self._store_batch(node, items, expire, noreply))
            except CacheConnectionError as error:
                if not self._absorb(error):
                    raise
                failed.extend(item[0] for item in items)
        return failed

    def _store_batch(
        self,
        node: ServerNode,
        items: list[tuple[Key, bytes, bytes, int]],
        expire: int,
        noreply: bool,
    ) -> list[Key]:
        wire = [(encoded, data, fl) for _, encoded, data, fl in items]
        if speaks_meta(node):
            refused = node.run(meta_set_many, True, wire, expire)
        else:
            refused = node.run(set_many_direct, not noreply, wire, expire, noreply)
        if not refused:
            return []
        originals = {encoded: key for key, encoded, _, _ in items}
        return [originals[encoded] for encoded in refused]

    def add(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` is not in the cache; True when stored."""
        return self._write(key, _add, False, key, value, expire, noreply, flags)

    def replace(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` is already in the cache; True when stored."""
        return self._write(key, _replace, False, key, value, expire, noreply, flags)

    def append(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Append serialized ``value`` to the bytes stored under ``key``; True when it existed."""
        return self._write(key, _append, False, key, value, expire, noreply, flags)

    def prepend(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Prepend serialized ``value`` to the bytes stored under ``key``; True when it existed."""
        return self._write(key, _prepend, False, key, value, expire, noreply, flags)

    def cas(
        self,
        key: Key,
        value: Any,
        cas: int | str | bytes,
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> bool | None:
        """Store ``value`` only if nobody wrote ``key`` since :meth:`gets` returned ``cas``.

        Returns:
            True when stored, False when someone wrote in between, None when the key is missing.
        """
        try:
            result = self._node(key).run(_cas, False, key, value, cas, expire, noreply, flags)
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return False
        return None if result is None else bool(result)

    def delete(self, key: Key, noreply: bool = False) -> bool:
        """Remove ``key``; True when it was in the cache."""
        return self._write(key, _delete, not noreply, key, noreply)

    def delete_many(self, keys: Iterable[Key], noreply: bool = False) -> bool:
        """Remove several keys (one round trip per server); True once the servers acknowledged.

        Every key is checked before anything is sent. In fail-silent mode the
        result is False when a server could not be reached.

        Raises:
            InvalidKeyError: a key is not valid (nothing is deleted).
            ServerError: a server could not be reached (outside fail-silent mode).
        """
        complete = True
        for node, group in self._group(keys, validate=True).items():
            if group:
                try:
                    node.run(_delete_many, True, group, noreply)
                except CacheConnectionError as error:
                    if not self._absorb(error):
                        raise
                    complete = False
        return complete

    def incr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """Add ``value`` to the integer stored under ``key``; return the new value, None if missing.

        Args:
            key: the counter's key.
            value: how much to add (a non-negative integer).
            noreply: don't wait for the answer (the result is then None).
            initial: create a missing counter holding ``initial`` (and return
                it) instead of answering None. Safe against concurrent creators:
                exactly one creates it, the others count on top of it.
            expire: time to live of a counter that ``initial`` creates.

        Never retried on a fresh connection: the first attempt may have counted.
        """
        if initial is not None:
            return self._count_or_create(key, value, initial, expire, decrement=False)
        return self._count(key, _incr, value, noreply)

    def decr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """Subtract ``value`` (memcached stops at 0); return the new value, None if missing.

        ``initial`` and ``expire`` work as for :meth:`incr`.
        """
        if initial is not None:
            return self._count_or_create(key, value, initial, expire, decrement=True)
        return self._count(key, _decr, value, noreply)

    def _count_or_create(
        self, key: Key, delta: int, initial: int, expire: int, *, decrement: bool
    ) -> int | None:
        for name, number in (("value", delta), ("initial", initial), ("expire", expire)):
            if type(number) is not int or (name != "expire" and number < 0):
                raise InvalidArgumentError(
                    f"{name} must be a{' non-negative' if name != 'expire' else 'n'} "
                    f"integer, not {number!r}"
                )
        node = self._node(key)
        encoded = encode_key(key)
        # Count; if the counter is missing, add it holding `initial` (stored as
        # an int, flags 2, so get() reads a number); if someone added it in
        # between, count again. One round trip for an existing counter.
        data, flags = self.serializer.serialize(key, initial)
        try:
            meta = speaks_meta(node)
            for _ in range(2):
                if meta:
                    counted = node.run(meta_arithmetic, False, encoded, delta, decrement)
                else:
                    counted = node.run(_decr if decrement else _incr, False, key, delta, False)
                if counted is not None:
                    return int(counted)
                if meta:
                    added = node.run(meta_add, False, encoded, data, flags, expire)
                else:
                    added = node.run(_add, False, key, initial, expire, False, None)
                if added:
                    return initial
            return None
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return None

    def touch(self, key: Key, expire: int = 0, noreply: bool = False) -> bool:
        """Give ``key`` a new expiry without fetching it; True when it was in the cache."""
        return self._write(key, _touch, not noreply, key, expire, noreply)

    # -- thundering herds --------------------------------------------------------

    def get_or_set(
        self,
        key: Key,
        default: Any,
        expire: int = 0,
        *,
        wait_timeout: float = 5.0,
        lease_ttl: int = 30,
        refresh_ahead: int = 0,
    ) -> Any:
        """Return the value under ``key``; on a miss, compute it once, fleet-wide, and store it.

        When many callers (threads, processes, machines) miss the same key at
        once, exactly one of them computes ``default`` and stores it; the others
        wait (polling, at most ``wait_timeout`` seconds) and return the value it
        stored. A waiter whose wait runs out computes the value itself, so
        nobody waits forever on a crashed winner.

        This uses memcached's meta protocol (1.6+): the miss leaves an empty
        placeholder for ``lease_ttl`` seconds that this library never mistakes
        for a value. Servers without it (older memcached, twemproxy) are
        detected once and served by an ``add``-based lease with the same
        behaviour, at the cost of a second key (``<key>:lease``).

        Args:
            key: the key.
            default: the value, or a callable returning it (called only by the winner).
            expire: time to live of the stored value (0: no expiry).
            wait_timeout: longest a waiter waits for the winner, in seconds.
            lease_ttl: how long the winner's claim lives if it never writes.
            refresh_ahead: meta only: when a hit has fewer than this many
                seconds left to live, one caller recomputes it early while all
                others keep getting the current value (no miss ever happens).

        Returns:
            The cached value, or the freshly computed one.
        """
        return get_or_set(
            self,
            key,
            default,
            expire,
            wait_timeout=wait_timeout,
            lease_ttl=lease_ttl,
            refresh_ahead=refresh_ahead,
        )

    def mark_stale(self, key: Key, stale_ttl: int = 30) -> bool:
        """Invalidate ``key`` but keep serving its value while one caller refreshes it.

        The next :meth:`get_or_set` on the key recomputes it (exactly one
        caller does); until that value is stored, :meth:`get_or_set` callers
        get the old value, and plain :meth:`get` calls do too. The old value
        disappears after ``stale_ttl`` seconds if nobody refreshes it.

        On servers without the meta protocol this is a plain :meth:`delete`.

        Returns:
            True when the key existed.
        """
        node = self._node(key)
        encoded = encode_key(key)
        try:
            if speaks_meta(node):
                return bool(node.run(meta_mark_stale, True, encoded, stale_ttl))
            return bool(node.run(_delete, True, key, False))
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return False

    # -- fail-silent mode -------------------------------------------------------

    def _write(self, key: Key, op: Callable[..., Any], idempotent: bool, *args: Any) -> bool:
        try:
            return bool(self._node(key).run(op, idempotent, *args))
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return False

    def _count(self, key: Key, op: Callable[..., Any], value: int, noreply: bool) -> int | None:
        try:
            result: int | None = self._node(key).run(op, False, key, value, noreply)
        except CacheConnectionError as error:
            if not self._absorb(error):
                raise
            return None
        return result

    def _absorb(self, error: CacheConnectionError) -> bool:
        """In fail-silent mode, count an outage and say it was absorbed; otherwise False."""
        if not self.ignore_exceptions or isinstance(error, TLSError):
            return False
        with self._ignored_lock:
            self._ignored_errors += 1
        return True

    @property
    def ignored_errors(self) -> int:
        """How many calls fail-silent mode has answered with a miss or False so far."""
        return self._ignored_errors

    # -- servers ------------------------------------------------------------

    def stats(self, *args: str) -> dict[str, dict[str, Any]]:
        """Return each server's ``stats`` (``stats <args>``) as ``{server: {name: value}}``."""
        report: dict[str, dict[str, Any]] = {}
        for node in self._nodes.values():
            raw: dict[bytes, Any] = node.run_admin(_stats, "stats", *args)
            report[node.name] = {
                name.decode("ascii", "replace"): value.decode("ascii", "replace")
                if isinstance(value, bytes)
                else value
                for name, value in raw.items()
            }
        return report

    def version(self) -> dict[str, str]:
        """Return each server's version as ``{server: "1.6.18"}``."""
        return {
            node.name: node.run(_version, True).decode("ascii", "replace")
            for node in self._nodes.values()
        }

    def flush_all(self, delay: int = 0, noreply: bool = False) -> bool:
        """Invalidate every item on every server (after ``delay`` seconds); True when all agreed."""
        # Every server is flushed, even after one says no (no short-circuit).
        results = [
            node.run_admin(_flush_all, "flush_all", delay, noreply) for node in self._nodes.values()
        ]
        return all(results)

    def close(self) -> None:
        """Close idle connections. The client stays usable and reconnects when next used."""
        _close_all(list(self._nodes.values()))

    # pymemcache's aliases, so code (and Django's base backend) written for it works unchanged.
    get_multi = get_many
    set_multi = set_many
    delete_multi = delete_many
    disconnect_all = close

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Client({self.servers!r}, transport={self.transport!r}, auth={self.auth!r}, "
            f"serializer={self.serializer!r})"
        )


def _connection_factory(
    address: Address,
    *,
    transport: Transport,
    auth: Authenticator,
    serde: ReadGuard,
    connect_timeout: float | None,
    timeout: float | None,
) -> Callable[[], Connection]:
    # A closure over the strategies, not over the client, so that the client
    # can be garbage collected while its nodes are still referenced.
    name = format_address(address)

    def connect() -> Connection:
        return Connection(
            address,
            name=name,
            transport=transport,
            auth=auth,
            serde=serde,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )

    return connect


def _close_all(nodes: list[ServerNode]) -> None:
    for node in nodes:
        node.discard_idle()


# A child process (gunicorn and Celery workers, multiprocessing) must not reuse
# its parent's connections: each client starts the child with an empty pool.
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        for node in client._nodes.values():
            node.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _readable(found: dict[Key, Any]) -> dict[Key, Any]:
    for key in [key for key, value in found.items() if value is UNREADABLE]:
        del found[key]
    return found
