"""The node list over time, without servers: reconciling, key movement, timing, options."""

from __future__ import annotations

import pytest

from layered_cache import Client, ConfigurationError
from layered_cache._ring import Ring
from layered_cache.core.membership import FAILURE_GAP, Membership, reconcile
from layered_cache.discovery import (
    DNSDiscovery,
    ElastiCacheDiscovery,
    MemorystoreDiscovery,
    StaticDiscovery,
)

KEYS = [f"user:{i}:profile" for i in range(20_000)]


def hostnames(count: int) -> list[str]:
    return [f"mycluster.abc123.{i:04d}.use1.cache.amazonaws.com:11211" for i in range(1, count + 1)]


def moved(before: list[str], after: list[str]) -> list[str]:
    old, new = Ring(before), Ring(after)
    return [key for key in KEYS if old.node_for(key) != new.node_for(key)]


def test_adding_a_node_moves_only_the_keys_it_takes() -> None:
    # (Numbers in docs/guides/managed-clusters.rst, measured with 100,000 keys.)
    keys = moved(hostnames(3), hostnames(4))
    assert abs(len(keys) / len(KEYS) - 1 / 4) < 0.01
    new = Ring(hostnames(4))
    assert all(new.node_for(key) == hostnames(4)[3] for key in keys)
    assert abs(len(moved(hostnames(10), hostnames(11))) / len(KEYS) - 1 / 11) < 0.01


def test_removing_a_node_moves_only_its_keys() -> None:
    before = hostnames(4)
    after = [name for name in before if name != before[1]]
    keys = moved(before, after)
    assert abs(len(keys) / len(KEYS) - 1 / 4) < 0.01
    old = Ring(before)
    assert all(old.node_for(key) == before[1] for key in keys)


def test_a_replacement_under_the_same_hostname_moves_nothing() -> None:
    # ElastiCache keeps a replaced node's DNS name; by hostname, the ring is unchanged.
    assert moved(hostnames(4), hostnames(4)) == []
    # By IP address, a replaced node is a new name: its keys and the new node's move.
    ips = [f"10.0.0.{i}:11211" for i in range(1, 5)]
    replaced = [*ips[:1], "10.0.0.9:11211", *ips[2:]]
    assert 0.35 < len(moved(ips, replaced)) / len(KEYS) < 0.45


def test_reconcile_keeps_the_nodes_that_stay() -> None:
    current = {"a:1": object(), "b:1": object()}
    built: list[object] = []

    def build(address: object) -> object:
        built.append(address)
        return address

    assert reconcile(current, (("b", 1), ("a", 1)), build) is None
    nodes, removed = reconcile(current, (("b", 1), ("c", 1)), build) or ({}, [])
    assert nodes["b:1"] is current["b:1"]
    assert nodes["c:1"] == ("c", 1)
    assert removed == [current["a:1"]]
    assert built == [("c", 1)]


def test_timing() -> None:
    membership = Membership(ElastiCacheDiscovery(interval=30), (("cfg", 11211),))
    assert membership.due_in() == 0
    assert membership.claim()
    assert not membership.claim()  # only one caller runs a lookup
    assert 29 < membership.due_in() <= 30
    woken: list[bool] = []
    membership.add_waker(lambda: woken.append(True))
    membership.hint()
    assert woken == [True]
    assert membership.due_in() <= FAILURE_GAP
    assert membership.claim(force=True)


def test_static_is_the_default_and_changes_nothing() -> None:
    with Client("127.0.0.1:1") as client:
        assert client.refresh() is False
        status = client.discovery
        assert status.strategy == "StaticDiscovery()"
        assert status.nodes == ("127.0.0.1:1",)
    assert StaticDiscovery().interval == 0


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: ElastiCacheDiscovery(interval=-1), "interval"),
        (lambda: ElastiCacheDiscovery(interval="60"), "interval"),
        (lambda: MemorystoreDiscovery(use="dns"), "hostname"),
        (lambda: DNSDiscovery(interval=True), "interval"),
        (lambda: Client("127.0.0.1:1", discovery=object()), "lookup"),
    ],
)
def test_bad_options_are_named(make: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        make()  # type: ignore[operator]
