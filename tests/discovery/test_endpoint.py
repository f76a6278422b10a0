"""ElastiCache / Memorystore discovery against a configuration endpoint over real memcached nodes.

Both engines: the client follows node additions and removals within the
interval, keeps the connections (and the keys) of the nodes that stay, closes
those of the nodes that leave, keeps the last good list while the endpoint is
down, and looks again soon after a node fails.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import Client, DiscoveryError
from layered_cache.discovery import ElastiCacheDiscovery, MemorystoreDiscovery
from layered_cache.protocol.cluster import LEGACY_CLUSTER_KEY
from layered_cache.transport import TLSTransport
from tests.cluster_endpoint import ConfigEndpoint, cluster_reply
from tests.discovery.conftest import idle, wait_until
from tests.servers import MemcachedProcess, TLSMaterial

INTERVAL = 0.2


def names(processes: list[MemcachedProcess]) -> list[str]:
    return [process.address for process in processes]


def following(
    make: Callable[..., Any], endpoint: ConfigEndpoint, count: int, interval: float = INTERVAL
) -> Any:
    """A client of ``endpoint`` that follows it, once it uses the ``count`` nodes listed.

    (A first call: the asyncio engine starts its loop's discovery task on a new connection.)
    """
    client = make(endpoint.address, discovery=ElastiCacheDiscovery(interval=interval))
    client.get("warm-up")
    wait_until(client, lambda: len(client.servers) == count)
    return client


def test_follows_added_and_removed_nodes(
    make: Callable[..., Any], endpoint: ConfigEndpoint, three_memcached: list[MemcachedProcess]
) -> None:
    a, b, c = three_memcached
    client = following(make, endpoint, 2)
    assert sorted(client.servers) == sorted(names([a, b]))
    keys = [f"key-{i}" for i in range(300)]
    for key in keys:
        assert client.set(key, key)
    before = {key: client.server_for(key) for key in keys}
    connections_b = int(b.stats()["total_connections"])

    endpoint.add_node(c)
    took = wait_until(client, lambda: len(client.servers) == 3)
    assert took < INTERVAL + 1.5
    after = {key: client.server_for(key) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    # Rendezvous hashing: only keys that now belong to the new node move.
    assert all(after[key] == c.address for key in moved)
    assert 0.2 < len(moved) / len(keys) < 0.47
    # No write to an unchanged node is lost, and its connections were kept.
    for key in keys:
        if key not in moved:
            assert client.get(key) == key
    # (each stats() of the harness is one connection of its own)
    assert int(b.stats()["total_connections"]) == connections_b + 1

    for key in moved:  # the application fills the new node as it misses
        assert client.get(key) is None
        assert client.set(key, key)

    endpoint.remove_node(a)
    wait_until(client, lambda: sorted(client.servers) == sorted(names([b, c])))
    for key in keys:
        if after[key] != a.address:
            assert client.get(key) == key
        assert client.server_for(key) != a.address
    status = client.discovery
    assert status.version == endpoint.version
    assert status.source == endpoint.address
    assert status.last_error is None


def test_connections_to_removed_nodes_are_closed(
    make: Callable[..., Any], endpoint: ConfigEndpoint, three_memcached: list[MemcachedProcess]
) -> None:
    a, b, _ = three_memcached
    client = following(make, endpoint, 2)
    for i in range(50):
        client.set(f"k{i}", i)
    idle_on_a = int(a.stats()["curr_connections"])
    endpoint.remove_node(a)
    wait_until(client, lambda: client.servers == [b.address])
    idle(client, 0.2)  # the server notices the closed sockets
    assert int(a.stats()["curr_connections"]) < idle_on_a


def test_endpoint_down_keeps_the_last_good_list(
    make: Callable[..., Any],
    endpoint: ConfigEndpoint,
    three_memcached: list[MemcachedProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b, c = three_memcached
    client = following(make, endpoint, 2)
    endpoint.go_down()
    with caplog.at_level(logging.WARNING, logger="layered_cache"):
        wait_until(client, lambda: client.discovery.last_error is not None)
        idle(client, INTERVAL * 3)
    assert sorted(client.servers) == sorted(names([a, b]))
    assert client.set("still", "working")
    assert client.get("still") == "working"
    warnings = [r for r in caplog.records if "discovery failed" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per attempt
    with pytest.raises(DiscoveryError, match=endpoint.address):
        client.refresh()
    endpoint.come_back()
    endpoint.add_node(c)
    wait_until(client, lambda: len(client.servers) == 3)
    assert client.discovery.last_error is None


def test_a_failed_node_asks_for_a_lookup_soon(
    make: Callable[..., Any], memcached_factory: Callable[..., MemcachedProcess]
) -> None:
    doomed, stays, replacement = (memcached_factory(name=f"node-{i}") for i in range(3))
    with ConfigEndpoint([doomed, stays]) as endpoint:
        client = following(make, endpoint, 2, interval=60)
        key = next(f"k{i}" for i in range(1000) if client.server_for(f"k{i}") == doomed.address)
        # The node is replaced: the endpoint lists its replacement, the old one dies.
        endpoint.set_nodes([stays, replacement])
        doomed.kill()
        with pytest.raises(Exception):  # noqa: B017, PT011 - the node is gone: any outage error
            client.set(key, 1)
        wait_until(client, lambda: replacement.address in client.servers, timeout=3.0)
        assert client.server_for(key) in (stays.address, replacement.address)
        assert client.set(key, 2)
        assert client.get(key) == 2


def test_the_sync_constructor_looks_up_once(endpoint: ConfigEndpoint) -> None:
    with Client(endpoint.address, discovery=ElastiCacheDiscovery(interval=30)) as client:
        assert len(client.servers) == 2  # before any call: the first write is placed right
    endpoint.go_down()
    with Client(endpoint.address, discovery=ElastiCacheDiscovery(interval=30)) as client:
        assert client.servers == [endpoint.address]  # the endpoint itself, meanwhile
        assert client.discovery.last_error is not None


def test_explicit_refresh(make: Callable[..., Any], endpoint: ConfigEndpoint) -> None:
    client = make(endpoint.address, discovery=ElastiCacheDiscovery(interval=0))
    assert client.servers == [endpoint.address]  # the endpoint itself, until looked up
    assert client.refresh() is True
    assert len(client.servers) == 2
    assert client.refresh() is False
    requests = endpoint.config_requests
    idle(client, INTERVAL * 2)
    assert endpoint.config_requests == requests  # interval 0: no background lookups


def test_memorystore_lists_ip_addresses(
    make: Callable[..., Any], three_memcached: list[MemcachedProcess]
) -> None:
    nodes = [("10.0.0.9", node.host, node.port) for node in three_memcached]
    with ConfigEndpoint([(node[1], node[1], node[2]) for node in nodes]) as endpoint:
        client = make(endpoint.address, discovery=MemorystoreDiscovery(interval=0))
        client.refresh()
        assert sorted(client.servers) == sorted(names(three_memcached))


def test_hostname_or_ip(make: Callable[..., Any], three_memcached: list[MemcachedProcess]) -> None:
    a = three_memcached[0]
    with ConfigEndpoint([("localhost", a.host, a.port)]) as endpoint:
        by_name = make(endpoint.address, discovery=ElastiCacheDiscovery(interval=0))
        by_name.refresh()
        assert by_name.servers == [f"localhost:{a.port}"]
        by_ip = make(endpoint.address, discovery=ElastiCacheDiscovery(interval=0, use="ip"))
        by_ip.refresh()
        assert by_ip.servers == [a.address]
        assert by_ip.set("k", 1)
        assert by_ip.get("k") == 1


def test_legacy_engines_keep_the_configuration_under_a_key(
    make: Callable[..., Any], memcached: MemcachedProcess, three_memcached: list[MemcachedProcess]
) -> None:
    # memcached itself answers ERROR to "config get cluster", as ElastiCache before
    # 1.4.14 did; those engines keep the same body under AmazonElastiCache:cluster.
    reply = cluster_reply(7, [(n.host, n.host, n.port) for n in three_memcached[:2]])
    body = reply.split(b"\r\n", 1)[1].rsplit(b"\r\nEND\r\n", 1)[0]
    store = b"set %s 0 0 %d\r\n%s\r\n" % (LEGACY_CLUSTER_KEY, len(body), body)
    assert memcached.command(store) == b"STORED\r\n"
    client = make(memcached.address, discovery=ElastiCacheDiscovery(interval=0))
    assert client.refresh()
    assert client.discovery.version == 7
    assert sorted(client.servers) == sorted(names(three_memcached[:2]))
    no_legacy = make(memcached.address, discovery=ElastiCacheDiscovery(interval=0, legacy=False))
    with pytest.raises(DiscoveryError, match="ERROR"):
        no_legacy.refresh()


def test_an_empty_node_list_is_refused(make: Callable[..., Any], endpoint: ConfigEndpoint) -> None:
    client = make(endpoint.address, discovery=ElastiCacheDiscovery(interval=0))
    client.refresh()
    endpoint.set_nodes([])
    with pytest.raises(DiscoveryError, match="lists no node"):
        client.refresh()
    assert len(client.servers) == 2


def test_close_stops_the_thread_and_the_next_connection_restarts_it(
    endpoint: ConfigEndpoint,
) -> None:
    client = Client(endpoint.address, discovery=ElastiCacheDiscovery(interval=INTERVAL))
    wait_until(client, lambda: len(client.servers) == 2)
    client.close()
    requests = endpoint.config_requests
    idle(client, INTERVAL * 3)
    assert endpoint.config_requests <= requests + 1  # at most the lookup already running
    client.set("again", 1)  # a new connection
    wait_until(client, lambda: endpoint.config_requests > requests + 1)
    client.close()


def test_in_transit_encryption(
    make: Callable[..., Any], tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    # ElastiCache with TLS: the configuration endpoint and every node speak TLS, and
    # certificates name the hosts (here "localhost"), so nodes are reached by hostname.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_material.server_cert_file, tls_material.server_key_file)
    node = ("localhost", tls_memcached.host, tls_memcached.port)
    with ConfigEndpoint([node], ssl_context=context) as endpoint:
        client = make(
            f"localhost:{endpoint.port}",
            transport=TLSTransport(ca_file=tls_material.ca_file),
            discovery=ElastiCacheDiscovery(interval=0),
        )
        assert client.refresh()
        assert client.servers == [f"localhost:{tls_memcached.port}"]
        assert client.set("secret", "over TLS")
        assert client.get("secret") == "over TLS"
        untrusting = make(
            f"localhost:{endpoint.port}",
            transport=TLSTransport(ca_file=tls_material.untrusted_ca_file),
            discovery=ElastiCacheDiscovery(interval=0),
        )
        with pytest.raises(DiscoveryError, match="certificate"):
            untrusting.refresh()


# The harness runs server threads; Python 3.12+ warns that fork() copies them.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_runs_its_own_refresher(endpoint: ConfigEndpoint) -> None:
    client = Client(endpoint.address, discovery=ElastiCacheDiscovery(interval=INTERVAL))
    wait_until(client, lambda: len(client.servers) == 2)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            before = endpoint.config_requests
            client.set("from-child", 1)  # a new connection: the child's refresher starts
            deadline = time.monotonic() + 5
            while endpoint.config_requests <= before + 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            threads = [t.name for t in threading.enumerate()]
            code = 0 if "layered_cache-discovery" in threads and client.get("from-child") else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"\x00"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
        client.close()
