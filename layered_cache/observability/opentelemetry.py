"""OpenTelemetry: a CLIENT span and a duration measurement per exchange (extra ``[otel]``).

Follows the stable database semantic conventions: spans named after the
operation (``get``, ``set_many``), ``db.system.name = "memcached"``,
``db.operation.name``, ``server.address``/``server.port``,
``db.operation.batch.size`` for several keys, and on failure ``error.type``
with an ERROR status; the ``db.client.operation.duration`` histogram (seconds),
with bucket boundaries fit for sub-millisecond calls. Hits and misses are
``memcached.hits``/``memcached.misses``, the key count ``memcached.keys``.
Keys are never recorded (no ``db.query.text``): they can be session ids.

Listeners are called inline, in the caller's thread or task, so each span is
a child of whatever span is current there (a request's span, typically).

Example::

    from layered_cache import Client
    from layered_cache.observability.opentelemetry import OpenTelemetryListener

    client = Client("127.0.0.1:11211", listeners=[OpenTelemetryListener()])
"""

from __future__ import annotations

import time
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from layered_cache import __version__
from layered_cache.observability.buckets import DURATION_BUCKETS
from layered_cache.observability.events import OperationEvent

__all__ = ["DURATION_BUCKETS", "OpenTelemetryListener"]


_SCOPE: Final = "layered_cache"


def _split(server: str) -> tuple[str, int | None]:
    host, _, port = server.rpartition(":")
    if not host:
        return server, None
    return host.strip("[]"), int(port) if port.isdigit() else None


class OpenTelemetryListener:
    """Record each :class:`~layered_cache.observability.OperationEvent` as a span and a measurement.

    Args:
        tracer_provider: where spans go (default: the global tracer provider).
        meter_provider: where the duration histogram goes (default: the
            global meter provider).
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._servers: dict[str, dict[str, Any]] = {}

    def _server(self, server: str) -> dict[str, Any]:
        attributes = self._servers.get(server)
        if attributes is None:
            host, port = _split(server)
            attributes = {"db.system.name": "memcached", "server.address": host}
            if port is not None:
                attributes["server.port"] = port
            self._servers[server] = attributes
        return attributes

    def __call__(self, event: object) -> None:
        """Record ``event`` if it is an exchange (other events are ignored)."""
        if type(event) is not OperationEvent:
            return
        attributes = {**self._server(event.server), "db.operation.name": event.operation}
        if event.error is not None:
            attributes["error.type"] = event.error
        self._duration.record(event.duration, attributes)
        end = time.time_ns()
        span = self._tracer.start_span(
            event.operation,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end - int(event.duration * 1e9),
        )
        if event.keys > 1:
            span.set_attribute("db.operation.batch.size", event.keys)
        span.set_attribute("memcached.keys", event.keys)
        if event.hits or event.misses:
            span.set_attribute("memcached.hits", event.hits)
            span.set_attribute("memcached.misses", event.misses)
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)

    def __repr__(self) -> str:
        return "OpenTelemetryListener()"
