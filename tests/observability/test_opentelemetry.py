"""OpenTelemetryListener with the real opentelemetry-sdk: spans and the duration histogram."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from layered_cache.observability.opentelemetry import DURATION_BUCKETS, OpenTelemetryListener
from tests.servers import MemcachedProcess


@pytest.fixture
def otel() -> Any:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    listener = OpenTelemetryListener(tracer_provider=tracer_provider, meter_provider=meter_provider)

    class Otel:
        pass

    found = Otel()
    found.exporter, found.reader, found.listener = exporter, reader, listener  # type: ignore[attr-defined]
    found.tracer = tracer_provider.get_tracer("test")  # type: ignore[attr-defined]
    yield found
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_client_spans_per_the_database_conventions_nested_under_the_callers_span(
    memcached: MemcachedProcess, make: Callable[..., Any], otel: Any
) -> None:
    client = make(memcached.address, listeners=[otel.listener], include_keys=True)
    with otel.tracer.start_as_current_span("request") as request:
        client.set("session:secret", 1)
        client.get_many(["session:secret", "other"])
    spans = {span.name: span for span in otel.exporter.get_finished_spans()}
    assert set(spans) == {"request", "set", "get_many"}
    host, port = memcached.address.rsplit(":", 1)
    for name in ("set", "get_many"):
        span = spans[name]
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.attributes["db.system.name"] == "memcached"
        assert span.attributes["db.operation.name"] == name
        assert span.attributes["server.address"] == host
        assert span.attributes["server.port"] == int(port)
        assert span.end_time > span.start_time
        assert "session:secret" not in repr(dict(span.attributes))
    many = spans["get_many"].attributes
    assert (many["memcached.hits"], many["memcached.misses"]) == (1, 1)
    assert many["db.operation.batch.size"] == 2


def test_a_failure_is_an_error_span_with_error_type(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any], otel: Any
) -> None:
    client = make(fresh_memcached.address, listeners=[otel.listener], ignore_exceptions=True)
    fresh_memcached.stop()
    assert client.get("k") is None
    (span,) = otel.exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "CacheConnectionError"


def test_duration_histogram_in_seconds_with_sub_millisecond_buckets(
    memcached: MemcachedProcess, make: Callable[..., Any], otel: Any
) -> None:
    client = make(memcached.address, listeners=[otel.listener])
    for _ in range(5):
        client.get("k")
    data = otel.reader.get_metrics_data()
    (metric,) = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "db.client.operation.duration"
    ]
    assert metric.unit == "s"
    (point,) = metric.data.data_points
    assert point.count == 5
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert DURATION_BUCKETS[0] < 0.001
    assert point.attributes["db.operation.name"] == "get"
    assert point.attributes["db.system.name"] == "memcached"
