"""One memcached server as the asyncio engine sees it: bounded pools per loop, one health record.

A :class:`AsyncServer` is shared by every event loop that uses the client: its
:class:`~layered_cache.core.health.ServerHealth` (a server that is down is down
for everyone) and whether it speaks meta. Connections, however, belong to
the loop that opened them, so each loop gets its own :class:`LoopPool`,
bounded by ``max_connections``: a call that finds every connection busy waits
(at most ``pool_timeout``) for one to come back. A connection whose call was
cancelled or timed out is closed, never returned, so its late reply can never
be read by the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

import attrs

from layered_cache.aio.batch import Batch, Failed, Pending
from layered_cache.aio.connection import AsyncConnection
from layered_cache.auth._base import Authenticator
from layered_cache.core.connection_flows import meta_probe_flow
from layered_cache.core.health import ServerHealth
from layered_cache.core.observer import Observer
from layered_cache.core.operations import Exchange
from layered_cache.core.translate import (
    STALE_ERRORS,
    PeerClosedError,
    pool_exhausted,
    translate,
    unsupported_command,
)
from layered_cache.errors import LayeredCacheError, PoolTimeoutError
from layered_cache.observability.events import StaleConnectionEvent
from layered_cache.protocol import Expect
from layered_cache.transport.tcp import ConnectionPlan

__all__ = ["AsyncServer", "LoopPool"]


async def _close_at_loop_shutdown(pool: LoopPool) -> AsyncGenerator[None, None]:
    """An async generator that closes ``pool`` when its loop shuts down.

    :func:`asyncio.run` (and any loop owner calling ``shutdown_asyncgens()``)
    closes every live async generator while the loop still runs: the one
    moment a pool's idle connections can still be closed properly (and the
    ``noreply`` requests of the last ones still let out, see
    :meth:`AsyncConnection.close`).
    """
    try:
        yield
    finally:
        for conn in pool.close_idle():
            await conn.wait_closed()


def _give_up(waiter: asyncio.Future[Any]) -> None:
    """``pool_timeout`` passed: the waiting call gets no connection."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class LoopPool:
    """The connections one event loop holds to one server: idle ones, and a bound on all.

    Made inside the running loop; its idle connections are closed when the loop
    shuts down (see :func:`_close_at_loop_shutdown`).
    """

    def __init__(self, server: AsyncServer) -> None:
        self._server = server
        self.loop = asyncio.get_running_loop()
        self.idle: deque[AsyncConnection] = deque()
        #: Connections open or being opened (idle ones included).
        self.size = 0
        self._waiters: deque[asyncio.Future[AsyncConnection | None]] = deque()
        #: The calls of this turn of the loop, sent as one batch at its end.
        self._pending: Pending | None = None
        #: Tasks sending a batch once a connection is free (kept until they end).
        self._senders: set[asyncio.Task[None]] = set()
        self._sentinel = _close_at_loop_shutdown(self)
        # First iteration registers it with the running loop; it then waits there.
        with contextlib.suppress(StopIteration):
            self._sentinel.__anext__().send(None)

    # -- sending ----------------------------------------------------------------------

    def submit(
        self, request: bytes, expect: int | None, count: int, keys: Any, idempotent: bool
    ) -> asyncio.Future[Any]:
        """Send a request with this turn's batch; the future gets its reply (or the failure).

        A call made while nothing is in flight is sent at once, if it is safe to
        send again (a read, a plain ``set``): the one-at-a-time case then costs
        no extra turn of the loop. Any other call waits for the
        end of the turn, which also lets a connection the server closed meanwhile
        be seen as closed before anything that must not run twice is sent on it.
        """
        waiter = self.loop.create_future()
        pending = self._pending
        if pending is None:
            if idempotent and self.idle and len(self.idle) == self.size:
                # Nothing in flight: a call on its own, sent at once. (Once one is in
                # flight, the calls that follow in this turn wait for its batch.)
                conn = self._take_idle()
                if conn is not None:
                    if count == 1 and expect is not None:
                        conn.send_one(waiter, request, expect, keys)
                    else:
                        batch = Batch()
                        batch.add(waiter, request, expect, count, keys)
                        conn.send(batch)
                    return waiter
            pending = self._pending = Pending()
            self.loop.call_soon(self._flush)
        pending.add(waiter, request, expect, count, keys, idempotent)
        return waiter

    def submit_get(self, key: bytes) -> asyncio.Future[Any]:
        """A single-key ``get`` (an encoded key), autobatched with this turn's other gets."""
        pending = self._pending
        if pending is None:
            if self.idle and len(self.idle) == self.size:  # nothing in flight (see submit)
                conn = self._take_idle()
                if conn is not None:
                    waiter = self.loop.create_future()
                    conn.send_one(waiter, b"get " + key + b"\r\n", Expect.VALUES, (key,))
                    return waiter
            pending = self._pending = Pending()
            self.loop.call_soon(self._flush)
        waiter = self.loop.create_future()
        pending.add_get(waiter, key)
        return waiter

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:  # pragma: no cover - one flush per pending batch
            return
        if pending.empty:  # the turn's only call went out at once
            return
        batch = pending.build()
        conn = self._take_idle(careful=pending.careful)
        if conn is not None:
            conn.send(batch)
            return
        sender = self.loop.create_task(self._send_later(batch, pending.careful))
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _send_later(self, batch: Batch, careful: bool) -> None:
        """Send ``batch`` once a connection is free (or opened); its calls get any failure."""
        server = self._server
        health = server.health
        seen = health.down_until
        try:
            while True:
                conn = await self.acquire()
                if conn is None or not careful or not conn.peer_closed():
                    break
                self._close(conn)  # closed by the server: what must not run twice waits
        except PoolTimeoutError:
            batch.fail(server.pool_exhausted)
            return
        except BaseException:
            for waiter in batch.waiters():  # the loop is shutting down
                waiter.cancel()
            raise
        if health.down_until != seen:
            # It failed while this batch waited for a connection: fail fast, as the
            # calls that arrive now do, instead of trying it on every freed slot.
            try:
                health.check()
            except LayeredCacheError:
                self.give_back(conn)
                batch.fail(health.unavailable)
                return
        if batch.abandoned():
            self.give_back(conn)
            return
        if conn is None:
            try:
                conn = await server.open(self)
            except BaseException as exc:
                self._hand_over(None)
                error = exc
                batch.fail(lambda: Failed(error, reused=False))
                if not isinstance(exc, Exception):
                    raise
                return
        conn.send(batch)

    def _take_idle(self, *, careful: bool = False) -> AsyncConnection | None:
        """An idle connection fit for use, if there is one (closing those that are not).

        ``careful``: the socket itself is asked for an end-of-file the loop has
        not handled yet (for what must not be sent twice).
        """
        server = self._server
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.broken or server.idle_expired(conn) or (careful and conn.peer_closed()):
                self._close(conn)
                continue
            return conn
        return None

    # -- connections ------------------------------------------------------------------

    async def acquire(self) -> AsyncConnection | None:
        """An idle connection, or None: the caller may open one (a slot is reserved for it).

        Raises:
            PoolTimeoutError: every connection stayed busy for ``pool_timeout``.
        """
        server = self._server
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.broken or server.idle_expired(conn):
                    self._close(conn)
                    continue
                return conn
            if self.size < server.max_connections:
                self.size += 1
                return None
            handed = await self._wait()
            if handed is None or not handed.broken:
                return handed
            self._close(handed)  # and wait for the next one

    async def fresh_slot(self) -> None:
        """Reserve a slot for a new connection (an idle one in the way is closed for it)."""
        conn = await self.acquire()
        if conn is None:
            return
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_closed() -> None:
            if closed.cancelled():
                self._slot_freed()  # the waiting call was cancelled: pass the slot on
            else:
                closed.set_result(None)

        conn.close()
        conn.when_closed(on_closed)  # its slot is ours once its socket is closed
        try:
            await closed
        except BaseException:
            if closed.done() and not closed.cancelled():
                self._slot_freed()
            raise

    async def _wait(self) -> AsyncConnection | None:
        """Wait (at most ``pool_timeout``) until a connection or a slot is handed over."""
        server = self._server
        waiter: asyncio.Future[AsyncConnection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timeout = server.pool_timeout
        timer = None if timeout is None else waiter.get_loop().call_later(timeout, _give_up, waiter)
        try:
            handed = await waiter
        except TimeoutError:
            raise server.pool_exhausted() from None
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a slot) just as we were cancelled: pass it on.
                self._hand_over(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return handed

    def release(self, conn: AsyncConnection) -> None:
        """Put a healthy connection back (or hand it to a waiting call)."""
        if self._server.idle_timeout:
            conn.idle_since = conn.loop.time()
        self._hand_over(conn)

    def give_back(self, conn: AsyncConnection | None) -> None:
        """Return what :meth:`acquire` gave, unused: a connection to the pool, or its slot."""
        if conn is None:
            self._hand_over(None)
        else:
            self.release(conn)

    def discard(self, conn: AsyncConnection | None) -> None:
        """Give up a connection (closed) or an unused slot (None); a waiting call may open one."""
        if conn is None:
            self._hand_over(None)
        else:
            self._close(conn)

    def _close(self, conn: AsyncConnection) -> None:
        """Close ``conn``; its slot comes back once its socket is closed, not before.

        (An aborted asyncio connection closes its socket on the loop's next turn: a
        slot handed on at once would let ``max_connections`` plus the closing ones
        be open together, which a server that caps connections would refuse.)
        """
        conn.close()
        conn.when_closed(self._slot_freed)

    def _slot_freed(self) -> None:
        self._hand_over(None)

    def _hand_over(self, conn: AsyncConnection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            self.size -= 1
        else:
            self.idle.append(conn)

    def close_idle(self) -> list[AsyncConnection]:
        """Close every idle connection; the ones closed (their sockets close soon after)."""
        closed = []
        while self.idle:
            conn = self.idle.pop()
            self._close(conn)
            closed.append(conn)
        return closed

    def retire(self) -> None:
        """Keep nothing from now on: connections coming back are closed (see :class:`_Retired`).

        Changing the class, rather than testing a flag in :meth:`release`, keeps
        the pool of every server in service exactly as fast as before.
        """
        self.__class__ = _Retired
        self.close_idle()


class _Retired(LoopPool):
    """The pool of a server discovery removed: every connection that comes back is closed."""

    def release(self, conn: AsyncConnection) -> None:
        self.discard(conn)


@attrs.define(eq=False, repr=False)
class AsyncServer:
    """A server's identity, health and connection recipe, shared by every event loop."""

    plan: ConnectionPlan
    #: ``host:port`` as shown in errors and logs.
    name: str
    health: ServerHealth
    auth: Authenticator = attrs.field(kw_only=True)
    connect_timeout: float | None = attrs.field(kw_only=True)
    timeout: float | None = attrs.field(kw_only=True)
    max_connections: int = attrs.field(kw_only=True)
    pool_timeout: float | None = attrs.field(kw_only=True)
    idle_timeout: float = attrs.field(kw_only=True)
    #: Called before each new connection (discovery starts this loop's refresh task).
    on_open: Callable[[], None] | None = attrs.field(default=None, kw_only=True)
    _observer: Observer | None = attrs.field(default=None, kw_only=True)
    #: Whether the server speaks the meta protocol; None until asked.
    meta: bool | None = attrs.field(default=None, init=False)
    #: Discovery removed the server: its connections are closed as they come back.
    retired: bool = attrs.field(default=False, init=False)
    _pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = attrs.field(
        factory=weakref.WeakKeyDictionary, init=False
    )
    # The pool used last, and (weakly) its loop: the one looked up nearly every time.
    _last: tuple[weakref.ref[asyncio.AbstractEventLoop], LoopPool] | None = attrs.field(
        default=None, init=False
    )

    def pool(self) -> LoopPool:
        """This event loop's pool (made on first use; another loop never sees its connections)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        pool = self._pools.get(loop)
        if pool is None:
            for old in [old for old in self._pools if old.is_closed()]:
                # A loop closed without shutting its async generators down: its
                # connections cannot be closed through it any more, only forgotten.
                del self._pools[old]
            pool = self._pools[loop] = LoopPool(self)
            if self.retired:
                pool.retire()
        self._last = (weakref.ref(loop), pool)
        return pool

    def idle_expired(self, conn: AsyncConnection) -> bool:
        return bool(self.idle_timeout) and conn.idle_since + self.idle_timeout < conn.loop.time()

    def pool_exhausted(self) -> PoolTimeoutError:
        return pool_exhausted(
            self.name, self.max_connections, self.pool_timeout, "concurrent calls"
        )

    async def _open(self) -> AsyncConnection:
        if self.on_open is not None:
            self.on_open()
        opening = AsyncConnection.open(
            self.plan, name=self.name, auth=self.auth, connect_timeout=self.connect_timeout
        )
        if self._observer is None:
            return await opening
        return await self._observer.aconnect(opening, self.name, self.auth)

    # -- exchanges ------------------------------------------------------------------------

    async def open(self, pool: LoopPool) -> AsyncConnection:
        """A new connection, authenticated, carrying batches for ``pool``."""
        conn = await self._open()
        conn.attach(pool, self.timeout)
        return conn

    # -- exchanges ------------------------------------------------------------------------

    async def exchange(self, step: Exchange) -> Any:
        """Perform ``step`` with this turn's batch on this loop; raise a translated error."""
        health = self.health
        if health.down_until:
            health.check()
        if step.admin is not None:
            return await self._fresh(step)
        pool = self.pool()
        try:
            reply = await pool.submit(
                step.request, step.expect, step.count, step.keys, step.idempotent
            )
        except Exception as exc:
            return await self._failure(exc, pool, step)
        if health.failures:
            health.recovered()
        return reply

    async def get(self, key: bytes) -> Any:
        """``get`` of one encoded key, autobatched (the reply: a list of 0 or 1 item)."""
        health = self.health
        if health.down_until:
            health.check()
        pool = self.pool()
        try:
            reply = await pool.submit_get(key)
        except Exception as exc:
            step = Exchange(self, b"get " + key + b"\r\n", Expect.VALUES, True, 1, (key,))
            return await self._failure(exc, pool, step)
        if health.failures:
            health.recovered()
        return reply

    async def _failure(self, exc: Exception, pool: LoopPool, step: Exchange) -> Any:
        """Why ``step`` failed, translated and raised; or its answer, resent once if it may be."""
        if isinstance(exc, LayeredCacheError):  # the pool stayed busy
            raise exc
        if not isinstance(exc, Failed):  # an error line
            raise self._failed(exc, first_use=False, pool=pool) from exc
        error = exc.error
        if exc.reused and isinstance(error, STALE_ERRORS):
            # The server closed a pooled connection (a restart, an idle timeout at a proxy).
            if self._observer is not None:
                self._observer.emit(StaleConnectionEvent(self.name, type(error).__name__))
            if step.idempotent:
                return await self._fresh(step)
            raise translate(error, self.name, self.timeout) from error
        raise self._failed(error, first_use=not exc.reused, pool=pool) from error

    async def _fresh(self, step: Exchange) -> Any:
        """Perform ``step`` on a new connection (a resend, or an administrative command)."""
        pool = self.pool()
        await pool.fresh_slot()
        try:
            conn = await self.open(pool)
        except Exception as exc:
            pool.discard(None)
            raise self._failed(exc, first_use=True, pool=pool) from exc
        except BaseException:
            pool.discard(None)
            raise
        waiter = pool.loop.create_future()
        batch = Batch()
        batch.add(waiter, step.request, step.expect, step.count, step.keys)
        conn.send(batch)
        try:
            reply = await waiter
        except Failed as failed:
            error = failed.error
            if step.admin is not None and isinstance(error, PeerClosedError):
                # Opened fine, then closed without a reply: a proxy such as twemproxy
                # refusing the command, not an outage.
                raise unsupported_command(self.name, step.admin) from error
            raise self._failed(error, first_use=True, pool=pool) from error
        except Exception as exc:  # an error line
            raise self._failed(exc, first_use=True, pool=pool) from exc
        if self.health.failures:
            self.health.recovered()
        return reply

    async def probe_meta(self) -> bool:
        """Ask the server once (on a connection of its own) whether it speaks meta; remember it.

        The probe's connection takes a slot of the pool like any other: however
        many calls ask at once, ``max_connections`` holds.
        """
        if self.health.down_until:
            self.health.check()
        pool = self.pool()
        await pool.fresh_slot()
        if self.meta is not None:  # another call found out while this one waited
            pool.discard(None)
            return self.meta
        conn: AsyncConnection | None = None
        try:
            conn = await self._open()
            async with asyncio.timeout(self.timeout):
                speaks = bool(await conn.run_flow(meta_probe_flow()))
        except Exception as exc:
            raise self._failed(exc, first_use=True, pool=pool) from exc
        finally:
            pool.discard(conn)  # closed, and its slot given back
        self.meta = speaks
        return speaks

    def _failed(
        self, exc: BaseException, *, first_use: bool, pool: LoopPool | None
    ) -> LayeredCacheError:
        tls = self.plan.ssl_context is not None
        error = translate(exc, self.name, self.timeout, first_use=first_use, tls=tls)
        if self.health.failed(error) and pool is not None:
            pool.close_idle()
        return error

    def retire(self) -> None:
        """Discovery removed this server: close every loop's idle connections, and each busy
        one as it comes back."""
        self.retired = True
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, pool in list(self._pools.items()):
            if loop is running:
                pool.retire()
            elif not loop.is_closed():
                # Another loop's connections are closed by that loop, in its own thread.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(pool.retire)

    def close_idle(self) -> list[AsyncConnection]:
        """Close this loop's idle connections (other loops close theirs when they next run).

        Returns the ones closed, whose sockets close soon after.
        """
        try:
            pool = self.pool()
        except RuntimeError:  # no running loop
            return []
        return pool.close_idle()
