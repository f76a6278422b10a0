"""The meta-protocol features (get_or_set leases, mark_stale) under faults."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from layered_cache import CacheConnectionError, Client
from tests.faults import FaultProxy
from tests.servers import MemcachedProcess


def test_cut_lease_read_does_not_make_the_winner_wait_for_itself(
    proxy: FaultProxy, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=1.0)
    assert client.get_or_set("warm", "up") == "up"  # meta known, a connection pooled
    proxy.cut_mid_response()
    started = time.monotonic()
    try:
        value = client.get_or_set("k", "computed", wait_timeout=1.5)
    except CacheConnectionError:
        pass  # acceptable: the reply was lost and the call says so
    else:
        assert value == "computed"
    assert proxy.cuts == 1
    assert time.monotonic() - started < 0.75


def test_cut_lease_write_keeps_one_value(
    proxy: FaultProxy, memcached: MemcachedProcess, client_factory: Callable[..., Client]
) -> None:
    client = client_factory(proxy.address, timeout=1.0)
    assert client.get_or_set("warm", "up") == "up"
    computed: list[int] = []

    def compute() -> str:
        computed.append(1)
        proxy.cut_mid_response()  # the reply to the write that stores this value
        return "computed"

    with contextlib.suppress(CacheConnectionError):
        assert client.get_or_set("k", compute, wait_timeout=1.0) == "computed"
    assert computed == [1]
    with Client(memcached.address) as direct:
        assert direct.get("k") in ("computed", None)
    assert client.get_or_set("k", "other", wait_timeout=1.0) in ("computed", "other")


def test_transient_reset_at_first_contact_does_not_disable_meta(
    fresh_memcached: MemcachedProcess,
    proxy_factory: Callable[..., FaultProxy],
    client_factory: Callable[..., Client],
) -> None:
    proxy = proxy_factory(fresh_memcached)
    client = client_factory(proxy.address, timeout=1.0, retry_timeout=0.1)
    reference = client_factory(fresh_memcached.address, timeout=1.0)
    fresh_memcached.kill()  # the proxy resets connections it cannot forward
    with pytest.raises(CacheConnectionError):
        client.set_many({"a": 1})
    fresh_memcached.start()
    time.sleep(0.15)
    for each in (reference, client):
        assert each.set("k", "v")
        assert each.mark_stale("k")
    assert reference.get("k") == "v"  # meta: still served while someone refreshes it
    assert client.get("k") == "v"
