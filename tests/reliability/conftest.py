"""Fixtures for the fault-injection tests: proxies and clients that always clean up."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import Client
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    """``factory(upstream, **FaultProxy kwargs)`` -> a started proxy, stopped after the test."""
    proxies: list[FaultProxy] = []

    def factory(upstream: Any, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **kwargs)
        proxies.append(proxy)
        return proxy.start()

    try:
        yield factory
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def proxy(memcached: MemcachedProcess, proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    """A transparent proxy in front of the session's (flushed) memcached."""
    return proxy_factory(memcached, name="proxy")


@pytest.fixture
def client_factory() -> Iterator[Callable[..., Client]]:
    """``factory(servers, **Client kwargs)`` -> a Client closed after the test."""
    clients: list[Client] = []

    def factory(servers: Any, **kwargs: Any) -> Client:
        client = Client(servers, **kwargs)
        clients.append(client)
        return client

    try:
        yield factory
    finally:
        for client in clients:
            client.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave ``soak`` tests out of a plain run.

    ``-m soak`` (any ``-m`` expression naming soak) or a ``SOAK_SECONDS`` environment
    variable selects them.
    """
    if "soak" in (config.getoption("markexpr") or "") or os.environ.get("SOAK_SECONDS"):
        return
    soak = [item for item in items if item.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]
