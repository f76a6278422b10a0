"""Regressions the asyncio chaos suite (test_async_chaos.py) found, each
reproduced deterministically against a real memcached."""

from __future__ import annotations

import asyncio
import contextlib
import time

from layered_cache import AsyncClient
from tests.faults import FaultProxy
from tests.reliability.counting import SocketSampler
from tests.servers import MemcachedProcess


def test_a_timer_due_as_the_reply_completes_does_not_fail_the_next_call(
    memcached: MemcachedProcess,
) -> None:
    """The loop is blocked while a reply arrives and the exchange's timer falls due.

    Both are handled in the same turn of the loop: the call gets its reply, and the
    connection goes back to the pool. The timer that fired must not make the next
    call on that connection fail at once (a spurious timeout, counted against the
    server's health).
    """

    async def main() -> list[object]:
        client = AsyncClient(memcached.address, timeout=0.1, retry_timeout=30)
        await client.set("k", "v")
        call = asyncio.ensure_future(client.get("k"))
        # Right after the call's first step (which sends the request on the pooled
        # connection) the loop is blocked: the reply and the timer both fall due.
        asyncio.get_running_loop().call_soon(time.sleep, 0.25)
        answers = [await call, await client.get("k"), await client.get("k")]
        await client.aclose()
        return answers

    assert asyncio.run(main()) == ["v", "v", "v"]


def test_a_non_idempotent_call_cancelled_at_any_point_gives_its_slot_back(
    memcached: MemcachedProcess,
) -> None:
    """A non-idempotent call (incr) checks its pooled connection for an end-of-file before
    sending. That check once awaited a turn of the loop: a call cancelled right then kept
    its connection's slot forever, and with ``max_connections=1`` every later call waited
    ``pool_timeout`` and failed. Cancelled at every point, a call must give the slot back.
    """

    async def main() -> int | None:
        client = AsyncClient(memcached.address, max_connections=1, pool_timeout=0.5)
        await client.set("n", 0)
        await client.incr("n", 1)  # one pooled connection, the only one allowed
        for turns in range(4):
            call = asyncio.ensure_future(client.incr("n", 1))
            for _ in range(turns):
                await asyncio.sleep(0)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
        value = await client.incr("n", 1)  # PoolTimeoutError if a slot was lost
        await client.aclose()
        return value

    value = asyncio.run(main())
    assert value is not None
    assert 2 <= value <= 6  # each cancelled increment landed once or not at all


def test_concurrent_first_calls_probe_meta_within_max_connections(proxy: FaultProxy) -> None:
    """The first set_many of a client asks each server whether it speaks meta, on a
    connection of its own. Fifty tasks asking at once once opened fifty probe connections,
    past ``max_connections``; the probe takes a pool slot like any call now."""
    proxy.delay(0.02)  # every connection lives long enough to be counted

    async def main() -> list[list[object]]:
        client = AsyncClient(proxy.address, max_connections=2, pool_timeout=10)
        results = await asyncio.gather(*(client.set_many({f"k{i}": i}) for i in range(50)))
        await client.aclose()
        return results

    sampler = SocketSampler([proxy.port], interval=0.001)
    sampler.start()
    try:
        results = asyncio.run(main())
    finally:
        sampler.stop.set()
        sampler.join(timeout=5)
    assert results == [[]] * 50
    assert 0 < sampler.peak <= 2


def test_calls_waiting_for_a_connection_fail_fast_once_the_server_failed(
    proxy: FaultProxy,
) -> None:
    """Calls queued for a free connection checked the server's health before queueing.
    When the server stalled, each freed slot let the next one open a new connection to
    it and wait out its timeout, one after the other: a stalled server got a stream of
    connections (which a server that caps connections counts until it wakes up)."""

    async def main() -> tuple[list[object], float, int]:
        client = AsyncClient(
            proxy.address, timeout=0.2, max_connections=2, pool_timeout=5, retry_timeout=5
        )
        await asyncio.gather(client.get("a"), client.get("b"))  # two pooled connections
        proxy.blackhole()  # a stalled server: accepts, never answers
        before = proxy.connections
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(client.get(f"k{i}") for i in range(40)), return_exceptions=True
        )
        took = time.monotonic() - started
        opened = proxy.connections - before
        await client.aclose()
        return outcomes, took, opened

    outcomes, took, opened = asyncio.run(main())
    proxy.restore()
    kinds = {type(outcome).__name__ for outcome in outcomes}
    assert kinds <= {"CacheTimeoutError", "ServerUnavailableError"}
    assert took < 1.0  # one timeout, not twenty in a row
    assert opened <= 1  # no stream of new connections to a stalled server


def test_the_half_open_try_after_a_failure_reaches_the_server(
    fresh_memcached: MemcachedProcess,
) -> None:
    """The re-check above must not refuse the one call the health policy lets through to
    try the server again, or a server that failed once would never be used again."""

    async def main() -> list[object]:
        client = AsyncClient(fresh_memcached.address, timeout=0.2, retry_timeout=0.3)
        await client.set("k", "v")
        fresh_memcached.pause()
        outcomes: list[object] = []
        try:
            await client.get("k")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        fresh_memcached.resume()
        await asyncio.sleep(0.4)  # the window is over: the next call tries the server
        outcomes.append(await client.get("k"))
        await client.aclose()
        return outcomes

    assert asyncio.run(main()) == ["CacheTimeoutError", "v"]
