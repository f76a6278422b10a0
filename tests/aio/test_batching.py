"""The asyncio engine's batches: calls of one loop turn pipelined, single-key gets autobatched.

Against real memcached (and the fault-injecting proxy, a fake server for an error line):
what a batch merges and what it never merges, a cancelled waiter inside a batch, a
batch spread over several servers, and failures reaching every waiter of a batch.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import AsyncClient, CacheTimeoutError, ServerResponseError
from layered_cache.aio.batch import MAX_MERGED_KEYS
from layered_cache.errors import CacheConnectionError
from tests.fake_servers import FakeServer
from tests.faults import FaultProxy
from tests.reliability.conftest import proxy, proxy_factory  # noqa: F401 - fixtures
from tests.servers import MemcachedProcess


def _stat(server: MemcachedProcess, name: str) -> int:
    return int(server.stats()[name])


def test_gets_of_one_turn_become_one_multi_get(fresh_memcached: MemcachedProcess) -> None:
    keys = [f"k{i}" for i in range(250)]

    async def main() -> tuple[list[Any], int, int]:
        async with AsyncClient(fresh_memcached.address) as client:
            await client.set_many({key: key.upper() for key in keys[::2]})
            before = _stat(fresh_memcached, "cmd_get")
            # Every key asked twice, and one of them by 50 tasks: each key goes out once.
            calls = [client.get(key, "missing") for key in keys + keys] + [
                client.get("k0") for _ in range(50)
            ]
            results = await asyncio.gather(*calls)
            return results, before, _stat(fresh_memcached, "cmd_get")

    results, before, after = asyncio.run(main())
    expected = [key.upper() if i % 2 == 0 else "missing" for i, key in enumerate(keys)]
    assert results == expected + expected + ["K0"] * 50
    # memcached counts keys fetched: each distinct key once (in MAX_MERGED_KEYS chunks),
    # but for the first call, sent at once (nothing was in flight).
    assert after - before == len(keys) + 1
    assert len(keys) > 2 * MAX_MERGED_KEYS


def test_identical_reads_are_sent_once_and_writes_never_merged(
    fresh_memcached: MemcachedProcess,
) -> None:
    many = [f"m{i}" for i in range(10)]

    async def main() -> tuple[list[Any], list[Any], int, int]:
        async with AsyncClient(fresh_memcached.address) as client:
            await client.set_many(dict.fromkeys(many, 1))
            gets = _stat(fresh_memcached, "cmd_get")
            found = await asyncio.gather(*(client.get_many(many) for _ in range(20)))
            gets = _stat(fresh_memcached, "cmd_get") - gets
            await client.delete("n")
            # 20 identical adds in one turn: one is stored, 19 are refused, as when
            # they are sent one by one; 20 increments count 20.
            added = await asyncio.gather(*(client.add("n", 0) for _ in range(20)))
            await asyncio.gather(*(client.incr("n", 1) for _ in range(20)))
            return found, added, gets, await client.get("n")

    found, added, gets, counted = asyncio.run(main())
    assert found == [dict.fromkeys(many, 1)] * 20
    # The first one went out at once (nothing was in flight), the 19 others as one.
    assert gets == 2 * len(many)
    assert sorted(added) == [False] * 19 + [True]
    assert counted == 20


def test_a_cancelled_waiter_leaves_the_rest_of_its_batch_and_the_connection_in_step(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        client = AsyncClient(proxy.address, max_connections=1, timeout=5)
        await client.set_many({f"k{i}": f"value-{i}" for i in range(8)})
        await client.set("other", "value-of-other")
        proxy.delay(0.3)
        tasks = [asyncio.create_task(client.get(f"k{i}")) for i in range(8)]
        await asyncio.sleep(0.1)  # the batch is out, its reply held by the proxy
        tasks[3].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 3] == [
            f"value-{i}" for i in range(8) if i != 3
        ]
        proxy.restore()
        # One connection, still in step: every later call reads its own reply.
        for _ in range(3):
            assert await client.get("other") == "value-of-other"
            assert await client.get_many(["k3", "other"]) == {
                "k3": "value-3",
                "other": "value-of-other",
            }
        await client.aclose()

    asyncio.run(main())


def test_a_call_cancelled_before_its_batch_is_sent_is_never_sent(
    fresh_memcached: MemcachedProcess,
) -> None:
    async def main() -> Any:
        async with AsyncClient(fresh_memcached.address, max_connections=1) as client:
            await client.set("n", "0")
            slow = asyncio.create_task(client.get_many([f"x{i}" for i in range(50)]))
            await asyncio.sleep(0)  # its batch holds the only connection
            doomed = asyncio.create_task(client.incr("n", 5))
            await asyncio.sleep(0)  # queued behind it, not yet sent
            doomed.cancel()
            await slow
            with pytest.raises(asyncio.CancelledError):
                await doomed
            return await client.get("n")

    assert asyncio.run(main()) == "0"


def test_one_turn_over_several_servers_asks_each_its_own_keys(
    three_memcached: list[MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],  # noqa: F811
) -> None:
    proxies = [proxy_factory(server) for server in three_memcached]
    addresses = [p.address for p in proxies]
    keys = [f"user:{i}" for i in range(90)]

    async def main() -> tuple[list[Any], dict[str, Any], float]:
        async with AsyncClient(addresses, timeout=5) as client:
            assert {client.server_for(key) for key in keys} == set(addresses)
            await client.set_many({key: i for i, key in enumerate(keys)})
            for p in proxies:
                p.delay(0.3)
            started = time.monotonic()
            singles, many = await asyncio.gather(
                asyncio.gather(*(client.get(key) for key in keys)),
                client.get_many(keys[::3]),
            )
            return singles, many, time.monotonic() - started

    singles, many, took = asyncio.run(main())
    assert singles == list(range(90))
    assert many == {key: i for i, key in enumerate(keys) if i % 3 == 0}
    assert took < 0.75  # each server answered its batch at the same time as the others
    for server in three_memcached:
        assert _stat(server, "cmd_get") > 0


def test_a_stalled_server_fails_every_waiter_of_the_batch_then_serves_again(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        client = AsyncClient(proxy.address, timeout=0.3, retry_timeout=0, retry_attempts=100)
        await client.set_many({"a": "A", "b": "B"})
        proxy.delay(1.0)
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(client.get(key) for key in ["a", "b"] * 10),
            client.set("c", "C"),
            client.get_many(["a", "b"]),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 0.8
        assert len(outcomes) == 22
        assert all(isinstance(outcome, CacheTimeoutError) for outcome in outcomes)
        proxy.restore()
        assert await client.get_many(["a", "b"]) == {"a": "A", "b": "B"}
        await client.aclose()

    asyncio.run(main())


def test_a_connection_closed_mid_batch_fails_every_waiter(
    proxy: FaultProxy,  # noqa: F811
) -> None:
    async def main() -> None:
        async with AsyncClient(proxy.address) as writer:
            await writer.set_many({f"k{i}": "v" * 2000 for i in range(20)})
        # A new client: its batch goes out on a new connection, so nothing is resent
        # (a pooled connection found closed would have its reads sent again).
        client = AsyncClient(proxy.address, timeout=5, retry_timeout=0, retry_attempts=100)
        proxy.cut_mid_response(100)
        outcomes = await asyncio.gather(
            *(client.get(f"k{i}") for i in range(20)),
            client.incr("counter", 1),
            return_exceptions=True,
        )
        assert len(outcomes) == 21
        # The increment (first in the batch) was answered before the cut; every get,
        # whose replies the cut fell into, gets the error.
        assert outcomes[-1] is None
        assert all(isinstance(outcome, CacheConnectionError) for outcome in outcomes[:-1])
        proxy.restore()
        assert await client.get("k0") == "v" * 2000
        await client.aclose()

    asyncio.run(main())


class _ErrorLines(FakeServer):
    """Answers every line it reads with SERVER_ERROR (one reply per request line)."""

    def answer(self, conn: socket.socket) -> None:  # pragma: no cover - replaced below
        raise NotImplementedError

    def _converse(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            pending = b""
            try:
                while not self.stopped.is_set():
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                    *lines, pending = pending.split(b"\r\n")
                    conn.sendall(b"".join(b"SERVER_ERROR out of memory\r\n" for _ in lines))
            except OSError:
                return


def test_an_error_reply_reaches_every_waiter_of_an_autobatched_get() -> None:
    server = _ErrorLines()
    try:

        async def main() -> list[Any]:
            async with AsyncClient(server.address, timeout=2) as client:
                return await asyncio.gather(
                    *(client.get(f"k{i % 5}") for i in range(25)), return_exceptions=True
                )

        outcomes = asyncio.run(main())
    finally:
        server.close()
    assert len(outcomes) == 25
    for outcome in outcomes:
        assert isinstance(outcome, ServerResponseError)
        assert "out of memory" in str(outcome)
