"""Outages: a stalled (black-holed) or dead server costs one timeout, then fails fast until it
is retried; the other servers keep working; and outside fail-silent mode every call that could
not reach its server raises -- never a quiet None, False or {}.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import (
    AuthenticationError,
    CacheConnectionError,
    CacheTimeoutError,
    Client,
    ServerUnavailableError,
)
from layered_cache.auth import MemCachierAuth
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess, MemCachierGateway

TIMEOUT = 0.25
FAST = 0.1  # a call that fails fast does no network round trip at all

#: Every call a caller can make about keys, with the quiet answer HashClient would give.
KEY_CALLS: dict[str, Callable[[Client], Any]] = {
    "get": lambda client: client.get("k"),
    "get_many": lambda client: client.get_many(["k", "j"]),
    "gets": lambda client: client.gets("k"),
    "gets_many": lambda client: client.gets_many(["k", "j"]),
    "set": lambda client: client.set("k", "v"),
    "add": lambda client: client.add("k", "v"),
    "replace": lambda client: client.replace("k", "v"),
    "append": lambda client: client.append("k", "v"),
    "prepend": lambda client: client.prepend("k", "v"),
    "cas": lambda client: client.cas("k", "v", 1),
    "delete": lambda client: client.delete("k"),
    "delete_many": lambda client: client.delete_many(["k", "j"]),
    "incr": lambda client: client.incr("n", 1),
    "decr": lambda client: client.decr("n", 1),
    "touch": lambda client: client.touch("k", 10),
}
SERVER_CALLS: dict[str, Callable[[Client], Any]] = {
    "stats": lambda client: client.stats(),
    "version": lambda client: client.version(),
    "flush_all": lambda client: client.flush_all(),
}
#: Calls that first ask a server whether it speaks the meta protocol.
PROBING_CALLS: dict[str, Callable[[Client], Any]] = {
    "set_many": lambda client: client.set_many({"k": "v", "j": "w"}),
    "get_or_set": lambda client: client.get_or_set("k", "v"),
}


def _timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def _wait_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def test_blackhole_times_out_then_fails_fast_then_recovers(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=TIMEOUT, retry_timeout=0.6, dead_timeout=30)
    assert client.set("k", "v")
    proxy.blackhole()
    error, took = _timed(lambda: client.get("k"))
    assert isinstance(error, CacheTimeoutError)
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 0.5
    failed_at = time.monotonic()
    connections = proxy.connections
    while time.monotonic() < failed_at + 0.3:  # well inside retry_timeout
        error, took = _timed(lambda: client.get("k"))
        assert isinstance(error, ServerUnavailableError)
        assert took < FAST
        time.sleep(0.05)
    assert proxy.connections == connections  # failing fast means not even connecting
    proxy.restore()
    _wait_until(failed_at + 0.65)
    assert client.get("k") == "v"  # retried after retry_timeout, and healthy again
    assert client.set("k", "w")
    assert client.get("k") == "w"


def test_dead_after_retry_attempts_then_used_again_after_dead_timeout(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(
        proxy.address, timeout=TIMEOUT, retry_attempts=2, retry_timeout=0.3, dead_timeout=1.2
    )
    assert client.set("k", "v")
    proxy.blackhole()
    assert isinstance(_timed(lambda: client.get("k"))[0], CacheTimeoutError)
    time.sleep(0.35)  # retry_timeout passed: tried once more, fails again -> dead
    assert isinstance(_timed(lambda: client.get("k"))[0], CacheTimeoutError)
    dead_at = time.monotonic()
    proxy.restore()  # back, but the client does not know yet
    error, took = _timed(lambda: client.get("k"))
    assert isinstance(error, ServerUnavailableError)
    assert took < FAST
    time.sleep(0.5)  # longer than retry_timeout, shorter than dead_timeout: still skipped
    assert isinstance(_timed(lambda: client.get("k"))[0], ServerUnavailableError)
    _wait_until(dead_at + 1.25)
    assert client.get("k") == "v"


def test_one_of_three_blackholed_others_keep_working(
    three_memcached: list[MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
) -> None:
    proxies = [proxy_factory(server, name=f"proxy-{i}") for i, server in enumerate(three_memcached)]
    client = client_factory(
        [proxy.address for proxy in proxies],
        timeout=TIMEOUT,
        retry_attempts=1,
        retry_timeout=0.3,
        dead_timeout=1.0,
    )
    keys: dict[str, list[str]] = {proxy.address: [] for proxy in proxies}
    for i in range(90):
        keys[client.server_for(f"k{i}")].append(f"k{i}")
    assert all(len(group) >= 10 for group in keys.values())
    everything = {key: key.upper() for group in keys.values() for key in group}
    assert client.set_many(everything) == []

    dead, *alive = proxies
    dead_keys = keys[dead.address]
    alive_keys = [key for proxy in alive for key in keys[proxy.address]]
    dead.blackhole()
    error, took = _timed(lambda: client.get(dead_keys[0]))
    assert isinstance(error, CacheTimeoutError)
    assert took < TIMEOUT + 0.5
    dead_at = time.monotonic()

    # The other two keep serving reads and writes, at full speed.
    started = time.monotonic()
    assert client.get_many(alive_keys) == {key: everything[key] for key in alive_keys}
    assert client.set_many({key: key for key in alive_keys}) == []
    assert all(client.get(key) == key for key in alive_keys[:10])
    assert time.monotonic() - started < 1.0
    # The dead server's keys fail fast; they are not moved to another server.
    for key in dead_keys[:5]:
        error, took = _timed(lambda key=key: client.get(key))
        assert isinstance(error, ServerUnavailableError)
        assert error.server == dead.address
        assert took < FAST
        assert client.server_for(key) == dead.address
    # A call that needs the dead server raises as a whole, never a partial answer.
    assert isinstance(_timed(lambda: client.get_many(list(everything)))[0], CacheConnectionError)

    dead.restore()
    _wait_until(dead_at + 1.05)
    # Retried after dead_timeout and used again; its keys kept their values (no restart).
    assert client.get(dead_keys[0]) == everything[dead_keys[0]]
    assert client.get_many(dead_keys) == {key: everything[key] for key in dead_keys}
    assert client.set(dead_keys[1], "again")
    assert client.get(dead_keys[1]) == "again"


def test_no_silent_misses_while_a_server_is_skipped(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=TIMEOUT, retry_timeout=60)
    assert client.set_many({"k": "v", "n": 1}) == []  # the server is known to speak meta
    proxy.blackhole()
    assert isinstance(_timed(lambda: client.get("k"))[0], CacheTimeoutError)
    slow = {}
    for name, call in {**KEY_CALLS, **SERVER_CALLS, **PROBING_CALLS}.items():
        error, took = _timed(lambda call=call: call(client))
        assert isinstance(error, ServerUnavailableError), f"{name} answered instead of raising"
        if took >= FAST:
            slow[name] = took
    assert slow == {}


@pytest.mark.parametrize("name", list(KEY_CALLS) + list(SERVER_CALLS) + list(PROBING_CALLS))
def test_no_silent_misses_when_the_server_refuses(
    name: str, fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    address = fresh_memcached.address
    fresh_memcached.kill()
    # No skipping at all: every call tries the server again, and every one must say so.
    client = client_factory(address, timeout=TIMEOUT, retry_timeout=0, dead_timeout=0)
    call = {**KEY_CALLS, **SERVER_CALLS, **PROBING_CALLS}[name]
    for _ in range(3):
        with pytest.raises(CacheConnectionError, match="refused"):
            call(client)


def test_fail_fast_for_every_call_of_a_new_client(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    proxy.blackhole()
    client = client_factory(proxy.address, timeout=TIMEOUT, retry_timeout=60)
    assert isinstance(_timed(lambda: client.get("k"))[0], CacheTimeoutError)
    slow = {}
    for name, call in {**KEY_CALLS, **SERVER_CALLS}.items():
        error, took = _timed(lambda call=call: call(client))
        assert isinstance(error, ServerUnavailableError), f"{name}: {error!r}"
        if took >= FAST:
            slow[name] = took
    assert slow == {}


@pytest.mark.parametrize("name", list(PROBING_CALLS))
def test_fail_fast_for_probing_calls_of_a_new_client(
    name: str, proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    proxy.blackhole()
    client = client_factory(proxy.address, timeout=TIMEOUT, retry_timeout=60)
    assert isinstance(_timed(lambda: client.get("k"))[0], CacheTimeoutError)
    for _ in range(2):
        error, took = _timed(lambda: PROBING_CALLS[name](client))
        assert isinstance(error, ServerUnavailableError), repr(error)
        assert took < FAST


def test_one_stall_seen_by_many_threads_is_one_failure(
    proxy: FaultProxy, client_factory: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    threads_count = 8
    client = client_factory(
        proxy.address,
        timeout=TIMEOUT,
        retry_attempts=2,
        retry_timeout=0.3,
        dead_timeout=60,
        ignore_exceptions=True,
    )
    assert client.set("k", "v")
    barrier = threading.Barrier(threads_count + 1)
    answers: list[Any] = []

    def work() -> None:
        barrier.wait(timeout=5)
        answers.append(client.get("k", "missed"))

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    caplog.set_level(logging.WARNING, logger="layered_cache")
    proxy.blackhole()
    barrier.wait(timeout=5)  # all eight calls are in flight during the same stall
    for thread in threads:
        thread.join(timeout=5)
    stalled_at = time.monotonic()
    proxy.restore()
    assert answers == ["missed"] * threads_count
    assert client.ignored_errors == threads_count
    # One stall is one failure burst: logged once, and retried after retry_timeout.
    assert len([r for r in caplog.records if r.name == "layered_cache"]) == 1
    _wait_until(stalled_at + 0.35)
    assert client.get("k", "missed") == "v"


def test_outage_behind_an_authenticating_gateway_is_an_outage(
    fresh_memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    with MemCachierGateway(fresh_memcached, "gw-user", "gw-password") as gateway:
        auth = MemCachierAuth("gw-user", "gw-password")
        silent = client_factory(gateway.address, auth=auth, ignore_exceptions=True)
        strict = client_factory(gateway.address, auth=auth, retry_timeout=60)
        assert silent.set("k", "v")
        fresh_memcached.kill()  # the gateway now answers SERVER_ERROR upstream unavailable
        silent.close()
        strict.close()
        assert silent.get("k", "missed") == "missed"  # an outage: absorbed, not raised
        assert silent.ignored_errors == 1
        with pytest.raises(CacheConnectionError) as caught:
            strict.get("k")
        assert not isinstance(caught.value, AuthenticationError)
        assert isinstance(_timed(lambda: strict.get("k"))[0], ServerUnavailableError)


def test_stalled_authentication_is_bounded_by_connect_timeout(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    proxy.blackhole()  # accepts the connection, never answers the handshake
    client = client_factory(
        proxy.address, auth=MemCachierAuth("user", "pass"), connect_timeout=0.2, timeout=1.0
    )
    error, took = _timed(lambda: client.get("k"))
    assert isinstance(error, CacheTimeoutError)
    assert took < 0.6
