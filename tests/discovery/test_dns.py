"""DNS discovery: names resolved again, with a resolver the test controls, over real memcached."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import DiscoveryError
from layered_cache.discovery import DNSDiscovery
from tests.discovery.conftest import idle, wait_until
from tests.servers import MemcachedProcess


class Zone:
    """A resolver the test edits: ``zone.records[name] = [(ip, port), ...]``."""

    def __init__(self) -> None:
        self.records: dict[str, list[Any]] = {}
        self.asked = 0
        self.threads: set[str] = set()

    def __call__(self, host: str, port: int) -> list[Any]:
        self.asked += 1
        self.threads.add(threading.current_thread().name)
        if host not in self.records:
            raise OSError(f"no such name: {host}")
        return self.records[host]


def test_a_name_resolved_again_follows_the_replaced_node(
    make: Callable[..., Any], three_memcached: list[MemcachedProcess]
) -> None:
    a, b, c = three_memcached
    zone = Zone()
    zone.records["cache.test"] = [(a.host, a.port)]
    client = make("cache.test:11211", discovery=DNSDiscovery(interval=0.2, resolver=zone))
    client.refresh()
    assert client.servers == [a.address]
    assert client.set("k", "on a")
    # The node behind the name is replaced (a new machine at a new address).
    zone.records["cache.test"] = [(b.host, b.port)]
    wait_until(client, lambda: client.servers == [b.address])
    assert client.get("k") is None  # a new, empty node
    # One name, several nodes (a headless service).
    zone.records["cache.test"] = [(b.host, b.port), (c.host, c.port)]
    wait_until(client, lambda: sorted(client.servers) == sorted([b.address, c.address]))


def test_a_resolver_failure_keeps_the_last_good_list(
    make: Callable[..., Any], three_memcached: list[MemcachedProcess]
) -> None:
    a = three_memcached[0]
    zone = Zone()
    zone.records["cache.test"] = [a.host]  # an IP alone keeps the port given
    client = make(f"cache.test:{a.port}", discovery=DNSDiscovery(interval=0.1, resolver=zone))
    client.refresh()
    assert client.servers == [a.address]
    del zone.records["cache.test"]
    asked = zone.asked
    wait_until(client, lambda: zone.asked > asked + 1)
    assert client.servers == [a.address]
    assert "cache.test" in (client.discovery.last_error or "")
    with pytest.raises(DiscoveryError, match=r"could not resolve 'cache\.test'"):
        client.refresh()
    zone.records["cache.test"] = []
    with pytest.raises(DiscoveryError, match="resolved to no address"):
        client.refresh()
    assert client.set("k", 1)
    assert client.get("k") == 1


def test_the_resolver_never_runs_on_the_event_loop(
    three_memcached: list[MemcachedProcess], make: Callable[..., Any], engine: str
) -> None:
    a = three_memcached[0]
    zone = Zone()
    zone.records["cache.test"] = [(a.host, a.port)]
    client = make("cache.test:11211", discovery=DNSDiscovery(interval=0.1, resolver=zone))
    client.refresh()
    idle(client, 0.1)
    assert threading.main_thread().name not in zone.threads or engine == "sync"


def test_addresses_and_sockets_are_kept_as_given(three_memcached: list[MemcachedProcess]) -> None:
    from layered_cache import Client

    a = three_memcached[0]
    zone = Zone()
    with Client(
        [a.address, "/run/layered-cache-none.sock"],
        discovery=DNSDiscovery(interval=0, resolver=zone),
    ) as client:
        assert client.refresh() is False
        assert zone.asked == 0
