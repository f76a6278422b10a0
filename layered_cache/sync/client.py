"""The Client: one transport, one authenticator and one serializer over one or many servers."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from layered_cache._addresses import ServerSpec
from layered_cache.auth._base import Authenticator
from layered_cache.core import herd
from layered_cache.core.client_base import BaseClient
from layered_cache.core.config import (
    DEFAULT_MAX_CONNECTIONS,
    ServerEntry,
    check_count,
    check_timeout,
    client_config,
)
from layered_cache.core.namespaces import forget_generations
from layered_cache.core.observer import STORE_NAMES as _STORE_NAMES
from layered_cache.core.operations import FAILED, NO_FALLBACK, Exchange, Flow
from layered_cache.discovery._base import Discovery
from layered_cache.errors import CacheConnectionError, DiscoveryError
from layered_cache.observability.events import WriteFailureEvent
from layered_cache.serialization._base import Serializer
from layered_cache.sync.discovery import Refresher, run_lookup
from layered_cache.sync.node import ServerNode
from layered_cache.sync.servers import close_all, endpoint_connector, on_fork_in_child, server_node
from layered_cache.sync.steps import perform
from layered_cache.transport._base import Transport

if TYPE_CHECKING:
    from layered_cache.sync.namespace import Namespace

__all__ = ["Client"]

Key = str | bytes


class Client(BaseClient[ServerNode]):
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
        timeout: seconds allowed for each exchange with a server as a whole
            (sending the request and reading the whole reply, however slowly it
            trickles in); None waits forever.
        retry_attempts: failures in a row after which a server is reported down
            (a warning on the ``layered_cache`` logger).
        retry_timeout: seconds a server that just failed is skipped: calls for
            its keys raise :class:`~layered_cache.errors.ServerUnavailableError`
            at once. Then exactly one call tries it again while the others
            keep failing fast; a success puts it back in service. Keys on the
            other servers keep working, and a miss (``None``) always means "not
            in the cache", never "could not ask".
        dead_timeout: the same window once the server is down (after
            ``retry_attempts`` failures): one call every ``dead_timeout``
            seconds tries it. The default (1 s) uses a restarted server again
            within about a second; raise it to try a long-dead server less often.
        max_connections: connections per server, at most (default
            :data:`~layered_cache.core.config.DEFAULT_MAX_CONNECTIONS`, as for
            :class:`~layered_cache.AsyncClient`); a call that finds them all
            busy waits for one to come back. Threads share them: a thread holds
            a connection only while it talks to the server.
        pool_timeout: seconds a call waits for a free connection before
            :class:`~layered_cache.errors.PoolTimeoutError` (naming the server);
            None waits forever. Not a server failure: it does not count toward
            the server's health.
        max_pool_size: idle connections kept per server (None: every connection
            that ``max_connections`` allows).
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
        key_policy: what becomes of a key memcached cannot take as it is (over
            250 bytes once UTF-8 encoded, whitespace, control characters):
            ``"strict"`` (default) refuses it with
            :class:`~layered_cache.errors.InvalidKeyError` before anything is
            sent; ``"hash"`` stores it under a digest form that keeps its
            readable start (see the :doc:`keys guide </guides/keys>`). Either
            way a valid key is sent exactly as it is.
        namespace_cache_ttl: seconds a namespace's generation, once read, is
            used without asking memcached again (0: read it on every call);
            also how long another process may use a generation after this one
            invalidated it (:meth:`namespace`).
        discovery: where the nodes come from:
            :class:`~layered_cache.discovery.StaticDiscovery` (default: the
            ``servers`` are the nodes),
            :class:`~layered_cache.discovery.ElastiCacheDiscovery` or
            :class:`~layered_cache.discovery.MemorystoreDiscovery` (``servers``
            is the configuration endpoint), or
            :class:`~layered_cache.discovery.DNSDiscovery` (``servers`` are
            names resolved again and again). With a background ``interval``,
            the constructor looks the nodes up once (within the timeouts; if
            that fails, the client starts on ``servers`` and logs a warning),
            then a background thread looks again every ``interval`` seconds
            and soon after a node fails; cache calls never wait for it (call
            :meth:`refresh` to look up now). See the managed clusters guide.
        listeners: callables called with an event for every exchange with a
            server (:class:`~layered_cache.observability.OperationEvent`) and
            every connection, health and herd happening (see
            :doc:`/guides/observability`). Called inline: keep them quick. A
            listener that raises is logged, never breaks the call. None (the
            default) costs nothing.
        include_keys: put the cache keys in the events (``key_names``). Off by
            default: keys can be session ids.
        on_write_failure: in fail-silent mode, called with a
            :class:`~layered_cache.observability.WriteFailureEvent` (keys
            included) when a write fails and is answered with False, so that
            the keys can be queued for invalidation.

    Connections are pooled per server and shared by threads; a process forked
    from this one (a gunicorn or Celery worker) starts with an empty pool and
    opens its own connections.

    Raises:
        ConfigurationError: an option is invalid; no connection is attempted
            (the only connection a constructor makes is discovery's first lookup).

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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float | None = 2.0,
        max_pool_size: int | None = None,
        pool_idle_timeout: float = 0.0,
        ignore_exceptions: bool = False,
        key_policy: str = "strict",
        namespace_cache_ttl: float = 1.0,
        discovery: Discovery | None = None,
        listeners: Iterable[Callable[[Any], object]] | None = None,
        include_keys: bool = False,
        on_write_failure: Callable[[WriteFailureEvent], object] | None = None,
    ) -> None:
        config = client_config(
            servers,
            transport=transport,
            auth=auth,
            serializer=serializer,
            connect_timeout=connect_timeout,
            timeout=timeout,
            retry_attempts=retry_attempts,
            retry_timeout=retry_timeout,
            dead_timeout=dead_timeout,
            max_pool_size=max_pool_size,
            pool_idle_timeout=pool_idle_timeout,
            ignore_exceptions=ignore_exceptions,
            key_policy=key_policy,
            namespace_cache_ttl=namespace_cache_ttl,
            discovery=discovery,
            listeners=listeners,
            include_keys=include_keys,
            on_write_failure=on_write_failure,
        )
        #: The most connections open to each server at once.
        self.max_connections = int(check_count("max_connections", max_connections, minimum=1))
        #: Seconds a call waits for a free connection, or None to wait forever.
        self.pool_timeout = check_timeout("pool_timeout", pool_timeout)
        self._refresher = Refresher(config.membership, self._refresh_in_background)
        nodes = {
            entry.key: server_node(entry, config, self._refresher, self._pool_bounds())
            for entry in config.servers
        }
        super().__init__(config, nodes)
        # Sockets of a client that is simply dropped are closed, not left to the GC
        # (the list follows discovery's swaps: see _refresh_in_background).
        self._owned = list(nodes.values())
        weakref.finalize(self, close_all, self._owned)
        weakref.finalize(self, self._refresher.stop)
        on_fork_in_child(self._after_fork)
        if config.membership.interval:
            # The first lookup before any call, so that keys land on the real nodes
            # from the first write on (bounded by the timeouts; on failure the client
            # starts on the servers given and keeps looking in the background).
            with contextlib.suppress(DiscoveryError):
                self.refresh()
        self._refresher.ensure_running()

    # -- the driver -------------------------------------------------------------

    def _drive(self, flow: Flow[Any], fallback: Any, operation: str) -> Any:
        """Run ``flow`` to its result, performing each step it yields.

        A server failure is thrown into the flow; if it comes out, fail-silent
        mode answers ``fallback`` instead (:data:`NO_FALLBACK`: always raise).
        ``operation`` names the public method in events.
        """
        observer = self._observer
        try:
            step = flow.send(None)
            while True:
                try:
                    if type(step) is not Exchange:
                        answer = perform(step, operation, observer, self._fail_silent.absorb)
                    elif observer is None:
                        answer = step.node.exchange(step)
                    else:
                        answer = observer.exchange(step, operation)
                except CacheConnectionError as error:
                    step = flow.throw(error)
                else:
                    step = flow.send(answer)
        except StopIteration as done:
            return done.value
        except CacheConnectionError as error:
            if fallback is NO_FALLBACK or not self._fail_silent.absorb(error):
                raise
            return fallback

    def _ask(self, step: Exchange, operation: str) -> Any:
        """Perform one exchange; in fail-silent mode an outage answers :data:`FAILED`."""
        observer = self._observer
        try:
            if observer is None:
                return step.node.exchange(step)
            return observer.exchange(step, operation)
        except CacheConnectionError as error:
            if not self._fail_silent.absorb(error):
                raise
            return FAILED

    # -- reads --------------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` when it is missing.

        Raises:
            InvalidKeyError: the key is not a valid memcached key (nothing is sent).
            ServerError: the server could not be reached or answered with an error.
        """
        step = self._ops.get_step(key)
        observer = self._observer
        try:  # (self._ask, inline: this is the hot path)
            reply = step.node.exchange(step) if observer is None else observer.read(step, "get")
        except CacheConnectionError as error:
            if not self._fail_silent.absorb(error):
                raise
            return default
        return self._ops.get_result(key, reply, default)

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """Return ``{key: value}`` for the keys in the cache, in one round trip per server.

        Raises:
            InvalidKeyError: a key is not valid (nothing is sent to its server).
            ServerError: a server could not be reached; outside fail-silent mode
                the whole call raises, even if other servers already answered.
        """
        return self._drive(self._ops.get_many(keys), {}, "get_many")  # type: ignore[no-any-return]

    def gets(self, key: Key, default: Any = None, cas_default: Any = None) -> tuple[Any, Any]:
        """Return ``(value, cas_token)`` for ``key``, or ``(default, cas_default)`` when missing.

        Pass the token to :meth:`cas` to write only if nobody wrote in between.
        """
        reply = self._ask(self._ops.gets_step(key), "gets")
        if reply is FAILED:
            return default, cas_default
        return self._ops.gets_result(key, reply, default, cas_default)

    def gets_many(self, keys: Iterable[Key]) -> dict[Key, tuple[Any, Any]]:
        """Return ``{key: (value, cas_token)}`` for the keys that are in the cache."""
        return self._drive(self._ops.gets_many(keys), {}, "gets_many")  # type: ignore[no-any-return]

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
        step = self._ops.store_step(b"set", key, value, expire, noreply, flags)
        observer = self._observer
        try:  # (self._write and self._ask, inline: this is the hot path)
            reply = step.node.exchange(step) if observer is None else observer.exchange(step, "set")
        except CacheConnectionError as error:
            if not self._fail_silent.absorb(error):
                raise
            return False
        return self._ops.store_result(reply)

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
        return self._drive(  # type: ignore[no-any-return]
            self._ops.set_many(values, expire, noreply, flags), list(values), "set_many"
        )

    def add(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` is not in the cache; True when stored."""
        return self._write(b"add", key, value, expire, noreply, flags)

    def replace(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` is already in the cache; True when stored."""
        return self._write(b"replace", key, value, expire, noreply, flags)

    def append(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Append serialized ``value`` to the bytes stored under ``key``; True when it existed."""
        return self._write(b"append", key, value, expire, noreply, flags)

    def prepend(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Prepend serialized ``value`` to the bytes stored under ``key``; True when it existed."""
        return self._write(b"prepend", key, value, expire, noreply, flags)

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
        reply = self._ask(self._ops.cas_step(key, value, cas, expire, noreply, flags), "cas")
        return False if reply is FAILED else self._ops.cas_result(reply)

    def delete(self, key: Key, noreply: bool = False) -> bool:
        """Remove ``key``; True when it was in the cache."""
        reply = self._ask(self._ops.delete_step(key, noreply), "delete")
        return reply is not FAILED and self._ops.delete_result(reply)

    def delete_many(self, keys: Iterable[Key], noreply: bool = False) -> bool:
        """Remove several keys (one round trip per server); True once the servers acknowledged.

        Every key is checked before anything is sent. In fail-silent mode the
        result is False when a server could not be reached.

        Raises:
            InvalidKeyError: a key is not valid (nothing is deleted).
            ServerError: a server could not be reached (outside fail-silent mode).
        """
        return self._drive(self._ops.delete_many(keys, noreply), False, "delete_many")  # type: ignore[no-any-return]

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
        return self._count(key, value, noreply, initial, expire, decrement=False)

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
        return self._count(key, value, noreply, initial, expire, decrement=True)

    def _count(
        self, key: Key, value: int, noreply: bool, initial: int | None, expire: int, decrement: bool
    ) -> int | None:
        ops = self._ops
        name = "decr" if decrement else "incr"
        if initial is not None:
            flow = ops.count_or_create(key, value, initial, expire, decrement=decrement)
            return self._drive(flow, None, name)  # type: ignore[no-any-return]
        reply = self._ask(ops.count_step(key, value, noreply, decrement=decrement), name)
        return None if reply is FAILED else ops.count_result(reply)

    def touch(self, key: Key, expire: int = 0, noreply: bool = False) -> bool:
        """Give ``key`` a new expiry without fetching it; True when it was in the cache."""
        reply = self._ask(self._ops.touch_step(key, expire, noreply), "touch")
        return reply is not FAILED and self._ops.touch_result(reply)

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
        flow = herd.get_or_set(
            self._ops,
            key,
            default,
            expire,
            wait_timeout=wait_timeout,
            lease_ttl=lease_ttl,
            refresh_ahead=refresh_ahead,
        )
        return self._drive(flow, NO_FALLBACK, "get_or_set")

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
        return self._drive(self._ops.mark_stale(key, stale_ttl), False, "mark_stale")  # type: ignore[no-any-return]

    # -- writes, shared -------------------------------------------------------

    def _write(
        self, command: bytes, key: Key, value: Any, expire: int, noreply: bool, flags: int | None
    ) -> bool:
        step = self._ops.store_step(command, key, value, expire, noreply, flags)
        reply = self._ask(step, _STORE_NAMES[command])
        return reply is not FAILED and self._ops.store_result(reply)

    def namespace(self, name: str | bytes) -> Namespace:
        """A view of this client whose keys all belong to the namespace ``name``.

        The view has the client's keyed methods; ``view.invalidate()`` makes
        every key of the namespace read as a miss at once, fleet-wide (see
        :class:`~layered_cache.sync.namespace.Namespace` and
        the :doc:`keys guide </guides/keys>`). Views are cheap: make one per use.

        Raises:
            InvalidKeyError: ``name`` is not a valid memcached key of at most
                100 bytes (nothing is sent).
        """
        # The view is built from this class's methods, hence the import here.
        from layered_cache.sync.namespace import Namespace  # noqa: PLC0415

        return Namespace(self._namespace_flows(name), self._drive, name, self.serializer)

    # -- servers ------------------------------------------------------------

    def stats(self, *args: str) -> dict[str, dict[str, Any]]:
        """Return each server's ``stats`` (``stats <args>``) as ``{server: {name: value}}``."""
        return self._drive(self._ops.stats(args), NO_FALLBACK, "stats")  # type: ignore[no-any-return]

    def version(self) -> dict[str, str]:
        """Return each server's version as ``{server: "1.6.18"}``."""
        return self._drive(self._ops.version(), NO_FALLBACK, "version")  # type: ignore[no-any-return]

    def flush_all(self, delay: int = 0, noreply: bool = False) -> bool:
        """Invalidate every item on every server (after ``delay`` seconds); True when all agreed."""
        forget_generations(self._ops)  # namespaces start new generations
        return self._drive(self._ops.flush_all(delay, noreply), NO_FALLBACK, "flush_all")  # type: ignore[no-any-return]

    # -- discovery ------------------------------------------------------------

    def refresh(self) -> bool:
        """Look the nodes up now and swap them in if they changed; True when they did.

        With static discovery there is nothing to look up (False). Nodes that
        stay keep their connections; connections to nodes that left are closed.

        Raises:
            DiscoveryError: no endpoint gave a usable list; the nodes stay as they were.
        """
        self._membership.claim(force=True)
        return self._refresh_in_background()

    def _refresh_in_background(self) -> bool:
        config, membership = self._config, self._membership
        with membership.recording():
            lookup = membership.discovery.lookup(membership.seeds)
            found = run_lookup(lookup, endpoint_connector(config), config.timeout)
        changed = self._adopt(found)
        if changed:
            self._owned[:] = self._nodes.values()
        return changed

    def _new_node(self, entry: ServerEntry) -> ServerNode:
        return server_node(entry, self._config, self._refresher, self._pool_bounds())

    def _pool_bounds(self) -> tuple[int, float | None]:
        """``(max_connections, pool_timeout)`` of each server's pool."""
        return self.max_connections, self.pool_timeout

    def _after_fork(self) -> None:
        # A forked child must not reuse the parent's connections (sync.servers).
        self._fail_silent.after_fork()
        self._membership.after_fork()
        self._refresher.after_fork()
        for node in self._nodes.values():
            node.after_fork()

    def close(self) -> None:
        """Close idle connections and stop background discovery; the client stays usable.

        It reconnects when next used, and discovery starts again with the first new
        connection. (A TLS connection whose last commands were ``noreply`` is closed
        once the server has read them, waiting at most ``timeout``.)
        """
        self._refresher.stop()
        close_all(list(self._nodes.values()))

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
