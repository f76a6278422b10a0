"""Serializers: pymemcache's flag convention, refusals, and JSON never unpickling."""

from __future__ import annotations

import pickle
import threading
from decimal import Decimal
from typing import Any

import pytest
from pymemcache import serde

from layered_cache import SerializationError
from layered_cache.serialization import (
    FLAG_BYTES,
    FLAG_INTEGER,
    FLAG_JSON,
    FLAG_PICKLE,
    FLAG_TEXT,
    JSONSerializer,
    PickleSerializer,
)

PLAIN = [(b"\x00raw", FLAG_BYTES), ("tëxt", FLAG_TEXT), (12345678901234567890, FLAG_INTEGER)]


@pytest.mark.parametrize("serializer", [PickleSerializer(), JSONSerializer()])
@pytest.mark.parametrize(("value", "flags"), PLAIN)
def test_plain_types_use_pymemcache_flags(serializer: Any, value: object, flags: int) -> None:
    data, got = serializer.serialize("k", value)
    assert got == flags
    # Byte for byte what pymemcache (and so Django's PyMemcacheCache) writes
    # (pymemcache returns the digits of an int as str; they go out as ASCII).
    theirs, their_flags = serde.pickle_serde.serialize("k", value)
    assert (data, got) == (theirs.encode() if isinstance(theirs, str) else theirs, their_flags)
    assert serializer.deserialize("k", data, got) == value


@pytest.mark.parametrize(
    "value", [{"a": [1, 2.5, None]}, [1, "x"], True, 1.5, None, (1, 2), {1, 2}, Decimal("1.1")]
)
def test_pickle_round_trip_and_interop_with_pymemcache(value: object) -> None:
    ours = PickleSerializer()
    data, flags = ours.serialize("k", value)
    assert flags == FLAG_PICKLE
    assert ours.deserialize("k", data, flags) == value
    assert serde.pickle_serde.deserialize("k", data, flags) == value
    theirs = serde.pickle_serde.serialize("k", value)
    assert ours.deserialize("k", *theirs) == value


def test_bool_is_pickled_not_stored_as_int() -> None:
    data, flags = PickleSerializer().serialize("k", True)
    assert flags == FLAG_PICKLE
    assert PickleSerializer().deserialize("k", data, flags) is True


def test_unpicklable_value_raises_pickle_error() -> None:
    with pytest.raises(pickle.PicklingError) as caught:
        PickleSerializer().serialize("k", threading.Lock())
    assert isinstance(caught.value, SerializationError)


def test_pickle_protocol_validated() -> None:
    with pytest.raises(SerializationError, match="protocol"):
        PickleSerializer(protocol=99)


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"a": [1, 2]}, b'{"a":[1,2]}'), ([True, None, 1.5], b"[true,null,1.5]"), (False, b"false")],
)
def test_json_documents(value: object, expected: bytes) -> None:
    assert JSONSerializer().serialize("k", value) == (expected, FLAG_JSON)
    assert JSONSerializer().deserialize("k", expected, FLAG_JSON) == value


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), Decimal("1"), b"x".decode])
def test_json_refuses_what_it_cannot_hold(value: object) -> None:
    with pytest.raises(SerializationError, match="JSONSerializer cannot store"):
        JSONSerializer().serialize("k", value)


def test_json_never_unpickles() -> None:
    class Boom:
        def __reduce__(self) -> Any:
            return (pytest.fail, ("unpickled!",))

    data, flags = PickleSerializer().serialize("k", Boom())
    with pytest.raises(SerializationError, match="never unpickles"):
        JSONSerializer().deserialize("k", data, flags)


def test_compressed_values_are_refused_clearly() -> None:
    data, flags = serde.CompressedSerde(min_compress_len=1).serialize("k", "x" * 1000)
    with pytest.raises(SerializationError, match="compressed"):
        PickleSerializer().deserialize("k", data, flags)


def test_json_refuses_empty_bytes() -> None:
    with pytest.raises(SerializationError, match="empty bytes"):
        JSONSerializer().serialize("k", b"")
