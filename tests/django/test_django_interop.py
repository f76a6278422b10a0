"""Django's ``PyMemcacheCache`` and ours share servers: same bytes, same flags, same placement.

Switching backends (or running both during a rolling deploy) needs no cache flush.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test.utils import override_settings
from django_helpers import BACKEND, PYMEMCACHE_BACKEND

from layered_cache import Client

VALUES: dict[str, Any] = {
    "str": "text · ünïcødé",
    "empty-str": "",
    "int": 42,
    "negative": -7,
    "big-int": 2**70,
    "bytes": b"\x00\x01binary",
    "float": 3.5,
    "none": None,
    "bool": True,
    "list": [1, "two", 3.0],
    "tuple": (1, 2),
    "dict": {"a": [1, 2], "b": {"c": None}},
    "datetime": datetime.datetime(2024, 5, 17, 12, 30, tzinfo=datetime.UTC),
    "decimal": decimal.Decimal("1.10"),
    "set": {1, 2, 3},
}


@pytest.fixture
def pair(memcached: Any) -> Iterator[tuple[BaseCache, BaseCache]]:
    """``(ours, theirs)``: our backend and Django's PyMemcacheCache on the same memcached."""
    setting = {
        "default": {"BACKEND": BACKEND, "LOCATION": memcached.address},
        "theirs": {"BACKEND": PYMEMCACHE_BACKEND, "LOCATION": memcached.address},
    }
    with override_settings(CACHES=setting):
        yield caches["default"], caches["theirs"]


@pytest.fixture
def three_pair(three_memcached: list[Any]) -> Iterator[tuple[BaseCache, BaseCache]]:
    """Both backends over the same three servers, listed in the same order."""
    location = [server.address for server in three_memcached]
    setting = {
        "default": {"BACKEND": BACKEND, "LOCATION": location},
        "theirs": {"BACKEND": PYMEMCACHE_BACKEND, "LOCATION": ";".join(location)},
    }
    with override_settings(CACHES=setting):
        yield caches["default"], caches["theirs"]


@pytest.mark.parametrize("direction", ["theirs-to-ours", "ours-to-theirs"])
def test_values_read_back_through_the_other_backend(
    pair: tuple[BaseCache, BaseCache], direction: str
) -> None:
    ours, theirs = pair
    writer, reader = (theirs, ours) if direction == "theirs-to-ours" else (ours, theirs)
    for name, value in VALUES.items():
        writer.set(f"one-{name}", value)
    assert writer.set_many({f"many-{name}": value for name, value in VALUES.items()}) == []
    for name, value in VALUES.items():
        got = reader.get(f"one-{name}", "missing")
        assert got == value, name
        assert type(got) is type(value), name
    assert reader.get_many([f"many-{name}" for name in VALUES]) == {
        f"many-{name}": value for name, value in VALUES.items()
    }
    assert reader.has_key("one-none") is True


def test_incr_and_decr_on_each_others_counters(pair: tuple[BaseCache, BaseCache]) -> None:
    ours, theirs = pair
    theirs.set("counter", 10)
    assert ours.incr("counter", 5) == 15
    assert theirs.get("counter") == 15
    assert theirs.decr("counter", 3) == 12
    assert ours.get("counter") == 12
    assert ours.decr("counter", 100) == 0
    assert theirs.incr("counter") == 1
    ours.set("mine", 1)
    assert theirs.incr("mine", 41) == 42
    assert ours.get("mine") == 42
    with pytest.raises(ValueError, match="not found"):
        ours.incr("nobody")
    with pytest.raises(ValueError, match="not found"):
        theirs.incr("nobody")


def test_add_touch_delete_and_versions_across_backends(pair: tuple[BaseCache, BaseCache]) -> None:
    ours, theirs = pair
    assert theirs.add("k", "first") is True
    assert ours.add("k", "second") is False
    assert ours.touch("k", 100) is True
    assert theirs.delete("k") is True
    assert ours.get("k") is None
    ours.set("versioned", "v2", version=2)
    assert theirs.get("versioned") is None
    assert theirs.get("versioned", version=2) == "v2"
    assert theirs.incr_version("versioned", version=2) == 3
    assert ours.get("versioned", version=3) == "v2"
    ours.set_many({"a": 1, "b": 2})
    theirs.delete_many(["a", "b"])
    assert ours.get_many(["a", "b"]) == {}


def test_json_serializer_interoperates_for_plain_values_and_never_unpickles(
    memcached: Any,
) -> None:
    setting = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": memcached.address,
            "OPTIONS": {"serializer": "json"},
        },
        "theirs": {"BACKEND": PYMEMCACHE_BACKEND, "LOCATION": memcached.address},
    }
    with override_settings(CACHES=setting):
        ours, theirs = caches["default"], caches["theirs"]
        ours.set_many({"s": "text", "i": 7, "b": b"raw"})
        assert theirs.get_many(["s", "i", "b"]) == {"s": "text", "i": 7, "b": b"raw"}
        theirs.set("pickled", {"a": 1})
        assert ours.get("pickled", "miss") == "miss"  # a pickle is never loaded


def test_three_servers_place_every_key_on_the_same_server(
    three_memcached: list[Any], three_pair: tuple[BaseCache, BaseCache]
) -> None:
    ours, theirs = three_pair
    keys = [f"key-{i}" for i in range(300)]
    theirs.set_many({key: f"theirs-{key}" for key in keys})
    assert ours.get_many(keys) == {key: f"theirs-{key}" for key in keys}
    ours.set_many({key: f"ours-{key}" for key in keys})
    assert theirs.get_many(keys) == {key: f"ours-{key}" for key in keys}

    # Where each key physically is, asked of each server alone.
    holders: dict[str, str] = {}
    per_server = {}
    for server in three_memcached:
        with Client(server.address) as alone:
            found = alone.get_many([ours.make_key(key) for key in keys])
        per_server[server.address] = len(found)
        for made in found:
            assert made not in holders, "a key is on two servers"
            holders[made] = server.address
    assert len(holders) == len(keys)
    assert all(count > 50 for count in per_server.values()), per_server

    our_client = ours.client  # type: ignore[attr-defined]
    their_client = theirs._cache  # type: ignore[attr-defined]
    for key in keys:
        made = ours.make_key(key)
        host, port = their_client._get_client(made).server
        assert our_client.server_for(made) == f"{host}:{port}" == holders[made]


def test_three_servers_incr_decr_and_delete_across_backends(
    three_pair: tuple[BaseCache, BaseCache],
) -> None:
    ours, theirs = three_pair
    counters = {f"counter-{i}": i for i in range(30)}
    theirs.set_many(counters)
    for key, start in counters.items():
        assert ours.incr(key, 100) == start + 100
        assert theirs.decr(key, 1) == start + 99
    ours.delete_many(list(counters))
    assert theirs.get_many(list(counters)) == {}


def test_signed_pickle_refuses_unsigned_pickles_and_follows_key_rotation(memcached: Any) -> None:
    signed = {
        "BACKEND": BACKEND,
        "LOCATION": memcached.address,
        "OPTIONS": {"serializer": "signed_pickle"},
    }
    setting = {
        "default": signed,
        "theirs": {"BACKEND": PYMEMCACHE_BACKEND, "LOCATION": memcached.address},
    }
    with override_settings(CACHES=setting, SECRET_KEY="first-secret-key-for-tests"):
        ours, theirs = caches["default"], caches["theirs"]
        ours.set("mine", {"a": 1})
        assert ours.get("mine") == {"a": 1}
        theirs.set("forged", {"evil": True})  # a plain pickle: never loaded
        assert ours.get("forged", "miss") == "miss"
        ours.set_many({"text": "plain", "count": 3})  # str and int stay readable by all
        assert theirs.get_many(["text", "count"]) == {"text": "plain", "count": 3}
    with override_settings(
        CACHES=setting,
        SECRET_KEY="second-secret-key-for-tests",
        SECRET_KEY_FALLBACKS=["first-secret-key-for-tests"],
    ):
        assert caches["default"].get("mine") == {"a": 1}
    with override_settings(CACHES=setting, SECRET_KEY="third-secret-key-for-tests"):
        assert caches["default"].get("mine", "miss") == "miss"
