"""One memcached server as the client sees it: a pool of connections and a health record."""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from pymemcache.exceptions import MemcacheIllegalInputError, MemcacheUnexpectedCloseError

from layered_cache._connection import Connection
from layered_cache._translate import STALE_ERRORS, translate
from layered_cache.errors import (
    CacheConnectionError,
    InvalidKeyError,
    LayeredCacheError,
    SerializationError,
    ServerUnavailableError,
    TLSError,
    UnsupportedCommandError,
    UpstreamUnavailableError,
)
from layered_cache.transport._base import Address

__all__ = ["HealthPolicy", "ServerNode"]

logger = logging.getLogger("layered_cache")

T = TypeVar("T")

_REFUSED_BEFORE_SENDING = (InvalidKeyError, SerializationError, MemcacheIllegalInputError)


def _peer_closed(conn: Connection) -> bool:
    """Whether the server already closed this idle connection (it is readable: EOF is waiting)."""
    sock = conn.sock
    if sock is None:
        return False
    # poll, not select: select cannot watch descriptors numbered 1024 and up.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class HealthPolicy:
    """When a failing server is tried again, and when it is reported down.

    Same names as pymemcache's ``HashClient``, with two differences in kind.
    A server that is being skipped makes calls raise
    :class:`~layered_cache.errors.ServerUnavailableError` at once instead of
    answering with a quiet ``None``, so a miss always means "not in cache".
    And a skipped server is never left alone for long: when its window ends,
    exactly one call tries it (a half-open check) while the others keep
    failing fast, so a server that restarts is used again within about one
    window of its return.

    Attributes:
        retry_attempts: failures in a row after which the server is reported down.
        retry_timeout: the window after a failure, before the server is down.
        dead_timeout: the window between two tries once the server is down.
    """

    __slots__ = ("dead_timeout", "retry_attempts", "retry_timeout")

    def __init__(self, retry_attempts: int, retry_timeout: float, dead_timeout: float) -> None:
        self.retry_attempts = retry_attempts
        self.retry_timeout = retry_timeout
        self.dead_timeout = dead_timeout

    def window(self, failures: int) -> float:
        """Seconds to skip a server that has failed ``failures`` times in a row."""
        return self.dead_timeout if failures >= self.retry_attempts else self.retry_timeout


class ServerNode:
    """Connections to one server, reused across calls and threads.

    Idle connections wait in a deque: ``pop``/``append`` are atomic in
    CPython, so taking and returning a connection costs no lock. A call that
    fails discards its connection (its reply stream can no longer be trusted)
    and the next call opens and authenticates a new one.
    """

    def __init__(
        self,
        address: Address,
        name: str,
        connect: Callable[[], Connection],
        policy: HealthPolicy,
        *,
        timeout: float | None,
        max_idle: int | None,
        idle_timeout: float,
    ) -> None:
        self.address = address
        #: ``host:port`` as shown in errors and logs.
        self.name = name
        self._connect = connect
        self._policy = policy
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._idle: deque[Connection] = deque()
        self._state_lock = threading.Lock()
        #: monotonic time before which calls fail fast; 0.0 while healthy.
        self.down_until = 0.0
        self.failures = 0
        #: A call is trying the skipped server (the half-open check); the rest fail fast.
        self._trying = False
        #: Whether the server speaks the meta protocol; None until asked.
        self.meta: bool | None = None

    # -- running commands ---------------------------------------------------

    def run(self, op: Callable[..., T], idempotent: bool, *args: Any) -> T:
        """Run ``op(connection, *args)`` on a pooled connection, translating failures.

        A pooled connection that turns out to be closed by the server (a
        restart, an idle timeout at a proxy) is replaced and, for idempotent
        commands only, the command is sent once more on the fresh connection.
        """
        if self.down_until:  # inline test first: this is the hot path
            self._fail_fast_if_skipped()
        try:
            conn = self._idle.pop()
            reused = True
        except IndexError:
            conn = self._connect()
            reused = False
        else:
            if (self._idle_timeout and conn.idle_since + self._idle_timeout < time.monotonic()) or (
                not idempotent and _peer_closed(conn)
            ):
                # A command that must not run twice is never sent on a connection
                # the server has already closed (e.g. restarted): it gets a new one.
                conn.close()
                reused = False
        try:
            result = op(conn, *args)
        except _REFUSED_BEFORE_SENDING as exc:
            # Bad keys, arguments and values are refused before a byte is
            # sent, so the connection is still in step and goes back.
            self._release(conn)
            if isinstance(exc, LayeredCacheError):
                raise
            raise translate(exc, self.name, self._timeout) from exc
        except Exception as exc:
            conn.close()
            if reused and isinstance(exc, STALE_ERRORS):
                # The server closed a pooled connection (a restart, an idle
                # timeout at a proxy); its siblings idled through the same event.
                self.discard_idle()
                if idempotent:
                    return self._run_fresh(op, args)
                # Not an outage, and not safe to repeat: report it as it is.
                raise translate(exc, self.name, self._timeout) from exc
            raise self._failed(exc, first_use=not reused) from exc
        except BaseException:
            conn.close()
            raise
        if self.failures:
            self._recovered()
        self._release(conn)
        return result

    def _run_fresh(
        self, op: Callable[..., T], args: tuple[Any, ...], *, admin_command: str | None = None
    ) -> T:
        conn = self._connect()
        try:
            result = op(conn, *args)
        except Exception as exc:
            conn.close()
            if admin_command is not None and isinstance(exc, MemcacheUnexpectedCloseError):
                raise self._unsupported(admin_command) from exc
            if isinstance(exc, _REFUSED_BEFORE_SENDING):
                if isinstance(exc, LayeredCacheError):
                    raise
                raise translate(exc, self.name, self._timeout) from exc
            raise self._failed(exc, first_use=True) from exc
        except BaseException:
            conn.close()
            raise
        self._release(conn)
        return result

    def run_admin(self, op: Callable[..., T], command: str, *args: Any) -> T:
        """Run an administrative command (``stats``, ``flush_all``) on a new connection.

        Proxies such as twemproxy hang up on these instead of answering. A
        connection that opened fine and then closed without a reply is
        reported as :class:`~layered_cache.errors.UnsupportedCommandError`
        and does not count against the server's health.
        """
        self._fail_fast_if_skipped()
        return self._run_fresh(op, args, admin_command=command)

    def _unsupported(self, command: str) -> UnsupportedCommandError:
        return UnsupportedCommandError(
            f"{self.name} closed the connection instead of answering '{command}': it is "
            f"probably a proxy such as twemproxy (nutcracker), which does not support "
            f"{command}; run it against the memcached servers behind the proxy",
            server=self.name,
            command=command,
        )

    def probe(self, op: Callable[..., T], *args: Any) -> T:
        """Run ``op`` once on a new connection that is closed afterwards.

        For one-off questions such as "do you speak the meta protocol?". A
        server being skipped is not asked; failures count like any other.
        """
        self._fail_fast_if_skipped()
        conn = self._connect()
        try:
            return op(conn, *args)
        except Exception as exc:
            raise self._failed(exc, first_use=True) from exc
        finally:
            conn.close()

    def _release(self, conn: Connection) -> None:
        if conn.sock is None:
            return
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
        self._state_lock = threading.Lock()
        self.discard_idle()

    def discard_idle(self) -> None:
        """Close every idle connection (in-flight ones are closed when they come back broken)."""
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    # -- health -------------------------------------------------------------

    def _failed(self, exc: Exception, *, first_use: bool) -> Exception:
        error = translate(exc, self.name, self._timeout, first_use=first_use)
        # Unreachable or stalled servers are skipped for a while; TLS and
        # authentication refusals are configuration problems, reported each time.
        if isinstance(error, CacheConnectionError) and not isinstance(
            error, TLSError | UpstreamUnavailableError
        ):
            self._record_failure(error)
        return error

    def _record_failure(self, error: Exception) -> None:
        policy = self._policy
        with self._state_lock:
            now = time.monotonic()
            if self.down_until > now and not self._trying:
                # Already being skipped: calls that were in flight when the
                # server stalled report the same failure, not new attempts.
                return
            self._trying = False
            self.failures += 1
            window = policy.window(self.failures)
            self.down_until = now + window
            if self.failures == policy.retry_attempts:
                logger.warning(
                    "memcached server %s failed %d times in a row; it is down, and one "
                    "call every %g s tries it again: %s",
                    self.name,
                    self.failures,
                    window,
                    error,
                )
            elif self.failures < policy.retry_attempts:
                logger.warning(
                    "memcached server %s failed; retrying it after %g s: %s",
                    self.name,
                    window,
                    error,
                )
        self.discard_idle()

    def _recovered(self) -> None:
        with self._state_lock:
            if self.failures:
                logger.warning("memcached server %s is answering again", self.name)
            self.failures = 0
            self.down_until = 0.0
            self._trying = False

    def _fail_fast_if_skipped(self) -> None:
        """Raise while the server is skipped; when its window ends, let one call through."""
        if self.down_until > time.monotonic():
            raise self._unavailable()
        with self._state_lock:
            now = time.monotonic()
            if not self.down_until:
                return  # it recovered meanwhile
            if self.down_until > now:
                raise self._unavailable()  # another call just claimed the try
            # This call tries the server; until it succeeds or fails, the others
            # keep failing fast for one more window (a try that never reports
            # back, e.g. a cancelled one, simply lets the next window try again).
            self._trying = True
            self.down_until = now + self._policy.window(self.failures)

    def _unavailable(self) -> ServerUnavailableError:
        wait = max(0.0, self.down_until - time.monotonic())
        return ServerUnavailableError(
            f"{self.name} is being skipped after {self.failures} failed attempt(s); "
            f"it will be tried again in {wait:.1f} s",
            server=self.name,
        )
