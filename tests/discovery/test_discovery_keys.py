"""Key policy and namespaces survive discovery swapping the nodes under a client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from layered_cache.discovery import DNSDiscovery
from tests.discovery.conftest import wait_until
from tests.discovery.test_dns import Zone
from tests.servers import MemcachedProcess


def test_a_namespace_view_follows_the_new_nodes(
    make: Callable[..., Any], three_memcached: list[MemcachedProcess]
) -> None:
    a, b, _ = three_memcached
    zone = Zone()
    zone.records["cache.test"] = [(a.host, a.port)]
    client = make(
        "cache.test:11211",
        discovery=DNSDiscovery(interval=0.2, resolver=zone),
        key_policy="hash",
    )
    client.refresh()
    # Made before the swap, used after it; its own name, since a generation this process
    # remembers from another test would outlive the fixture's flush.
    space = client.namespace(f"user:{time.monotonic_ns()}")
    assert space.set("green tea", "on a")
    assert client.set("long key " * 40, "on a")
    zone.records["cache.test"] = [(b.host, b.port)]
    wait_until(client, lambda: client.servers == [b.address])
    assert space.get("green tea") is None  # a new, empty node: no generation there yet
    assert space.set("green tea", "on b")
    assert space.get("green tea") == "on b"
    assert client.set("long key " * 40, "on b")  # the hash policy still applies
    assert int(b.stats()["curr_items"]) == 3  # the value, its generation, the hashed key
