"""``Serialized``: a value serialized elsewhere (e.g. in a worker thread) is stored as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from layered_cache.serialization import JSONSerializer, PickleSerializer, Serialized
from tests.servers import MemcachedProcess


def test_both_engines_store_serialized_values_as_they_are(
    make: Callable[..., Any], memcached: MemcachedProcess
) -> None:
    client = make(memcached.address)
    data, flags = PickleSerializer().serialize("k", {"a": [1, 2]})
    assert client.set("k", Serialized(data, flags)) is True
    assert client.get("k") == {"a": [1, 2]}
    assert client.add("other", Serialized(b"12", 2)) is True
    assert client.incr("other", 1) == 13
    assert client.set_many({"m": Serialized(data, flags)}) == []
    assert client.get_many(["m"]) == {"m": {"a": [1, 2]}}
    assert client.get_or_set("h", Serialized(data, flags)) == Serialized(data, flags)
    assert client.get("h") == {"a": [1, 2]}


def test_the_serializer_is_not_asked_again(
    make: Callable[..., Any], memcached: MemcachedProcess
) -> None:
    # The JSON serializer would refuse a Serialized object; it is never given one.
    client = make(memcached.address, serializer=JSONSerializer())
    data, flags = JSONSerializer().serialize("k", [1, 2])
    assert client.set("k", Serialized(data, flags)) is True
    assert client.get("k") == [1, 2]
