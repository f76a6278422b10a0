"""Namespaces on real memcached: a group of keys invalidated at once, fleet-wide, failing safe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layered_cache import CacheConnectionError, Client, InvalidKeyError
from layered_cache._keys import generation_key
from tests.servers import MemcachedProcess

ROOT = Path(__file__).resolve().parent.parent


def test_keys_of_a_namespace_are_its_own(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address)
    user42, user43 = client.namespace("user:42"), client.namespace("user:43")
    assert user42.set("profile", "forty-two") is True
    assert user43.set("profile", "forty-three") is True
    client.set("profile", "plain")
    assert user42.get("profile") == "forty-two"
    assert user43.get("profile") == "forty-three"
    assert client.get("profile") == "plain"
    assert user42.name == "user:42"


def test_invalidate_makes_every_key_a_miss_and_leaves_the_rest(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address)
    space = client.namespace("user:42")
    assert space.set_many({f"fragment:{i}": i for i in range(20)}) == []
    client.namespace("user:43").set("fragment:0", "other user")
    before = space.generation()
    assert space.invalidate() is True
    assert space.generation() != before
    assert space.get_many([f"fragment:{i}" for i in range(20)]) == {}
    assert space.get("fragment:0") is None
    assert client.namespace("user:43").get("fragment:0") == "other user"
    # The namespace works as before in its new generation.
    assert space.add("fragment:0", "fresh") is True
    assert space.get("fragment:0") == "fresh"


def test_every_method_in_a_namespace(memcached: MemcachedProcess, make: Callable[..., Any]) -> None:
    client = make(memcached.address)
    space = client.namespace(b"bytes-name")
    assert space.set("k", "v") is True
    value, token = space.gets("k")
    assert value == "v"
    assert space.cas("k", "w", token) is True
    assert space.replace("k", "x") is True
    assert space.append("k", "y") is True
    assert space.prepend("k", "<") is True
    assert space.touch("k", 60) is True
    assert space.gets_many(["k"])["k"][0] == "<xy"
    assert space.delete("k") is True
    assert space.add("n", 5) is True
    assert space.incr("n", 2) == 7
    assert space.decr("n", 3) == 4
    assert space.incr("counter", 1, initial=1) == 1
    assert space.decr("counter", 1, initial=9) == 0
    assert space.mark_stale("n") is True
    assert space.delete_many(["n", "counter"]) is True
    assert space.get_many(["n", "counter", "k"]) == {}
    assert client.get("k") is None  # nothing of it outside the namespace


def test_get_or_set_computes_once_per_generation(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address)
    space = client.namespace("reports")
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return f"render {len(calls)}"

    assert space.get_or_set("weekly", compute) == "render 1"
    assert space.get_or_set("weekly", compute) == "render 1"
    space.invalidate()
    assert space.get_or_set("weekly", compute) == "render 2"
    assert len(calls) == 2


def test_hash_policy_in_a_namespace(memcached: MemcachedProcess, make: Callable[..., Any]) -> None:
    client = make(memcached.address, key_policy="hash")
    space = client.namespace("search")
    long_query = "green tea " * 40
    assert space.set(long_query, ["tea"]) is True
    assert space.get(long_query) == ["tea"]
    assert space.get_many([long_query, "x y"]) == {long_query: ["tea"]}
    assert space.get_or_set("a b", "c") == "c"
    space.invalidate()
    assert space.get(long_query) is None


def test_strict_policy_in_a_namespace_leaves_room_for_the_prefix(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address)
    space = client.namespace("user:42")
    with pytest.raises(InvalidKeyError, match="in this namespace memcached allows at most"):
        space.set("k" * 240, 1)
    with pytest.raises(InvalidKeyError):
        space.get("has space")
    with pytest.raises(InvalidKeyError, match="invalid namespace name"):
        client.namespace("has space")


def test_racing_creators_agree_on_one_generation(memcached: MemcachedProcess) -> None:
    # No in-process memory (ttl 0): every thread reads memcached and races to create it.
    clients = [Client(memcached.address, namespace_cache_ttl=0) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    seen: list[bytes] = []

    def create(client: Client) -> None:
        barrier.wait()
        seen.append(client.namespace("fresh").generation())

    threads = [threading.Thread(target=create, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert len(set(seen)) == 1
    assert memcached.command(b"get " + generation_key(b"fresh") + b"\r\n", until=b"END\r\n")


def test_an_evicted_generation_never_brings_old_data_back(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address, namespace_cache_ttl=0)
    space = client.namespace("user:42")
    space.set("k", "old")
    # memcached evicts (or an operator deletes) the generation: a new random one is made.
    memcached.command(b"delete " + generation_key(b"user:42") + b"\r\n")
    assert space.get("k") is None


def test_another_process_invalidating_is_seen_within_the_cache_window(
    memcached: MemcachedProcess,
) -> None:
    ttl = 3.0
    client = Client(memcached.address, namespace_cache_ttl=ttl)
    space = client.namespace("user:42")
    space.set("k", "v")
    read_at = time.monotonic()
    assert space.get("k") == "v"
    code = (
        "from layered_cache import Client; "
        f"assert Client({memcached.address!r}).namespace('user:42').invalidate()"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    if time.monotonic() - read_at < ttl - 0.2:
        assert space.get("k") == "v"  # this process still uses the generation it read
    time.sleep(max(0.0, read_at + ttl + 0.1 - time.monotonic()))
    assert space.get("k") is None


def test_invalidate_is_seen_at_once_by_every_client_of_the_process(
    memcached: MemcachedProcess,
) -> None:
    from layered_cache import AsyncClient
    from tests.engines import AsyncFacade

    sync = Client(memcached.address, namespace_cache_ttl=600)
    with AsyncFacade(AsyncClient(memcached.address, namespace_cache_ttl=600)) as aio:
        sync.namespace("user:42").set("k", "v")
        assert aio.namespace("user:42").get("k") == "v"
        assert aio.namespace("user:42").invalidate() is True
        assert sync.namespace("user:42").get("k") is None


def test_namespace_spread_over_several_servers(
    three_memcached: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    client = make([server.address for server in three_memcached])
    # Its own name: a generation remembered from another test would outlive their flush.
    space = client.namespace(f"catalogue:{time.monotonic_ns()}")
    keys = [f"item:{i}" for i in range(60)]
    assert space.set_many(dict.fromkeys(keys, "v")) == []
    holders = {client.server_for(key) for key in keys}
    assert len(holders) == 3  # the keys spread, only the generation lives on one server
    counts = [int(server.stats()["curr_items"]) for server in three_memcached]
    assert sum(counts) == 61
    assert space.invalidate() is True
    assert space.get_many(keys) == {}


@pytest.fixture
def fleet(memcached_factory: Callable[..., MemcachedProcess]) -> list[MemcachedProcess]:
    return [memcached_factory(name=f"ns-{i}") for i in range(3)]


def _generation_server(fleet: list[MemcachedProcess], name: bytes) -> MemcachedProcess:
    probe = Client([server.address for server in fleet])
    holder = probe.server_for(generation_key(name))
    return next(server for server in fleet if server.address == holder)


def test_generation_server_down_raises(
    fleet: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    client = make([server.address for server in fleet], namespace_cache_ttl=0)
    space = client.namespace("user:42")
    space.set("k", "v")
    _generation_server(fleet, b"user:42").stop()
    for call in (
        lambda: space.get("k"),
        lambda: space.set("k", 1),
        lambda: space.get_many(["k"]),
        lambda: space.get_or_set("k", 1),
        space.invalidate,
    ):
        with pytest.raises(CacheConnectionError):
            call()


def test_generation_server_down_fail_silent(
    fleet: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    client = make(
        [server.address for server in fleet], namespace_cache_ttl=0, ignore_exceptions=True
    )
    space = client.namespace("user:42")
    assert space.set("k", "v") is True
    _generation_server(fleet, b"user:42").stop()
    assert space.get("k", "fallback") == "fallback"  # never another generation's data
    assert space.gets("k") == (None, None)
    assert space.get_many(["k"]) == {}
    assert space.set("k", 1) is False
    assert space.set_many({"k": 1}) == ["k"]
    assert space.delete("k") is False
    assert space.incr("n", 1) is None
    assert space.touch("k") is False
    assert space.get_or_set("k", lambda: "computed") == "computed"
    assert space.invalidate() is False
    assert client.ignored_errors >= 10


def test_namespace_reads_with_fail_silent_outage_of_a_data_server(
    fleet: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    client = make([server.address for server in fleet], ignore_exceptions=True)
    space = client.namespace("user:42")
    keys = [f"k{i}" for i in range(30)]
    space.set_many(dict.fromkeys(keys, 1))
    generation_holder = _generation_server(fleet, b"user:42")
    other = next(server for server in fleet if server is not generation_holder)
    other.stop()
    found = space.get_many(keys)
    lost = {key for key in keys if client.server_for(key) == other.address}
    assert lost
    assert set(found) == set(keys) - lost


def test_after_flush_all_a_namespace_starts_a_new_generation_at_once(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address, namespace_cache_ttl=600)
    space = client.namespace("user:42")
    space.set("k", "old")
    assert client.flush_all() is True
    space.set("k", "new")
    # Written in a generation memcached holds, not one only this process remembered.
    assert Client(memcached.address, namespace_cache_ttl=0).namespace("user:42").get("k") == "new"
