"""What the clients report: events, listeners, and adapters for metrics and tracing.

Give a client ``listeners=[...]`` (callables) and each is called with an
event (:mod:`layered_cache.observability.events`) for every exchange with a
server and every connection, health and herd happening. Adapters, each an
optional extra:

- :class:`~layered_cache.observability.LoggingListener` (no extra):
  slow and failed calls on the ``layered_cache.events`` logger;
- :mod:`layered_cache.observability.opentelemetry` (``[otel]``): spans and the
  ``db.client.operation.duration`` histogram;
- :mod:`layered_cache.observability.prometheus` (``[prometheus]``): counters
  and a histogram per operation and server.

See :doc:`/guides/observability`.
"""

from layered_cache.observability import events
from layered_cache.observability.events import *  # noqa: F403 - the events are public here too
from layered_cache.observability.logging import LoggingListener

__all__ = ["LoggingListener"]
__all__ += events.__all__
__all__.sort()
