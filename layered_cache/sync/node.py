"""One memcached server as the sync engine sees it: a pool of connections and a health record.

The node performs a flow's :class:`~layered_cache.core.operations.Exchange`:
it takes a pooled connection (or opens one), sends, reads, and puts the
connection back; a failed exchange discards its connection (its reply stream
can no longer be trusted) and tells the server's
:class:`~layered_cache.core.health.ServerHealth`. A pooled connection the
server already closed (a restart, a proxy's idle timeout) is replaced, and an
idempotent command is sent once more on the fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from layered_cache.core.connection_flows import meta_probe_flow
from layered_cache.core.health import ServerHealth
from layered_cache.core.observer import Observer
from layered_cache.core.operations import Exchange
from layered_cache.core.translate import (
    STALE_ERRORS,
    PeerClosedError,
    translate,
    unsupported_command,
)
from layered_cache.errors import LayeredCacheError
from layered_cache.observability.events import StaleConnectionEvent
from layered_cache.sync.connection import Connection
from layered_cache.sync.pool import ConnectionPool
from layered_cache.transport._base import Address

__all__ = ["ServerNode"]


@attrs.define(eq=False, repr=False)
class ServerNode:
    """Connections to one server, reused across calls and threads, at most ``max_connections``.

    The pool (:class:`~layered_cache.sync.pool.ConnectionPool`) hands out idle
    connections without a lock; see there for how a thread waits when all
    connections are busy.
    """

    address: Address
    #: ``host:port`` as shown in errors and logs.
    name: str
    _connect: Callable[[], Connection]
    health: ServerHealth
    #: This server's connections.
    pool: ConnectionPool
    _timeout: float | None = attrs.field(kw_only=True)
    _observer: Observer | None = attrs.field(kw_only=True, default=None)
    #: Whether the server speaks the meta protocol; None until asked.
    meta: bool | None = attrs.field(init=False, default=None)

    # -- exchanges ------------------------------------------------------------------------

    def exchange(self, step: Exchange) -> Any:  # noqa: PLR0912 - the hot path, kept inline
        """Perform ``step`` on a pooled connection; raise a translated error on failure."""
        health = self.health
        if health.down_until:  # inline test first: this is the hot path
            health.check()
        if step.admin is not None:
            return self._fresh(step)
        pool = self.pool
        try:
            conn: Connection | None = pool.idle.pop()  # (pool.take(), inline)
        except IndexError:
            conn = pool.take()
        if conn is not None and (
            (pool.idle_timeout and pool.expired(conn))
            or ((conn.quiet or not step.idempotent) and conn.peer_closed())
        ):
            # A command that must not run twice is never sent on a connection
            # the server has already closed (e.g. restarted): it gets a new one
            # (in the same slot). Nor is any command sent where a noreply
            # command left an answer.
            conn.close()
            conn = None
        reused = conn is not None
        try:
            if conn is None:
                conn = self._connect()
            else:
                conn.quiet = False
            reply = conn.exchange(step.request, step.expect, step.count, step.keys)
        except Exception as exc:
            if conn is not None:
                conn.close()
            pool.forget()
            if reused and isinstance(exc, STALE_ERRORS):
                return self.stale(step, exc)
            raise self.failed(exc, first_use=not reused) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            pool.forget()
            raise
        if health.failures:
            health.recovered()
        if pool.plain:
            pool.idle.append(conn)  # (pool.give(conn), inline)
            if pool.waiters:
                pool.wake()
        else:
            pool.give(conn)
        return reply

    def checkout(self, step: Exchange) -> tuple[Connection, bool]:
        """A connection to perform ``step`` on, and whether it came from the pool.

        What :meth:`exchange` does before sending, for a caller that sends and
        reads itself (a :class:`~layered_cache.core.operations.Batch`); give the
        connection back with :meth:`checkin`, or to ``pool.discard`` if it failed.

        Raises:
            CacheConnectionError: the server is being skipped, the pool stayed
                exhausted, or a new connection failed (counted toward health).
        """
        if self.health.down_until:
            self.health.check()
        pool = self.pool
        conn = pool.take()
        if conn is not None:
            if not (
                (pool.idle_timeout and pool.expired(conn))
                or ((conn.quiet or not step.idempotent) and conn.peer_closed())
            ):
                conn.quiet = False
                return conn, True
            conn.close()  # (as in exchange: its slot is the new connection's)
        try:
            return self._connect(), False
        except Exception as exc:
            pool.forget()
            raise self.failed(exc, first_use=True) from exc
        except BaseException:
            pool.forget()
            raise

    def checkin(self, conn: Connection) -> None:
        """Give back a connection :meth:`checkout` lent, after a successful exchange."""
        if self.health.failures:
            self.health.recovered()
        self.pool.give(conn)

    def stale(self, step: Exchange, exc: Exception) -> Any:
        """A pooled connection failed as one the server closed while it idled.

        The server closed it (a restart, an idle timeout at a proxy); its
        siblings idled through the same event. An idempotent step is sent
        again on a fresh connection; any other is reported as it is (not an
        outage, and not safe to repeat).
        """
        self.discard_idle()
        if self._observer is not None:
            self._observer.emit(StaleConnectionEvent(self.name, type(exc).__name__))
        if step.idempotent:
            return self._fresh(step)
        raise translate(exc, self.name, self._timeout) from exc

    def _fresh(self, step: Exchange) -> Any:
        """Perform ``step`` on a new connection (a resend, or an administrative command)."""
        pool = self.pool
        idle = pool.take()
        if idle is not None:
            idle.close()  # its slot is the new connection's
        conn: Connection | None = None
        try:
            conn = self._connect()
            reply = conn.exchange(step.request, step.expect, step.count, step.keys)
        except Exception as exc:
            pool.forget()
            if conn is not None:
                conn.close()
                if step.admin is not None and isinstance(exc, PeerClosedError):
                    # Opened fine, then closed without a reply: a proxy such as
                    # twemproxy refusing the command, not an outage.
                    raise unsupported_command(self.name, step.admin) from exc
            raise self.failed(exc, first_use=True) from exc
        except BaseException:
            pool.forget()
            if conn is not None:
                conn.close()
            raise
        if self.health.failures:
            self.health.recovered()
        pool.give(conn)
        return reply

    def probe_meta(self) -> bool:
        """Ask the server once (on a connection of its own) whether it speaks meta; remember it."""
        if self.health.down_until:
            self.health.check()
        conn: Connection | None = None
        try:
            conn = self._connect()
            speaks = bool(conn.run_flow(meta_probe_flow()))
        except Exception as exc:
            raise self.failed(exc, first_use=True) from exc
        finally:
            if conn is not None:
                conn.close()
        self.meta = speaks
        return speaks

    def failed(self, exc: Exception, *, first_use: bool) -> LayeredCacheError:
        """Translate ``exc``, count it against the server's health (closing idle ones if down)."""
        error = translate(exc, self.name, self._timeout, first_use=first_use)
        if self.health.failed(error):
            self.discard_idle()
        return error

    # -- the pool -------------------------------------------------------------------------

    def connect(self) -> Connection:
        """Open (and authenticate) a new connection to the server."""
        return self._connect()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections and locks.

        A socket shared with the parent would interleave two processes'
        commands and replies. Closing the child's copy sends nothing on the
        wire (the parent still holds the connection open).
        """
        self.health.after_fork()
        self.pool.reset()

    def retire(self) -> None:
        """Discovery removed this server: close its idle connections, and each busy one as it
        comes back (see :meth:`~layered_cache.sync.pool.ConnectionPool.retire`)."""
        self.pool.retire()

    def discard_idle(self) -> None:
        """Close every idle connection (in-flight ones are closed when they come back broken)."""
        self.pool.close_idle()
