"""Regressions the asyncio chaos suite (tests/reliability/test_async_chaos.py) found, each
reproduced deterministically against a real memcached."""

from __future__ import annotations

import asyncio
import time

from layered_cache import AsyncClient
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


def test_a_call_cancelled_before_sending_gives_its_connection_back(
    memcached: MemcachedProcess,
) -> None:
    """A non-idempotent call (incr) checks its pooled connection for a pending EOF
    first; cancelled right then, it must not keep the connection's slot forever."""

    async def main() -> tuple[int | None, int]:
        client = AsyncClient(memcached.address, max_connections=1, pool_timeout=0.5)
        await client.set("n", 0)
        await client.incr("n", 1)  # one pooled connection, the only one allowed
        for _ in range(3):
            call = asyncio.ensure_future(client.incr("n", 1))
            await asyncio.sleep(0)  # it took the connection and checks it
            call.cancel()
            try:
                await call
            except asyncio.CancelledError:
                pass
        # Without the fix, the slot is gone: PoolTimeoutError after pool_timeout.
        value = await client.incr("n", 1)
        connections = len(await client.stats())
        await client.aclose()
        return value, connections

    assert asyncio.run(main()) == (2, 1)
