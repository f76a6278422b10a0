"""A listener that logs slow calls, failed calls and server health, never a key."""

from __future__ import annotations

import logging

from layered_cache.errors import ConfigurationError
from layered_cache.observability.events import (
    OperationEvent,
    ServerDownEvent,
    ServerUpEvent,
    WriteFailureEvent,
)

__all__ = ["LoggingListener"]


class LoggingListener:
    """Log exchanges slower than ``slow``, failed exchanges, write failures and server health.

    Keys are never logged, even on a client built with ``include_keys=True``:
    a message says how many keys an exchange carried, not which.

    Args:
        logger: where to log (default: the ``layered_cache.events`` logger).
        slow: seconds above which an exchange is logged at WARNING (None: never).
        errors: log failed exchanges (at WARNING) and the health policy's
            decisions (server down, back up).

    Example:
        >>> from layered_cache import Client
        >>> client = Client(memcached_address, listeners=[LoggingListener(slow=0.05)])
        >>> client.get("anything") is None
        True
        >>> client.close()
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        slow: float | None = 0.1,
        errors: bool = True,
    ) -> None:
        if slow is not None and (
            isinstance(slow, bool) or not isinstance(slow, int | float) or slow < 0
        ):
            raise ConfigurationError(f"slow must be a number of seconds >= 0 or None, not {slow!r}")
        self.logger = logger if logger is not None else logging.getLogger("layered_cache.events")
        self.slow = slow
        self.errors = errors

    def __call__(self, event: object) -> None:
        """Log ``event`` if it is worth a line."""
        log = self.logger.warning
        if type(event) is OperationEvent:
            if event.error is not None:
                if self.errors:
                    log(
                        "memcached %s on %s failed after %.1f ms (%d keys): %s",
                        event.operation,
                        event.server,
                        event.duration * 1000,
                        event.keys,
                        event.error,
                    )
            elif self.slow is not None and event.duration >= self.slow:
                log(
                    "slow memcached %s on %s: %.1f ms (%d keys, %d hits, %d misses)",
                    event.operation,
                    event.server,
                    event.duration * 1000,
                    event.keys,
                    event.hits,
                    event.misses,
                )
        elif not self.errors:
            return
        elif type(event) is WriteFailureEvent:
            log(
                "memcached %s on %s failed and was answered with False (fail-silent); "
                "%d key(s) may keep a stale value: %s",
                event.operation,
                event.server,
                event.keys,
                event.error,
            )
        elif type(event) is ServerDownEvent:
            log(
                "memcached server %s skipped for %g s after %d failure(s)%s: %s",
                event.server,
                event.retry_in,
                event.failures,
                " (down)" if event.down else "",
                event.error,
            )
        elif type(event) is ServerUpEvent:
            self.logger.info(
                "memcached server %s is back after %d failure(s)", event.server, event.failures
            )

    def __repr__(self) -> str:
        return f"LoggingListener(logger={self.logger.name!r}, slow={self.slow!r})"
