"""What only the asyncio engine has: event loops, bounded pools, cancellation, concurrency.

Everything the two engines share (every method, strategies, failures, fail-silent mode,
garbled replies) runs on both engines in the other test modules; these are the
asyncio-specific behaviours, against real memcached and the fault-injecting proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import (
    AsyncClient,
    CacheTimeoutError,
    Client,
    ConfigurationError,
    PoolTimeoutError,
    ServerUnavailableError,
)
from layered_cache.aio.client import DEFAULT_MAX_CONNECTIONS
from layered_cache.transport import TCPTransport
from tests.faults import FaultProxy
from tests.reliability.conftest import proxy, proxy_factory  # noqa: F401 - fixtures
from tests.servers import MemcachedProcess


def _connections(server: MemcachedProcess) -> int:
    return int(server.stats()["curr_connections"])


def test_a_client_serves_several_event_loops_without_sharing_connections(
    memcached: MemcachedProcess,
) -> None:
    client = AsyncClient(memcached.address)

    node = next(iter(client._nodes.values()))
    seen: list[Any] = []

    async def use(value: str) -> Any:
        await client.set("k", value)
        pool = node.pool()
        seen.append(list(pool.idle))
        assert all(conn.loop is asyncio.get_running_loop() for conn in pool.idle)
        return await client.get("k")

    assert asyncio.run(use("one")) == "one"
    # asyncio.run shut the loop down, and its idle connections with it.
    assert seen[0]
    assert all(conn._transport.is_closing() for conn in seen[0])
    assert asyncio.run(use("two")) == "two"
    assert not set(map(id, seen[0])) & set(map(id, seen[1]))


def test_connections_are_bounded_however_many_tasks(fresh_memcached: MemcachedProcess) -> None:
    before = _connections(fresh_memcached)

    async def main() -> tuple[list[Any], int]:
        async with AsyncClient(fresh_memcached.address, max_connections=4) as client:
            await client.set("k", "v")
            results = await asyncio.gather(*(client.get("k") for _ in range(500)))
            return results, _connections(fresh_memcached)

    results, during = asyncio.run(main())
    assert results == ["v"] * 500
    assert during - before <= 4
    assert DEFAULT_MAX_CONNECTIONS == 16


def test_a_call_waits_at_most_pool_timeout_for_a_free_connection(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        client = AsyncClient(proxy.address, max_connections=1, pool_timeout=0.2, timeout=5)
        await client.set("k", "v")
        proxy.delay(1.0)
        slow = asyncio.create_task(client.get("k"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError, match="max_connections") as caught:
            await client.get("k")
        assert 0.15 < time.monotonic() - started < 0.6
        assert caught.value.server == proxy.address
        assert await slow == "v"
        proxy.restore()
        # Not a server failure: the server is not skipped.
        assert await client.get("k") == "v"
        await client.aclose()

    asyncio.run(main())


def test_a_cancelled_call_never_leaves_its_reply_for_the_next(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        client = AsyncClient(proxy.address, max_connections=1, timeout=5)
        await client.set_many({"a": "value-of-a", "b": "value-of-b"})
        proxy.delay(0.3)
        task = asyncio.create_task(client.get("a"))
        await asyncio.sleep(0.1)  # the request is out, its reply is held by the proxy
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proxy.restore()
        for _ in range(3):  # the late reply to "a" is never read as the answer to "b"
            assert await client.get("b") == "value-of-b"
        await client.aclose()

    asyncio.run(main())


def test_timeout_bounds_the_whole_exchange_and_the_late_reply_is_dropped(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        client = AsyncClient(proxy.address, timeout=0.2, retry_timeout=0)
        await client.set_many({"a": "A", "b": "B"})
        proxy.delay(0.6)
        started = time.monotonic()
        with pytest.raises(CacheTimeoutError, match=r"did not answer within 0\.2 s"):
            await client.get("a")
        assert time.monotonic() - started < 0.5
        proxy.restore()
        assert await client.get("b") == "B"
        await client.aclose()

    asyncio.run(main())


def test_get_many_asks_every_server_at_once(
    three_memcached: list[MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],  # noqa: F811
) -> None:
    proxies = [proxy_factory(server) for server in three_memcached]
    addresses = [p.address for p in proxies]
    keys = [f"k{i}" for i in range(60)]

    async def main() -> float:
        async with AsyncClient(addresses, timeout=5) as client:
            assert {client.server_for(key) for key in keys} == set(addresses)
            assert await client.set_many(dict.fromkeys(keys, 1)) == []
            for p in proxies:
                p.delay(0.3)
            started = time.monotonic()
            assert await client.get_many(keys) == dict.fromkeys(keys, 1)
            return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 0.75  # three servers, 0.3 s each: in parallel, not one after another


def test_same_placement_and_bytes_as_the_sync_client(
    three_memcached: list[MemcachedProcess],
) -> None:
    addresses = [server.address for server in three_memcached]
    sync = Client(addresses)
    keys = [f"user:{i}" for i in range(200)]

    async def main() -> dict[str, Any]:
        async with AsyncClient(addresses) as client:
            assert [client.server_for(k) for k in keys] == [sync.server_for(k) for k in keys]
            await client.set_many({k: {"n": i} for i, k in enumerate(keys[:100])})
            sync.set_many({k: {"n": i} for i, k in enumerate(keys[100:], start=100)})
            return await client.get_many(keys)

    assert asyncio.run(main()) == {k: {"n": i} for i, k in enumerate(keys)}
    assert sync.get_many(keys[:100]) == {k: {"n": i} for i, k in enumerate(keys[:100])}
    sync.close()


def test_herd_of_tasks_computes_once_with_a_coroutine_default(
    memcached: MemcachedProcess,
) -> None:
    computed = 0

    async def expensive() -> str:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.1)
        return "fresh"

    async def main() -> list[Any]:
        async with AsyncClient(memcached.address) as client:
            await client.delete("herd")
            return await asyncio.gather(*(client.get_or_set("herd", expensive) for _ in range(32)))

    assert asyncio.run(main()) == ["fresh"] * 32
    assert computed == 1


def test_counters_created_on_miss_are_atomic_under_concurrency(
    memcached: MemcachedProcess,
) -> None:
    async def main() -> Any:
        async with AsyncClient(memcached.address) as client:
            await client.delete("hits")
            await asyncio.gather(*(client.incr("hits", 1, initial=1) for _ in range(300)))
            return await client.get("hits")

    assert asyncio.run(main()) == 300


def test_a_restarted_server_is_used_again_within_a_second(
    fresh_memcached: MemcachedProcess,
) -> None:
    async def main() -> None:
        client = AsyncClient(fresh_memcached.address, timeout=0.5)
        assert await client.set("k", "v")
        fresh_memcached.kill()
        with pytest.raises(Exception):  # noqa: B017, PT011 - refused, then skipped
            await client.get("k")
        with pytest.raises(ServerUnavailableError):
            await client.get("k")
        fresh_memcached.start()
        back = time.monotonic()
        while True:
            try:
                assert await client.set("k", "again")
                break
            except ServerUnavailableError:
                await asyncio.sleep(0.02)
        assert time.monotonic() - back < 1.3
        assert await client.get("k") == "again"
        await client.aclose()

    asyncio.run(main())


def test_a_transport_without_a_plan_is_refused() -> None:
    class SocketOnly:
        def connect(self, address: Any, *, connect_timeout: Any, timeout: Any) -> Any:
            return TCPTransport().connect(address, connect_timeout=connect_timeout, timeout=timeout)

    with pytest.raises(ConfigurationError, match="needs a transport with plan"):
        AsyncClient("127.0.0.1:11211", transport=SocketOnly())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_connections must be a number >= 1"):
        AsyncClient("127.0.0.1:11211", max_connections=0)
    with pytest.raises(ConfigurationError, match="pool_timeout"):
        AsyncClient("127.0.0.1:11211", pool_timeout=-1)
