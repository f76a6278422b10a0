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

import time
from collections import deque
from collections.abc import Callable
from typing import Any

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
from layered_cache.transport._base import Address

__all__ = ["ServerNode"]


class ServerNode:
    """Connections to one server, reused across calls and threads.

    Idle connections wait in a deque: ``pop``/``append`` are atomic in
    CPython, so taking and returning a connection costs no lock.
    """

    def __init__(
        self,
        address: Address,
        name: str,
        connect: Callable[[], Connection],
        health: ServerHealth,
        *,
        timeout: float | None,
        max_idle: int | None,
        idle_timeout: float,
        observer: Observer | None = None,
    ) -> None:
        self.address = address
        #: ``host:port`` as shown in errors and logs.
        self.name = name
        self.health = health
        self._connect = connect
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._idle: deque[Connection] = deque()
        self._observer = observer
        #: Whether the server speaks the meta protocol; None until asked.
        self.meta: bool | None = None

    # -- exchanges ------------------------------------------------------------------------

    def exchange(self, step: Exchange) -> Any:  # noqa: PLR0912 - the hot path, kept inline
        """Perform ``step`` on a pooled connection; raise a translated error on failure."""
        health = self.health
        if health.down_until:  # inline test first: this is the hot path
            health.check()
        if step.admin is not None:
            return self._fresh(step)
        conn: Connection | None
        try:
            pooled = self._idle.pop()
        except IndexError:
            conn = None
        else:
            if (
                self._idle_timeout and pooled.idle_since + self._idle_timeout < time.monotonic()
            ) or ((pooled.quiet or not step.idempotent) and pooled.peer_closed()):
                # A command that must not run twice is never sent on a connection
                # the server has already closed (e.g. restarted): it gets a new one.
                # Nor is any command sent where a noreply command left an answer.
                pooled.close()
                conn = None
            else:
                pooled.quiet = False
                conn = pooled
        reused = conn is not None
        try:
            if conn is None:
                conn = self._connect()
            reply = conn.exchange(step.request, step.expect, step.count, step.keys)
        except Exception as exc:
            if conn is not None:
                conn.close()
            if reused and isinstance(exc, STALE_ERRORS):
                # The server closed a pooled connection (a restart, an idle
                # timeout at a proxy); its siblings idled through the same event.
                self.discard_idle()
                if self._observer is not None:
                    self._observer.emit(StaleConnectionEvent(self.name, type(exc).__name__))
                if step.idempotent:
                    return self._fresh(step)
                # Not an outage, and not safe to repeat: report it as it is.
                raise translate(exc, self.name, self._timeout) from exc
            raise self._failed(exc, first_use=not reused) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if health.failures:
            health.recovered()
        if self._max_idle is None and not self._idle_timeout:
            self._idle.append(conn)  # the common case of _release, inline
        else:
            self._release(conn)
        return reply

    def _fresh(self, step: Exchange) -> Any:
        """Perform ``step`` on a new connection (a resend, or an administrative command)."""
        conn: Connection | None = None
        try:
            conn = self._connect()
            reply = conn.exchange(step.request, step.expect, step.count, step.keys)
        except Exception as exc:
            if conn is not None:
                conn.close()
                if step.admin is not None and isinstance(exc, PeerClosedError):
                    # Opened fine, then closed without a reply: a proxy such as
                    # twemproxy refusing the command, not an outage.
                    raise unsupported_command(self.name, step.admin) from exc
            raise self._failed(exc, first_use=True) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if self.health.failures:
            self.health.recovered()
        self._release(conn)
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
            raise self._failed(exc, first_use=True) from exc
        finally:
            if conn is not None:
                conn.close()
        self.meta = speaks
        return speaks

    def _failed(self, exc: Exception, *, first_use: bool) -> LayeredCacheError:
        error = translate(exc, self.name, self._timeout, first_use=first_use)
        if self.health.failed(error):
            self.discard_idle()
        return error

    # -- the pool -------------------------------------------------------------------------

    def _release(self, conn: Connection) -> None:
        # (A connection that carried a noreply command is checked when next
        # taken: an error answering it may not have arrived yet.)
        if self._max_idle is not None and len(self._idle) >= self._max_idle:
            conn.close()
            return
        if self._idle_timeout:
            conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connections and locks.

        A socket shared with the parent would interleave two processes'
        commands and replies. Closing the child's copy sends nothing on the
        wire (the parent still holds the connection open).
        """
        self.health.after_fork()
        self.discard_idle()

    def retire(self) -> None:
        """Discovery removed this server: close its idle connections, and each busy one as it
        comes back (a pool of size 0 keeps nothing; see ``_release``)."""
        self._max_idle = 0
        self.discard_idle()

    def discard_idle(self) -> None:
        """Close every idle connection (in-flight ones are closed when they come back broken)."""
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return
