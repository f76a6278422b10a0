"""PrometheusListener with the real prometheus-client, in-process and in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from layered_cache.observability.prometheus import PrometheusListener
from tests.servers import MemcachedProcess

ROOT = Path(__file__).resolve().parents[2]


def test_counts_operations_hits_misses_and_durations(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    registry = CollectorRegistry()
    client = make(memcached.address, listeners=[PrometheusListener(registry)])
    other = make(memcached.address, listeners=[PrometheusListener(registry)])  # shares metrics
    client.set("a", 1)
    client.get_many(["a", "b", "c"])
    other.get("a")
    server = memcached.address
    value = registry.get_sample_value
    assert (
        value(
            "layered_cache_operations_total",
            {"operation": "set", "server": server, "outcome": "ok"},
        )
        == 1
    )
    assert value("layered_cache_hits_total", {"operation": "get_many", "server": server}) == 1
    assert value("layered_cache_misses_total", {"operation": "get_many", "server": server}) == 2
    assert value("layered_cache_hits_total", {"operation": "get", "server": server}) == 1
    assert (
        value(
            "layered_cache_operation_duration_seconds_count", {"operation": "get", "server": server}
        )
        == 1
    )
    assert value("layered_cache_connections_total", {"server": server, "outcome": "ok"}) == 2


def test_errors_and_write_failures(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    registry = CollectorRegistry()
    client = make(
        fresh_memcached.address, listeners=[PrometheusListener(registry)], ignore_exceptions=True
    )
    fresh_memcached.stop()
    assert client.set("k", 1) is False
    server = fresh_memcached.address
    value = registry.get_sample_value
    labels = {"operation": "set", "server": server}
    assert value("layered_cache_operations_total", {**labels, "outcome": "error"}) == 1
    assert value("layered_cache_errors_total", {**labels, "error": "CacheConnectionError"}) == 1
    assert value("layered_cache_write_failures_total", labels) == 1
    assert value("layered_cache_server_skips_total", {"server": server}) == 1


_WORKER = textwrap.dedent(
    """
    import sys
    from layered_cache import Client
    from layered_cache.observability.prometheus import PrometheusListener

    client = Client(sys.argv[1], listeners=[PrometheusListener()])
    for _ in range(3):
        client.get("missing-key")
    client.close()
    """
)


def test_multiprocess_mode_adds_up_the_workers(memcached: MemcachedProcess, tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _ in range(2):  # two "gunicorn workers"
        subprocess.run(
            [sys.executable, "-c", _WORKER, memcached.address], env=env, check=True, timeout=60
        )
    assert list(tmp_path.glob("*.db"))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    labels = {"operation": "get", "server": memcached.address}
    assert registry.get_sample_value("layered_cache_misses_total", labels) == 6
    assert (
        registry.get_sample_value("layered_cache_operations_total", {**labels, "outcome": "ok"})
        == 6
    )
    assert registry.get_sample_value("layered_cache_operation_duration_seconds_count", labels) == 6
