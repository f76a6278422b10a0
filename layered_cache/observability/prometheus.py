"""Prometheus: counters and a histogram per operation and server (extra ``[prometheus]``).

Metrics (Grafana-ready names; ``server`` is ``host:port``):

- ``layered_cache_operations_total{operation,server,outcome}``: exchanges,
  ``outcome`` ``ok`` or ``error``;
- ``layered_cache_hits_total{operation,server}`` and
  ``layered_cache_misses_total{operation,server}``: keys found and not found;
- ``layered_cache_operation_duration_seconds{operation,server}``: a histogram
  with sub-millisecond buckets (:data:`~layered_cache.observability.buckets.DURATION_BUCKETS`);
- ``layered_cache_errors_total{operation,server,error}``: failed exchanges by
  exception class;
- ``layered_cache_connections_total{server,outcome}``: connections opened;
- ``layered_cache_server_skips_total{server}``: failures after which the
  health policy skipped a server;
- ``layered_cache_herd_total{kind,server}``: ``get_or_set`` leases won, waits,
  stale values served;
- ``layered_cache_write_failures_total{operation,server}``: writes that
  fail-silent mode answered with False.

Works in prometheus-client's multiprocess mode (gunicorn): set
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, as its documentation
says; the counters and histograms need nothing more.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from layered_cache.observability.buckets import DURATION_BUCKETS
from layered_cache.observability.events import (
    ConnectEvent,
    HerdEvent,
    OperationEvent,
    ServerDownEvent,
    WriteFailureEvent,
)

__all__ = ["DURATION_BUCKETS", "PrometheusListener"]


class _Metrics:
    """The metric objects, registered once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        op = ("operation", "server")
        self.operations = Counter(
            "layered_cache_operations",
            "Exchanges with a memcached server.",
            [*op, "outcome"],
            registry=registry,
        )
        self.hits = Counter("layered_cache_hits", "Keys found.", op, registry=registry)
        self.misses = Counter("layered_cache_misses", "Keys not found.", op, registry=registry)
        self.duration = Histogram(
            "layered_cache_operation_duration_seconds",
            "Duration of exchanges with a memcached server.",
            op,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "layered_cache_errors", "Failed exchanges.", [*op, "error"], registry=registry
        )
        self.connections = Counter(
            "layered_cache_connections",
            "Connections opened.",
            ["server", "outcome"],
            registry=registry,
        )
        self.skips = Counter(
            "layered_cache_server_skips",
            "Failures after which a server was skipped.",
            ["server"],
            registry=registry,
        )
        self.herd = Counter(
            "layered_cache_herd", "get_or_set herd events.", ["kind", "server"], registry=registry
        )
        self.write_failures = Counter(
            "layered_cache_write_failures",
            "Writes fail-silent mode answered with False.",
            op,
            registry=registry,
        )


_registered: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _metrics_for(registry: CollectorRegistry) -> _Metrics:
    with _lock:
        found = _registered.get(registry)
        if found is None:
            found = _registered[registry] = _Metrics(registry)
        return found


class PrometheusListener:
    """Count every event into Prometheus metrics (see the module docstring for the names).

    Args:
        registry: where the metrics are registered (default: prometheus-client's
            global ``REGISTRY``). Several listeners (several clients) on one
            registry share its metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._metrics = _metrics_for(self.registry)

    def __call__(self, event: object) -> None:
        """Count ``event``."""
        m = self._metrics
        kind = type(event)
        if kind is OperationEvent:
            e: Any = event
            labels = (e.operation, e.server)
            m.operations.labels(*labels, "ok" if e.error is None else "error").inc()
            m.duration.labels(*labels).observe(e.duration)
            if e.hits:
                m.hits.labels(*labels).inc(e.hits)
            if e.misses:
                m.misses.labels(*labels).inc(e.misses)
            if e.error is not None:
                m.errors.labels(*labels, e.error).inc()
        elif kind is ConnectEvent:
            c: Any = event
            m.connections.labels(c.server, "ok" if c.error is None else "error").inc()
        elif kind is ServerDownEvent:
            m.skips.labels(event.server).inc()  # type: ignore[attr-defined]
        elif kind is HerdEvent:
            h: Any = event
            m.herd.labels(h.kind, h.server).inc()
        elif kind is WriteFailureEvent:
            w: Any = event
            m.write_failures.labels(w.operation, w.server).inc()

    def __repr__(self) -> str:
        return "PrometheusListener()"
