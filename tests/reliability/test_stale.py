"""Stale connections are invisible: a pooled connection that died while idle (server restart,
reset or idle drop by a proxy or MemCachier) is replaced, idempotent calls are retried once on
a fresh, re-authenticated connection, and non-idempotent ones are never repeated.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheConnectionError, Client
from layered_cache.auth import MemCachierAuth
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess, MemCachierGateway

POOL = 4

#: Every idempotent call, with the answer it must give right after its connection died.
IDEMPOTENT: dict[str, tuple[Callable[[Client], Any], Any]] = {
    "get": (lambda client: client.get("k"), "v"),
    "get_many": (lambda client: client.get_many(["k", "j"]), {"k": "v", "j": "w"}),
    "gets": (lambda client: client.gets("k")[0], "v"),
    "gets_many": (lambda client: sorted(client.gets_many(["k", "j"])), ["j", "k"]),
    "set": (lambda client: client.set("k", "v"), True),
    "set_many": (lambda client: client.set_many({"k": "v", "j": "w"}), []),
    "delete": (lambda client: client.delete("gone"), False),
    "delete_many": (lambda client: client.delete_many(["gone", "also-gone"]), True),
    "touch": (lambda client: client.touch("k", 60), True),
}


def _fill_pool(client: Client, size: int = POOL) -> None:
    """Make ``size`` threads use the client at once, so that ``size`` connections are pooled."""
    barrier = threading.Barrier(size)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(20):
                client.get("k")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []


def _seed(client: Client) -> None:
    assert client.set_many({"k": "v", "j": "w", "n": 10}) == []


@pytest.mark.parametrize("name", list(IDEMPOTENT))
@pytest.mark.parametrize("fault", ["reset", "drop"])
def test_idempotent_call_survives_dead_pooled_connections(
    name: str, fault: str, proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=1.0)
    _seed(client)
    _fill_pool(client)
    killed = proxy.reset() if fault == "reset" else proxy.drop()
    assert killed >= 1
    call, expected = IDEMPOTENT[name]
    assert call(client) == expected  # no error: the stale connection was replaced
    assert client.get("k") == "v"


def test_restart_is_invisible_to_idempotent_calls_from_many_threads(
    fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(fresh_memcached.address, timeout=1.0)
    _seed(client)
    _fill_pool(client)
    fresh_memcached.restart(graceful=False)  # every pooled connection is now dead
    barrier = threading.Barrier(POOL)
    errors: list[BaseException] = []
    results: list[Any] = []

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=5)
            for name, (call, _) in IDEMPOTENT.items():
                if name not in ("get", "get_many", "gets", "gets_many"):
                    call(client)
            for i in range(20):
                assert client.set(f"t{n}:{i}", i)
                results.append(client.get(f"t{n}:{i}") == i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(POOL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert results == [True] * (POOL * 20)


@pytest.mark.parametrize(("name", "after"), [("incr", 11), ("decr", 9)])
def test_counter_after_reset_is_exact_or_the_call_raises(
    name: str,
    after: int,
    proxy: FaultProxy,
    memcached: MemcachedProcess,
    client_factory: Callable[..., Client],
) -> None:
    client = client_factory(proxy.address, timeout=1.0)
    _seed(client)
    _fill_pool(client)
    proxy.reset()
    try:
        result = getattr(client, name)("n", 1)
    except CacheConnectionError:
        expected = 10  # refused before the server saw it: the reset came first
    else:
        assert result == after
        expected = after
    with Client(memcached.address) as direct:
        assert direct.get("n") == expected  # counted once or not at all, never twice


def test_restart_then_incr_does_not_make_idempotent_calls_fail(
    fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(fresh_memcached.address, timeout=1.0, retry_timeout=30)
    _seed(client)
    fresh_memcached.restart(graceful=False)
    assert client.set("n", 10)  # idempotent: survives the restart
    _fill_pool(client, 2)
    fresh_memcached.restart(graceful=False)
    # Never sent twice; the restart emptied the cache, so the counter is missing (or the
    # call says it failed).  Either way the server is not reported down for it:
    with contextlib.suppress(CacheConnectionError):
        assert client.incr("n", 1) is None
    assert client.set("k", "after")  # no ServerUnavailableError
    assert client.get("k") == "after"
    assert client.set("n", 10)
    _fill_pool(client, 2)
    fresh_memcached.restart(graceful=False)
    with contextlib.suppress(CacheConnectionError):
        assert client.add("n", 1) is True
    assert client.get_many(["k", "n"]) in ({"n": 1}, {})


def test_memcachier_idle_drop_reauthenticates(
    memcachier: MemCachierGateway, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(
        memcachier.address, auth=MemCachierAuth(memcachier.username, memcachier.password)
    )
    _seed(client)
    _fill_pool(client)
    before = memcachier.handshakes
    assert memcachier.drop_connections() >= 1  # what MemCachier does to idle connections
    for name, (call, expected) in IDEMPOTENT.items():
        assert call(client) == expected, name
    assert memcachier.handshakes > before  # the fresh connection authenticated first
    assert memcachier.failed_handshakes == 0
