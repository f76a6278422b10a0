"""Fail-silent mode: outages become misses and False, counted and logged once per burst."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import AuthenticationError, CacheConnectionError, TLSError
from layered_cache.auth import MemCachierAuth
from layered_cache.transport import TLSTransport
from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial


def test_off_by_default_outage_raises(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    address = fresh_memcached.address
    fresh_memcached.stop()
    with pytest.raises(CacheConnectionError):
        make(address).get("k")


def test_outage_reads_miss_writes_false(
    fresh_memcached: MemcachedProcess, caplog: pytest.LogCaptureFixture, make: Callable[..., Any]
) -> None:
    client = make(fresh_memcached.address, ignore_exceptions=True, retry_timeout=60)
    assert client.set("k", "v") is True
    fresh_memcached.stop()
    caplog.set_level(logging.WARNING, logger="layered_cache")
    calls = [
        (lambda: client.get("k", "dflt"), "dflt"),
        (lambda: client.get_many(["k", "j"]), {}),
        (lambda: client.gets("k"), (None, None)),
        (lambda: client.set("k", 1), False),
        (lambda: client.add("k", 1), False),
        (lambda: client.replace("k", 1), False),
        (lambda: client.append("k", "x"), False),
        (lambda: client.prepend("k", "x"), False),
        (lambda: client.cas("k", 1, 1), False),
        (lambda: client.delete("k"), False),
        (lambda: client.delete_many(["k"]), False),
        (lambda: client.incr("n", 1), None),
        (lambda: client.decr("n", 1), None),
        (lambda: client.touch("k"), False),
        (lambda: client.set_many({"a": 1, "b": 2}), ["a", "b"]),
    ]
    for call, expected in calls:
        assert call() == expected
    assert client.ignored_errors == len(calls)
    # One log record for the burst, not one per call.
    records = [r for r in caplog.records if r.name == "layered_cache"]
    assert len(records) == 1
    assert fresh_memcached.address in records[0].getMessage()


def test_other_servers_keep_serving(
    three_memcached: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    addresses = [server.address for server in three_memcached]
    client = make(addresses, ignore_exceptions=True, timeout=0.5, retry_timeout=60)
    keys = [f"k{i}" for i in range(60)]
    assert client.set_many(dict.fromkeys(keys, 1)) == []
    dead = three_memcached[0]
    dead.pause()
    try:
        on_dead = [key for key in keys if client.server_for(key) == dead.address]
        found = client.get_many(keys)
        assert set(found) == set(keys) - set(on_dead)
        assert sorted(client.set_many(dict.fromkeys(keys, 2))) == sorted(on_dead)
    finally:
        dead.resume()


def test_auth_failures_always_raise(
    memcachier: MemCachierGateway, make: Callable[..., Any]
) -> None:
    client = make(
        memcachier.address,
        auth=MemCachierAuth(memcachier.username, "wrong"),
        ignore_exceptions=True,
    )
    with pytest.raises(AuthenticationError):
        client.get("k")
    assert client.ignored_errors == 0


def test_tls_refusals_always_raise(
    tls_memcached: MemcachedProcess, tls_material: TLSMaterial, make: Callable[..., Any]
) -> None:
    client = make(
        tls_memcached.address,
        transport=TLSTransport(ca_file=tls_material.untrusted_ca_file),
        ignore_exceptions=True,
    )
    with pytest.raises(TLSError):
        client.get("k")


def test_bad_keys_always_raise(memcached: MemcachedProcess, make: Callable[..., Any]) -> None:
    client = make(memcached.address, ignore_exceptions=True)
    with pytest.raises(ValueError, match="invalid memcached key"):
        client.get("a b")
    client.close()
