"""Server health and fail-silent mode: the policies every engine applies, written once.

:class:`ServerHealth` is one server's record (failures in a row, when it may
be tried again); engines ask it before each exchange and tell it how the
exchange went. :class:`FailSilent` decides which failures fail-silent mode
turns into misses. Neither does I/O; both are safe to share between threads
and event loops (their critical sections never await).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from layered_cache.core.observer import Observer
from layered_cache.core.translate import counts_against_health, fail_silent_absorbs
from layered_cache.errors import CacheConnectionError, ServerUnavailableError
from layered_cache.observability.events import ServerDownEvent, ServerUpEvent

__all__ = ["FailSilent", "HealthPolicy", "ServerHealth"]

logger = logging.getLogger("layered_cache")


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


class ServerHealth:
    """One server's health record, consulted before and updated after every exchange."""

    __slots__ = (
        "_lock",
        "_observer",
        "_policy",
        "_trying",
        "down_until",
        "failures",
        "name",
        "on_failure",
    )

    def __init__(self, name: str, policy: HealthPolicy, observer: Observer | None = None) -> None:
        #: ``host:port``, for messages.
        self.name = name
        self._policy = policy
        self._observer = observer
        self._lock = threading.Lock()
        #: monotonic time before which calls fail fast; 0.0 while healthy.
        self.down_until = 0.0
        self.failures = 0
        #: A call is trying the skipped server (the half-open check); the rest fail fast.
        self._trying = False
        #: Called after a failure that counted (discovery looks for a replacement node).
        self.on_failure: Callable[[], None] | None = None

    @property
    def policy(self) -> HealthPolicy:
        """The timing this record follows."""
        return self._policy

    def check(self) -> None:
        """Raise while the server is skipped; when its window ends, let one call through.

        Engines call this only when :attr:`down_until` is set (a float test
        on the hot path).

        Raises:
            ServerUnavailableError: the server is being skipped.
        """
        if self.down_until > time.monotonic():
            raise self.unavailable()
        with self._lock:
            now = time.monotonic()
            if not self.down_until:
                return  # it recovered meanwhile
            if self.down_until > now:
                raise self.unavailable()  # another call just claimed the try
            # This call tries the server; until it succeeds or fails, the others
            # keep failing fast for one more window (a try that never reports
            # back, e.g. a cancelled one, simply lets the next window try again).
            self._trying = True
            self.down_until = now + self._policy.window(self.failures)

    def failed(self, error: Exception) -> bool:
        """Record that an exchange failed with ``error`` (already translated).

        Returns:
            True when the failure counted: the engine should then drop the
            server's idle connections, which went through the same outage.
        """
        if not counts_against_health(error):
            return False
        policy = self._policy
        with self._lock:
            now = time.monotonic()
            if self.down_until > now and not self._trying:
                # Already being skipped: calls that were in flight when the
                # server stalled report the same failure, not new attempts.
                return True
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
            failures = self.failures
        if self._observer is not None:
            self._observer.emit(
                ServerDownEvent(
                    self.name,
                    failures,
                    down=failures >= policy.retry_attempts,
                    retry_in=window,
                    error=type(error).__name__,
                )
            )
        if self.on_failure is not None:
            self.on_failure()
        return True

    def recovered(self) -> None:
        """Record a successful exchange after failures (engines test ``failures`` first)."""
        with self._lock:
            failures = self.failures
            if failures:
                logger.warning("memcached server %s is answering again", self.name)
            self.failures = 0
            self.down_until = 0.0
            self._trying = False
        if failures and self._observer is not None:
            self._observer.emit(ServerUpEvent(self.name, failures))

    def unavailable(self) -> ServerUnavailableError:
        """The error for a call refused because the server is being skipped."""
        wait = max(0.0, self.down_until - time.monotonic())
        return ServerUnavailableError(
            f"{self.name} is being skipped after {self.failures} failed attempt(s); "
            f"it will be tried again in {wait:.1f} s",
            server=self.name,
        )

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()


class FailSilent:
    """Fail-silent mode: which failures become misses, and how many did.

    Outages (unreachable, timed out, dropped, garbled, skipped servers, and
    servers a proxy cannot reach) are absorbed; TLS refusals are not: they are
    mistakes to fix, not outages to ride out. Bad keys, values and
    credentials never reach this decision (they are not server failures).
    """

    __slots__ = ("_count", "_lock", "enabled")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._count = 0
        self._lock = threading.Lock()

    def absorb(self, error: CacheConnectionError) -> bool:
        """Count and absorb ``error`` in fail-silent mode; False means: raise it."""
        if not self.enabled or not fail_silent_absorbs(error):
            return False
        with self._lock:
            self._count += 1
        return True

    @property
    def count(self) -> int:
        """How many calls (or servers of a batch) have been absorbed so far."""
        return self._count

    def after_fork(self) -> None:
        """In a forked child: a fresh lock."""
        self._lock = threading.Lock()
