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
from layered_cache.transport.tcp import ConnectionPlan

__all__ = ["AsyncServer", "LoopPool"]


async def _close_at_loop_shutdown(pool: LoopPool) -> AsyncGenerator[None, None]:
    """An async generator that closes ``pool`` when its loop shuts down.

    :func:`asyncio.run` (and any loop owner calling ``shutdown_asyncgens()``)
    closes every live async generator while the loop still runs: the one
    moment a pool's idle connections can still be closed properly.
    """
    try:
        yield
    finally:
        pool.close_idle()


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
        self.idle: deque[AsyncConnection] = deque()
        #: Connections open or being opened (idle ones included).
        self.size = 0
        self._waiters: deque[asyncio.Future[AsyncConnection | None]] = deque()
        self._sentinel = _close_at_loop_shutdown(self)
        # First iteration registers it with the running loop; it then waits there.
        with contextlib.suppress(StopIteration):
            self._sentinel.__anext__().send(None)

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

    def close_idle(self) -> None:
        """Close every idle connection."""
        while self.idle:
            self._close(self.idle.pop())

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


class AsyncServer:
    """A server's identity, health and connection recipe, shared by every event loop."""

    def __init__(
        self,
        plan: ConnectionPlan,
        name: str,
        health: ServerHealth,
        *,
        auth: Authenticator,
        connect_timeout: float | None,
        timeout: float | None,
        max_connections: int,
        pool_timeout: float | None,
        idle_timeout: float,
        on_open: Callable[[], None] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.plan = plan
        #: ``host:port`` as shown in errors and logs.
        self.name = name
        self.health = health
        self.auth = auth
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.idle_timeout = idle_timeout
        self._observer = observer
        #: Whether the server speaks the meta protocol; None until asked.
        self.meta: bool | None = None
        #: Discovery removed the server: its connections are closed as they come back.
        self.retired = False
        #: Called before each new connection (discovery starts this loop's refresh task).
        self.on_open = on_open
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = (
            weakref.WeakKeyDictionary()
        )

    def pool(self) -> LoopPool:
        """This event loop's pool (made on first use; another loop never sees its connections)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [old for old in self._pools if old.is_closed()]:
                # A loop closed without shutting its async generators down: its
                # connections cannot be closed through it any more, only forgotten.
                del self._pools[old]
            pool = self._pools[loop] = LoopPool(self)
            if self.retired:
                pool.retire()
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

    async def exchange(self, step: Exchange) -> Any:
        """Perform ``step`` on one of this loop's connections; raise a translated error."""
        health = self.health
        if health.down_until:
            health.check()  # raises, or lets this call try the server
        if step.admin is not None:
            return await self._fresh(step)
        seen = health.down_until
        pool = self.pool()
        conn = await pool.acquire()
        if health.down_until != seen:
            # It failed while this call waited for a connection: fail fast, as the
            # calls that arrive now do, instead of trying it on every freed slot.
            try:
                health.check()
            except BaseException:
                pool.give_back(conn)
                raise
        if conn is not None and not step.idempotent and conn.peer_closed():
            # A command that must not run twice is never sent on a connection the
            # server already closed: it gets a fresh one.
            pool.discard(conn)
            conn = await pool.acquire()
        reused = conn is not None
        try:
            if conn is None:
                conn = await self._open()
            reply = await conn.exchange(
                step.request, step.expect, step.count, step.keys, self.timeout
            )
        except Exception as exc:
            pool.discard(conn)
            if reused and isinstance(exc, STALE_ERRORS):
                # The server closed a pooled connection (a restart, an idle timeout
                # at a proxy); its siblings idled through the same event.
                pool.close_idle()
                if self._observer is not None:
                    self._observer.emit(StaleConnectionEvent(self.name, type(exc).__name__))
                if step.idempotent:
                    return await self._fresh(step)
                raise translate(exc, self.name, self.timeout) from exc
            raise self._failed(exc, first_use=not reused, pool=pool) from exc
        except BaseException:
            # Cancelled: the reply may still come, so the connection must never be reused.
            pool.discard(conn)
            raise
        if health.failures:
            health.recovered()
        pool.release(conn)
        return reply

    async def _fresh(self, step: Exchange) -> Any:
        """Perform ``step`` on a new connection (a resend, or an administrative command)."""
        pool = self.pool()
        await pool.fresh_slot()
        conn: AsyncConnection | None = None
        try:
            conn = await self._open()
            reply = await conn.exchange(
                step.request, step.expect, step.count, step.keys, self.timeout
            )
        except Exception as exc:
            pool.discard(conn)
            if step.admin is not None and conn is not None and isinstance(exc, PeerClosedError):
                # Opened fine, then closed without a reply: a proxy such as twemproxy
                # refusing the command, not an outage.
                raise unsupported_command(self.name, step.admin) from exc
            raise self._failed(exc, first_use=True, pool=pool) from exc
        except BaseException:
            pool.discard(conn)
            raise
        if self.health.failures:
            self.health.recovered()
        pool.release(conn)
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
        self, exc: Exception, *, first_use: bool, pool: LoopPool | None
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

    def close_idle(self) -> None:
        """Close this loop's idle connections (other loops close theirs when they next run)."""
        try:
            pool = self.pool()
        except RuntimeError:  # no running loop
            return
        pool.close_idle()
