"""Bounded pools: ``max_connections`` per server and ``pool_timeout``, on both engines.

The asyncio engine's bound with many tasks is in tests/aio/test_async_engine.py;
here the sync client's with many threads, and what both engines share.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheConnectionError, Client, ConfigurationError, PoolTimeoutError
from layered_cache.core.config import DEFAULT_MAX_CONNECTIONS
from tests.faults import FaultProxy
from tests.reliability.conftest import proxy, proxy_factory  # noqa: F401 - fixtures
from tests.servers import MemcachedProcess


def _connections(server: MemcachedProcess) -> int:
    return int(server.stats()["curr_connections"])


class _Watcher:
    """Asks the server for its ``curr_connections`` over and over, on one connection of its own."""

    def __init__(self, server: MemcachedProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.seen: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def count(self) -> int:
        self.sock.sendall(b"stats\r\n")
        reply = b""
        while not reply.endswith(b"END\r\n"):
            reply += self.sock.recv(65536)
        line = next(row for row in reply.split(b"\r\n") if b" curr_connections " in row)
        return int(line.split()[2]) - 1  # (not counting this connection)

    def run(self) -> None:
        while not self.done.is_set():
            self.seen.append(self.count())

    def __enter__(self) -> _Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        self.sock.close()


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; their results (or errors)."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_64_threads_share_at_most_max_connections(fresh_memcached: MemcachedProcess) -> None:
    client = Client(fresh_memcached.address, max_connections=4, pool_timeout=10)
    client.set("k", "v")

    def work(index: int) -> list[Any]:
        values = []
        for n in range(50):
            values.append(client.get("k"))
            if n % 10 == 0:
                client.set(f"t{index}", n)
        return values

    watcher = _Watcher(fresh_memcached)
    before = watcher.count()
    with watcher:
        results = _in_threads(64, work)
    assert results == [["v"] * 50] * 64
    assert len(watcher.seen) > 3
    # (before: the connection the first set opened; the pool holds it as one of its 4)
    assert before == 1
    assert max(watcher.seen) <= 4
    client.close()


def test_the_default_bound_is_the_asyncio_clients(memcached: MemcachedProcess) -> None:
    client = Client(memcached.address)
    assert client.max_connections == DEFAULT_MAX_CONNECTIONS == 16
    assert client.pool_timeout == 2.0
    client.close()


def test_a_call_waits_at_most_pool_timeout_then_names_the_server(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    # (The asyncio engine's waiting is tested with tasks, in tests/aio/test_async_engine.py.)
    client = Client(proxy.address, max_connections=1, pool_timeout=0.2, timeout=5)
    client.set("k", "v")
    proxy.delay(1.0)
    slow = threading.Thread(target=lambda: client.get("k"))
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(PoolTimeoutError, match="max_connections") as caught:
        client.get("k")
    took = time.monotonic() - started
    assert 0.15 < took < 0.6
    assert caught.value.server == proxy.address
    assert proxy.address in str(caught.value)
    slow.join(timeout=5)
    proxy.restore()
    # Not a server failure: the server is not skipped.
    assert client.get("k") == "v"
    client.close()


def test_a_pool_timeout_is_absorbed_in_fail_silent_mode(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    client = Client(
        proxy.address, max_connections=1, pool_timeout=0.1, timeout=5, ignore_exceptions=True
    )
    client.set("k", "v")
    proxy.delay(0.6)
    slow = threading.Thread(target=lambda: client.get("k"))
    slow.start()
    time.sleep(0.1)
    assert client.get("k", "fallback") == "fallback"
    assert client.ignored_errors == 1
    slow.join(timeout=5)
    proxy.restore()
    assert client.get("k") == "v"
    client.close()


def test_waiting_threads_get_connections_as_they_come_back(
    fresh_memcached: MemcachedProcess,
) -> None:
    client = Client(fresh_memcached.address, max_connections=2, pool_timeout=10)
    client.set_many({f"k{i}": i for i in range(32)})
    results = _in_threads(32, lambda i: [client.get(f"k{i}") for _ in range(20)])
    assert results == [[i] * 20 for i in range(32)]
    assert len(client._nodes[next(iter(client._nodes))].pool.idle) <= 2
    client.close()


def test_a_failed_connection_frees_its_slot(memcached_factory: Callable[..., Any]) -> None:
    server = memcached_factory(name="pool-slot")
    client = Client(server.address, max_connections=1, pool_timeout=0.5, retry_timeout=0)
    assert client.set("k", "v")
    server.kill()
    for _ in range(3):  # each failure gives its slot back: no PoolTimeoutError
        with pytest.raises(CacheConnectionError) as caught:
            client.get("k")
        assert not isinstance(caught.value, PoolTimeoutError)
    client.close()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_connections", 0, "max_connections must be a number >= 1"),
        ("max_connections", "many", "max_connections must be a number >= 1"),
        ("pool_timeout", 0, "pool_timeout must be a positive number of seconds or None"),
        ("pool_timeout", -1, "pool_timeout must be a positive number of seconds or None"),
    ],
)
def test_bad_pool_options_are_refused(
    make: Callable[..., Any], name: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make("127.0.0.1:11211", **{name: value})
