"""Multi-server batches ask every server at once, with one-server-at-a-time failure semantics.

Run on both engines (the asyncio engine gathers its exchanges; the sync engine
sends every request first, then reads the replies as they come), against real
memcached processes, with fault-injecting proxies in front where a server must be
slow or fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from layered_cache import CacheConnectionError, CacheTimeoutError, ServerUnavailableError
from tests.faults import FaultProxy
from tests.reliability.conftest import proxy_factory  # noqa: F401 - fixture
from tests.servers import MemcachedProcess, ServerGroup, TLSMaterial, start_tls_memcached

KEYS = [f"batch:{i}" for i in range(60)]


@pytest.fixture
def proxies(
    three_memcached: list[MemcachedProcess],
    proxy_factory: Callable[..., FaultProxy],  # noqa: F811
) -> list[FaultProxy]:
    return [proxy_factory(server) for server in three_memcached]


def _spread(client: Any, proxies: list[FaultProxy]) -> None:
    assert {client.server_for(key) for key in KEYS} == {p.address for p in proxies}


BATCHES: dict[str, Callable[[Any], Any]] = {
    "get_many": lambda c: c.get_many(KEYS),
    "gets_many": lambda c: c.gets_many(KEYS),
    "set_many": lambda c: c.set_many(dict.fromkeys(KEYS, "x")),
    "delete_many": lambda c: c.delete_many(KEYS),
}


@pytest.mark.parametrize("batch", list(BATCHES))
def test_every_server_is_asked_at_once(
    make: Callable[..., Any], proxies: list[FaultProxy], batch: str
) -> None:
    client = make([p.address for p in proxies], timeout=5)
    _spread(client, proxies)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    for p in proxies:
        p.delay(0.3)
    started = time.monotonic()
    BATCHES[batch](client)
    took = time.monotonic() - started
    assert took < 0.75  # three servers, 0.3 s each: at once, not one after another


@pytest.mark.parametrize("batch", list(BATCHES))
def test_with_listeners_every_server_is_still_asked_at_once(
    make: Callable[..., Any], proxies: list[FaultProxy], batch: str
) -> None:
    events: list[Any] = []
    client = make([p.address for p in proxies], timeout=5, listeners=[events.append])
    _spread(client, proxies)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    for p in proxies:
        p.delay(0.3)
    events.clear()
    started = time.monotonic()
    BATCHES[batch](client)
    took = time.monotonic() - started
    assert took < 0.75
    # One event per server, each timed from the start of the batch and named after the call.
    assert sorted(event.server for event in events) == sorted(p.address for p in proxies)
    assert {event.operation for event in events} == {batch}
    assert sum(event.keys for event in events) == len(KEYS)
    assert all(0.25 < event.duration < 0.75 for event in events)
    assert all(event.error is None for event in events)
    if batch in ("get_many", "gets_many"):
        assert sum(event.hits for event in events) == len(KEYS)


def test_with_listeners_a_failed_server_is_reported_and_absorbed(
    make: Callable[..., Any], proxies: list[FaultProxy]
) -> None:
    events: list[Any] = []
    client = make(
        [p.address for p in proxies], timeout=0.5, listeners=[events.append], ignore_exceptions=True
    )
    _spread(client, proxies)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    proxies[0].delay(2.0)
    events.clear()
    found = client.get_many(KEYS)
    assert 0 < len(found) < len(KEYS)
    failed = [event for event in events if getattr(event, "operation", None) == "get_many"]
    assert len(failed) == 3
    errors = [event for event in failed if event.error is not None]
    assert [event.server for event in errors] == [proxies[0].address]


def test_answers_come_back_whole_and_in_place(make: Callable[..., Any], proxies: list[Any]) -> None:
    client = make([p.address for p in proxies], timeout=5)
    values = {key: {"n": n, "pad": "p" * (n * 50)} for n, key in enumerate(KEYS)}
    assert client.set_many(values) == []
    assert client.get_many([*KEYS, "missing"]) == values
    tokens = client.gets_many(KEYS)
    assert {key: value for key, (value, _) in tokens.items()} == values
    assert client.delete_many(KEYS[:30]) is True
    assert client.get_many(KEYS) == {key: values[key] for key in KEYS[30:]}


def test_large_batches_go_out_and_come_back_whole(
    make: Callable[..., Any], three_memcached: list[MemcachedProcess]
) -> None:
    # Several MB each way: more than socket buffers hold, so sends and reads interleave.
    client = make([s.address for s in three_memcached], timeout=10)
    values = {f"big:{i}": bytes([i % 256]) * 20_000 for i in range(300)}
    assert client.set_many(values) == []
    assert client.get_many(list(values)) == values


def test_a_skipped_server_fails_the_batch_before_anything_is_sent(
    make: Callable[..., Any], proxies: list[FaultProxy]
) -> None:
    client = make([p.address for p in proxies], timeout=5, retry_timeout=30)
    _spread(client, proxies)
    client.set_many(dict.fromkeys(KEYS, 1))
    dead = proxies[1]
    dead.blackhole()
    dead.drop()
    with pytest.raises(CacheConnectionError):
        client.get(next(k for k in KEYS if client.server_for(k) == dead.address))
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=dead.address):
        client.get_many(KEYS)
    assert time.monotonic() - started < 0.2  # fails fast: no timeout waited


def test_a_failing_server_is_absorbed_alone_in_fail_silent_mode(
    make: Callable[..., Any], proxies: list[FaultProxy]
) -> None:
    client = make([p.address for p in proxies], timeout=0.3, ignore_exceptions=True)
    _spread(client, proxies)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    slow = proxies[0]
    slow.delay(2.0)
    started = time.monotonic()
    found = client.get_many(KEYS)
    assert time.monotonic() - started < 1.0
    assert found == {key: 1 for key in KEYS if client.server_for(key) != slow.address}
    assert client.ignored_errors == 1
    failed = client.set_many(dict.fromkeys(KEYS, 2))
    assert sorted(failed) == sorted(k for k in KEYS if client.server_for(k) == slow.address)


def test_timeout_bounds_the_whole_batch(
    make: Callable[..., Any], proxies: list[FaultProxy]
) -> None:
    client = make([p.address for p in proxies], timeout=0.3, retry_timeout=0)
    _spread(client, proxies)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    proxies[2].delay(1.5)
    started = time.monotonic()
    with pytest.raises(CacheTimeoutError, match=proxies[2].address):
        client.get_many(KEYS)
    assert time.monotonic() - started < 0.8
    proxies[2].restore()
    # The late reply is never read as the answer to the next batch.
    assert client.get_many(KEYS) == dict.fromkeys(KEYS, 1)


def test_pooled_connections_the_servers_closed_are_replaced(
    make: Callable[..., Any], proxies: list[FaultProxy]
) -> None:
    client = make([p.address for p in proxies], timeout=5)
    assert client.set_many(dict.fromkeys(KEYS, 1)) == []
    for p in proxies:
        p.drop()  # (a proxy's idle timeout, a restart)
    time.sleep(0.05)
    assert client.get_many(KEYS) == dict.fromkeys(KEYS, 1)
    assert client.set_many(dict.fromkeys(KEYS, 3)) == []
    assert client.get_many(KEYS) == dict.fromkeys(KEYS, 3)


@pytest.fixture
def two_tls_memcached(tls_material: TLSMaterial) -> Iterator[list[MemcachedProcess]]:
    group = ServerGroup()
    try:
        yield [group.add(start_tls_memcached(tls_material)) for _ in range(2)]
    finally:
        group.close()


def test_tls_batches(
    make: Callable[..., Any], two_tls_memcached: list[MemcachedProcess], tls_material: TLSMaterial
) -> None:
    from layered_cache.transport import TLSTransport

    client = make(
        [s.address for s in two_tls_memcached],
        transport=TLSTransport(ca_file=tls_material.ca_file),
        timeout=5,
    )
    values = {f"tls:{i}": "v" * (i * 300) for i in range(80)}
    # Pipelined meta sets over TLS, cut at command boundaries (memcached's TLS mode
    # before 1.6.39 stalls on a record that ends inside a command).
    assert client.set_many(values) == []
    assert client.get_many(list(values)) == values
    assert client.delete_many(list(values)) is True
    assert client.get_many(list(values)) == {}
