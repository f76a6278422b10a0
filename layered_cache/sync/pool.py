"""The connections the sync engine holds to one server: idle ones, and a bound on all of them.

Threads take and return connections without a lock: idle connections wait in
a :class:`~collections.deque`, whose ``pop`` and ``append`` are atomic in
CPython, so the common case (an idle connection is there) costs two deque
operations. Only the slow paths take the pool's lock: opening a connection
(the count of open connections is checked against ``max_connections``),
closing one, and waiting for one when all are busy. A waiting thread parks
on a lock of its own, which the next thread returning a connection
releases; it then tries again (another thread may have been quicker), for at
most ``pool_timeout`` seconds in all.

No lock is ever held around I/O: connecting, sending and reading happen
outside the pool.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque

import attrs

from layered_cache.core.translate import pool_exhausted
from layered_cache.errors import PoolTimeoutError
from layered_cache.sync.connection import Connection

__all__ = ["ConnectionPool"]


@attrs.define(eq=False, repr=False)
class ConnectionPool:
    """At most ``max_connections`` connections to one server, shared by threads.

    Args:
        name: ``host:port``, for the error raised when the pool stays exhausted.
        max_connections: connections open at once (in use or idle), at most.
        pool_timeout: seconds a call waits for a free connection (None: forever).
        max_idle: idle connections kept (None: all of them); the others are closed.
        idle_timeout: seconds after which an idle connection is replaced (0: never).
    """

    name: str
    max_connections: int = attrs.field(kw_only=True)
    pool_timeout: float | None = attrs.field(kw_only=True)
    max_idle: int | None = attrs.field(kw_only=True)
    idle_timeout: float = attrs.field(kw_only=True)
    #: Idle connections, most recently used last.
    idle: deque[Connection] = attrs.field(init=False, factory=deque)
    #: Connections open or being opened (idle ones included).
    size: int = attrs.field(init=False, default=0)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    # Threads waiting for a connection, each parked on a (held) lock of its own.
    waiters: deque[threading.Lock] = attrs.field(init=False, factory=deque)
    #: Whether returned connections are put back as they are (no bound, no clock).
    plain: bool = attrs.field(init=False)

    @plain.default
    def _plain_default(self) -> bool:
        return self.max_idle is None and not self.idle_timeout

    # -- taking -----------------------------------------------------------------------------

    def take(self) -> Connection | None:
        """An idle connection, or None: the caller may open one (its slot is reserved).

        Raises:
            PoolTimeoutError: every connection stayed busy for ``pool_timeout``.
        """
        try:
            return self.idle.pop()
        except IndexError:
            return self._take_slow()

    def _reserve(self) -> bool:
        with self._lock:
            if self.size < self.max_connections:
                self.size += 1
                return True
            return False

    def _take_slow(self) -> Connection | None:
        # No idle connection: open one if the bound allows, else wait for one.
        if self._reserve():
            return None
        timeout = self.pool_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waiter = threading.Lock()
            waiter.acquire()
            # Registered before looking again, so a connection returned from now
            # on either is found below or releases this waiter.
            self.waiters.append(waiter)
            try:
                conn: Connection | None = self.idle.pop()
            except IndexError:
                conn = None
            if conn is not None or self._reserve():
                self._leave(waiter)
                return conn
            if deadline is None:
                waiter.acquire()
                continue
            left = deadline - time.monotonic()
            if left > 0 and waiter.acquire(timeout=left):
                continue  # woken: something came back; look again
            self._leave(waiter)
            try:
                return self.idle.pop()  # one last look
            except IndexError:
                raise self.exhausted() from None

    def _leave(self, waiter: threading.Lock) -> None:
        """Stop waiting; a wake-up meant for this waiter goes to the next one."""
        try:
            self.waiters.remove(waiter)
        except ValueError:
            self.wake()  # already woken: pass it on (a spare wake-up is harmless)

    def wake(self) -> None:
        """Release the longest-waiting thread, if any (it then looks for a connection again)."""
        with contextlib.suppress(IndexError):
            self.waiters.popleft().release()

    def exhausted(self) -> PoolTimeoutError:
        """The error for a call that found every connection busy for ``pool_timeout``."""
        return pool_exhausted(
            self.name, self.max_connections, self.pool_timeout, "threads calling at once"
        )

    def expired(self, conn: Connection) -> bool:
        """Whether an idle connection sat unused longer than ``idle_timeout``."""
        return bool(self.idle_timeout) and conn.idle_since + self.idle_timeout < time.monotonic()

    # -- giving back ------------------------------------------------------------------------

    def give(self, conn: Connection) -> None:
        """Put a healthy connection back (a waiting thread, if any, is woken)."""
        if self.plain:
            self.idle.append(conn)
        elif self.max_idle is not None and len(self.idle) >= self.max_idle:
            self.discard(conn)
            return
        else:
            if self.idle_timeout:
                conn.idle_since = time.monotonic()
            self.idle.append(conn)
        if self.waiters:
            self.wake()

    def discard(self, conn: Connection) -> None:
        """Close a connection that must not be reused; its slot is freed."""
        try:
            conn.close()
        finally:
            self.forget()

    def forget(self) -> None:
        """Free the slot of a connection that is gone (closed, or never opened)."""
        with self._lock:
            self.size -= 1
        if self.waiters:
            self.wake()

    def close_idle(self) -> None:
        """Close every idle connection (in-flight ones are closed when they come back broken)."""
        while True:
            try:
                conn = self.idle.pop()
            except IndexError:
                return
            self.discard(conn)

    def take_idle(self) -> list[Connection]:
        """Take every idle connection out, to be closed by the caller; then :meth:`forget` each."""
        taken = []
        while True:
            try:
                taken.append(self.idle.pop())
            except IndexError:
                return taken

    def retire(self) -> None:
        """Keep no connection from now on: close the idle ones, and busy ones as they come back."""
        self.max_idle = 0
        self.plain = False
        self.close_idle()

    def reset(self) -> None:
        """In a forked child: forget the parent's connections, slots and waiters."""
        self._lock = threading.Lock()
        self.waiters = deque()
        while self.idle:
            self.idle.pop().close()
        self.size = 0
