"""AsyncClient: the same client on asyncio, over the same protocol core and strategies."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from layered_cache._addresses import ServerSpec
from layered_cache.aio.connection import AsyncConnection
from layered_cache.aio.discovery import LoopRefreshers, run_lookup
from layered_cache.aio.node import AsyncServer
from layered_cache.auth._base import Authenticator
from layered_cache.core import herd
from layered_cache.core.client_base import BaseClient
from layered_cache.core.config import (
    DEFAULT_MAX_CONNECTIONS,
    ClientConfig,
    ServerEntry,
    check_count,
    check_timeout,
    client_config,
)
from layered_cache.core.namespaces import forget_generations
from layered_cache.core.observer import STORE_NAMES
from layered_cache.core.operations import (
    FAILED,
    NO_FALLBACK,
    Batch,
    Compute,
    Exchange,
    Flow,
    ProbeMeta,
    Sleep,
)
from layered_cache.discovery._base import Discovery
from layered_cache.errors import CacheConnectionError, ConfigurationError
from layered_cache.observability.events import WriteFailureEvent
from layered_cache.serialization._base import Serializer
from layered_cache.transport import format_address
from layered_cache.transport._base import Address, Transport

if TYPE_CHECKING:
    from layered_cache.aio.namespace import AsyncNamespace

__all__ = ["DEFAULT_MAX_CONNECTIONS", "AsyncClient"]

Key = str | bytes


class AsyncClient(BaseClient[AsyncServer]):
    """The asyncio memcached client: :class:`~layered_cache.Client`'s methods, as coroutines.

    Same options, strategies, key placement, stored bytes, return values and
    errors as :class:`~layered_cache.Client` (data written by either reads back
    with the other), plus two options of its own:

    Args:
        servers: as for :class:`~layered_cache.Client`.
        transport: a transport that can describe its connections (``plan()``):
            :class:`~layered_cache.transport.TCPTransport` (default) or
            :class:`~layered_cache.transport.TLSTransport`, over asyncio's own TLS.
        auth: as for :class:`~layered_cache.Client`; the handshake runs once on
            every new connection, before any command.
        serializer: as for :class:`~layered_cache.Client`.
        connect_timeout: seconds allowed to connect, complete the TLS handshake
            and authenticate; None waits forever.
        timeout: seconds allowed for each exchange with a server as a whole
            (sending the request and reading the whole reply, however slowly it
            trickles in); None waits forever.
        retry_attempts, retry_timeout, dead_timeout: as for
            :class:`~layered_cache.Client` (the same health policy).
        max_connections: connections per server and event loop, at most (default
            :data:`~layered_cache.core.config.DEFAULT_MAX_CONNECTIONS`); a call that
            finds them all busy waits for one.
        pool_timeout: seconds a call waits for a free connection before
            :class:`~layered_cache.errors.PoolTimeoutError`; None waits forever.
        pool_idle_timeout: as for :class:`~layered_cache.Client`.
        ignore_exceptions: fail-silent mode, as for :class:`~layered_cache.Client`.
        key_policy, namespace_cache_ttl: as for :class:`~layered_cache.Client`.
        discovery: where the nodes come from, as for :class:`~layered_cache.Client`.
            Lookups run on the event loop (a resolver in a worker thread), in
            one background task per loop, started by the loop's first new
            connection; cache calls never wait for them. ``await``
            :meth:`refresh` to wait for a lookup (e.g. at start-up).
        listeners, include_keys, on_write_failure: events, as for
            :class:`~layered_cache.Client` (listeners are called inline, in the
            calling task: they must not block the loop).

    Connections belong to the event loop that opened them: a client used from
    several loops (two :func:`asyncio.run` calls, a test runner, ``async_to_sync``)
    keeps a pool per loop and never hands a connection to another loop. A
    cancelled or timed-out call closes its connection, so a late reply is never
    read by the next call.

    Raises:
        ConfigurationError: an option is invalid; no connection is attempted.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with AsyncClient(memcached_address) as client:
        ...         await client.set("greeting", {"text": "hello"}, expire=60)
        ...         return await client.get("greeting")
        >>> asyncio.run(main())
        {'text': 'hello'}
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
            max_pool_size=None,
            pool_idle_timeout=pool_idle_timeout,
            ignore_exceptions=ignore_exceptions,
            key_policy=key_policy,
            namespace_cache_ttl=namespace_cache_ttl,
            discovery=discovery,
            listeners=listeners,
            include_keys=include_keys,
            on_write_failure=on_write_failure,
        )
        plan = getattr(config.transport, "plan", None)
        if not callable(plan):
            raise ConfigurationError(
                f"AsyncClient opens its connections itself and needs a transport with "
                f"plan() (TCPTransport, TLSTransport), not {type(config.transport).__name__}"
            )
        #: Connections per server and event loop, at most.
        self.max_connections = int(check_count("max_connections", max_connections, minimum=1))
        #: Seconds a call waits for a free connection.
        self.pool_timeout = check_timeout("pool_timeout", pool_timeout)
        self._plan = plan
        self._refreshers = LoopRefreshers(config.membership, self._refresh_in_background)
        self._on_open = self._refreshers.ensure_running if config.membership.interval else None
        super().__init__(
            config, {entry.key: self._server(entry, config) for entry in config.servers}
        )

    def _server(self, entry: ServerEntry, config: ClientConfig) -> AsyncServer:
        return AsyncServer(
            self._plan(entry.address),
            entry.name,
            entry.health,
            auth=config.auth,
            connect_timeout=config.connect_timeout,
            timeout=config.timeout,
            max_connections=self.max_connections,
            pool_timeout=self.pool_timeout,
            idle_timeout=config.idle_timeout,
            on_open=self._on_open,
            observer=config.observer,
        )

    def _new_node(self, entry: ServerEntry) -> AsyncServer:
        return self._server(entry, self._config)

    # -- discovery --------------------------------------------------------------

    async def refresh(self) -> bool:
        """Look the nodes up now and swap them in if they changed (:meth:`Client.refresh`).

        Raises:
            DiscoveryError: no endpoint gave a usable list; the nodes stay as they were.
        """
        self._membership.claim(force=True)
        self._refreshers.ensure_running()  # this loop uses the client: keep it up to date
        return await self._refresh_in_background()

    async def _refresh_in_background(self) -> bool:
        config = self._config
        membership = self._membership
        plan = self._plan

        async def connect(address: Address) -> AsyncConnection:
            return await AsyncConnection.open(
                plan(address),
                name=format_address(address),
                auth=config.auth,
                connect_timeout=config.connect_timeout,
            )

        with membership.recording():
            found = await run_lookup(
                membership.discovery.lookup(membership.seeds), connect, config.timeout
            )
        return self._adopt(found)

    # -- the driver -------------------------------------------------------------

    async def _drive(self, flow: Flow[Any], fallback: Any, operation: str) -> Any:
        """Run ``flow`` to its result, performing each step it yields (see ``Client``)."""
        observer = self._observer
        try:
            step = flow.send(None)
            while True:
                try:
                    if type(step) is not Exchange:
                        answer = await self._perform(step, operation)
                    elif observer is None:
                        answer = await step.node.exchange(step)
                    else:
                        answer = await observer.aexchange(step, operation)
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

    async def _ask(self, step: Exchange, operation: str) -> Any:
        """Perform one exchange; in fail-silent mode an outage answers :data:`FAILED`."""
        observer = self._observer
        try:
            if observer is None:
                return await step.node.exchange(step)
            return await observer.aexchange(step, operation)
        except CacheConnectionError as error:
            if not self._fail_silent.absorb(error):
                raise
            return FAILED

    async def _probe(self, node: AsyncServer, operation: str) -> bool:
        """Ask ``node`` whether it speaks meta (once), reported to listeners as ``operation``."""
        if self._observer is None:
            return await node.probe_meta()
        return await self._observer.aprobe(node, operation)

    async def _perform(self, step: object, operation: str) -> Any:
        if type(step) is Batch:
            if len(step.exchanges) == 1 and self._observer is None:
                # One server: no task to gather (with listeners, the path below reports it).
                (exchange,) = step.exchanges
                if step.absorb:
                    return [await self._ask(exchange, operation)]
                return [await exchange.node.exchange(exchange)]
            # Every server is asked at once; each exchange ends (or fails) before
            # the call does, so no connection is left mid-reply.
            observer = self._observer
            outcomes = await asyncio.gather(
                *(
                    exchange.node.exchange(exchange)
                    if observer is None
                    else observer.aexchange(exchange, operation)
                    for exchange in step.exchanges
                ),
                return_exceptions=True,
            )
            answers = []
            for outcome in outcomes:
                if isinstance(outcome, CacheConnectionError) and step.absorb:
                    if not self._fail_silent.absorb(outcome):
                        raise outcome
                    answers.append(FAILED)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    answers.append(outcome)
            return answers
        if type(step) is ProbeMeta:
            return await self._probe(step.node, operation)
        if type(step) is Sleep:
            await asyncio.sleep(step.seconds)
            return None
        if type(step) is Compute:
            default = step.default
            value = default() if callable(default) else default
            if inspect.isawaitable(value):
                value = await value
            return value
        raise TypeError(f"not a step: {step!r}")  # pragma: no cover

    # -- reads ------------------------------------------------------------------

    async def get(self, key: Key, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` (:meth:`Client.get`).

        Gets of the same turn of the event loop for the same server go out as
        one multi-get (see :mod:`layered_cache.aio.batch`).
        """
        ops = self._ops
        if self._observer is not None:  # the general path reports each exchange
            reply = await self._ask(ops.get_step(key), "get")
            return default if reply is FAILED else ops.get_result(key, reply, default)
        encoded = ops.keys.encode(key)  # checked before anything else
        try:
            reply = await ops.node(key).get(encoded)
        except CacheConnectionError as error:  # (self._ask, inline: this is the hot path)
            if not self._fail_silent.absorb(error):
                raise
            return default
        return ops.get_result(key, reply, default) if reply else default

    async def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """``{key: value}`` of the keys in the cache, all servers asked at once."""
        return await self._drive(self._ops.get_many(keys), {}, "get_many")  # type: ignore[no-any-return]

    async def gets(self, key: Key, default: Any = None, cas_default: Any = None) -> tuple[Any, Any]:
        """``(value, cas_token)``, or ``(default, cas_default)`` (:meth:`Client.gets`)."""
        reply = await self._ask(self._ops.gets_step(key), "gets")
        if reply is FAILED:
            return default, cas_default
        return self._ops.gets_result(key, reply, default, cas_default)

    async def gets_many(self, keys: Iterable[Key]) -> dict[Key, tuple[Any, Any]]:
        """``{key: (value, cas_token)}`` of the keys in the cache (:meth:`Client.gets_many`)."""
        return await self._drive(self._ops.gets_many(keys), {}, "gets_many")  # type: ignore[no-any-return]

    # -- writes -----------------------------------------------------------------

    async def _write(
        self, command: bytes, key: Key, value: Any, expire: int, noreply: bool, flags: int | None
    ) -> bool:
        step = self._ops.store_step(command, key, value, expire, noreply, flags)
        reply = await self._ask(step, STORE_NAMES[command])
        return reply is not FAILED and self._ops.store_result(reply)

    async def set(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store ``value`` under ``key``; True when stored (:meth:`Client.set`)."""
        return await self._write(b"set", key, value, expire, noreply, flags)

    async def add(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store only if ``key`` is not in the cache (:meth:`Client.add`)."""
        return await self._write(b"add", key, value, expire, noreply, flags)

    async def replace(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Store only if ``key`` is in the cache (:meth:`Client.replace`)."""
        return await self._write(b"replace", key, value, expire, noreply, flags)

    async def append(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Append to the bytes stored under ``key`` (:meth:`Client.append`)."""
        return await self._write(b"append", key, value, expire, noreply, flags)

    async def prepend(
        self, key: Key, value: Any, expire: int = 0, noreply: bool = False, flags: int | None = None
    ) -> bool:
        """Prepend to the bytes stored under ``key`` (:meth:`Client.prepend`)."""
        return await self._write(b"prepend", key, value, expire, noreply, flags)

    async def set_many(
        self,
        values: Mapping[Key, Any],
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> list[Key]:
        """Store several values, all servers at once; the keys not stored (as ``Client``)."""
        flow = self._ops.set_many(values, expire, noreply, flags)
        return await self._drive(flow, list(values), "set_many")  # type: ignore[no-any-return]

    async def cas(
        self,
        key: Key,
        value: Any,
        cas: int | str | bytes,
        expire: int = 0,
        noreply: bool = False,
        flags: int | None = None,
    ) -> bool | None:
        """Store only if nobody wrote ``key`` since :meth:`gets` (:meth:`Client.cas`)."""
        reply = await self._ask(self._ops.cas_step(key, value, cas, expire, noreply, flags), "cas")
        return False if reply is FAILED else self._ops.cas_result(reply)

    async def delete(self, key: Key, noreply: bool = False) -> bool:
        """Remove ``key``; True when it was in the cache."""
        reply = await self._ask(self._ops.delete_step(key, noreply), "delete")
        return reply is not FAILED and self._ops.delete_result(reply)

    async def delete_many(self, keys: Iterable[Key], noreply: bool = False) -> bool:
        """Remove several keys, all servers at once (:meth:`Client.delete_many`)."""
        flow = self._ops.delete_many(keys, noreply)
        return await self._drive(flow, False, "delete_many")  # type: ignore[no-any-return]

    async def incr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """Add ``value`` to a counter; the new value, None if missing (:meth:`Client.incr`)."""
        return await self._count(key, value, noreply, initial, expire, decrement=False)

    async def decr(
        self,
        key: Key,
        value: int,
        noreply: bool = False,
        *,
        initial: int | None = None,
        expire: int = 0,
    ) -> int | None:
        """Subtract ``value`` (stops at 0); the new value, None if missing (:meth:`Client.decr`)."""
        return await self._count(key, value, noreply, initial, expire, decrement=True)

    async def _count(
        self, key: Key, value: int, noreply: bool, initial: int | None, expire: int, decrement: bool
    ) -> int | None:
        ops = self._ops
        name = "decr" if decrement else "incr"
        if initial is not None:
            flow = ops.count_or_create(key, value, initial, expire, decrement=decrement)
            return await self._drive(flow, None, name)  # type: ignore[no-any-return]
        reply = await self._ask(ops.count_step(key, value, noreply, decrement=decrement), name)
        return None if reply is FAILED else ops.count_result(reply)

    async def touch(self, key: Key, expire: int = 0, noreply: bool = False) -> bool:
        """Give ``key`` a new expiry; True when it was in the cache."""
        reply = await self._ask(self._ops.touch_step(key, expire, noreply), "touch")
        return reply is not FAILED and self._ops.touch_result(reply)

    # -- thundering herds -------------------------------------------------------

    async def get_or_set(
        self,
        key: Key,
        default: Any,
        expire: int = 0,
        *,
        wait_timeout: float = 5.0,
        lease_ttl: int = 30,
        refresh_ahead: int = 0,
    ) -> Any:
        """The value under ``key``; on a miss, computed once fleet-wide and stored.

        As :meth:`Client.get_or_set`; ``default`` may also be a coroutine
        function (or any callable returning an awaitable), awaited only by the
        caller that computes it.
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
        return await self._drive(flow, NO_FALLBACK, "get_or_set")

    async def mark_stale(self, key: Key, stale_ttl: int = 30) -> bool:
        """Invalidate ``key`` but keep serving it while one caller refreshes it."""
        return await self._drive(self._ops.mark_stale(key, stale_ttl), False, "mark_stale")  # type: ignore[no-any-return]

    def namespace(self, name: str | bytes) -> AsyncNamespace:
        """A view of this client whose keys all belong to the namespace ``name``.

        The view has the client's keyed methods; ``view.invalidate()`` makes
        every key of the namespace read as a miss at once, fleet-wide (see
        :class:`~layered_cache.aio.namespace.AsyncNamespace` and
        the :doc:`keys guide </guides/keys>`). Views are cheap: make one per use.

        Raises:
            InvalidKeyError: ``name`` is not a valid memcached key of at most
                100 bytes (nothing is sent).
        """
        # The view is built from this class's methods, hence the import here.
        from layered_cache.aio.namespace import AsyncNamespace  # noqa: PLC0415

        return AsyncNamespace(self._namespace_flows(name), self._drive, name, self.serializer)

    # -- servers ----------------------------------------------------------------

    async def stats(self, *args: str) -> dict[str, dict[str, Any]]:
        """Each server's ``stats`` (:meth:`Client.stats`)."""
        return await self._drive(self._ops.stats(args), NO_FALLBACK, "stats")  # type: ignore[no-any-return]

    async def version(self) -> dict[str, str]:
        """Each server's version."""
        return await self._drive(self._ops.version(), NO_FALLBACK, "version")  # type: ignore[no-any-return]

    async def flush_all(self, delay: int = 0, noreply: bool = False) -> bool:
        """Invalidate every item on every server; True when all agreed."""
        forget_generations(self._ops)  # namespaces start new generations
        return await self._drive(self._ops.flush_all(delay, noreply), NO_FALLBACK, "flush_all")  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close this event loop's idle connections and stop its background discovery task.

        Returns once their sockets are closed: a connection whose last requests
        were ``noreply`` first lets them out to the server (for at most its
        ``timeout``), so that ending the loop next loses none of them. The
        client stays usable: it reconnects when next used, and the loop's
        discovery task starts again with its first new connection.
        """
        await self._refreshers.stop()
        closing = [conn for node in self._nodes.values() for conn in node.close_idle()]
        for conn in closing:
            await conn.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
