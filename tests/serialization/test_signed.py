"""Signed pickle: unsigned, tampered or moved values are refused; nothing is unpickled."""

from __future__ import annotations

from typing import Any

import pytest

from layered_cache import Client, ConfigurationError, SerializationError
from layered_cache.serialization import (
    FLAG_PICKLE,
    FLAG_SIGNED_PICKLE,
    PickleSerializer,
    SignedPickleSerializer,
)
from tests.servers import MemcachedProcess

KEY = "a-signing-key-long-enough"


class Exploit:
    """Unpickling this would call pytest.fail: the test fails if anything unpickles it."""

    def __reduce__(self) -> Any:
        return (pytest.fail, ("unpickled an unsigned value",))


def test_round_trip_and_plain_types() -> None:
    signer = SignedPickleSerializer(KEY)
    data, flags = signer.serialize("k", {"a": (1, 2)})
    assert flags == FLAG_SIGNED_PICKLE
    assert signer.deserialize("k", data, flags) == {"a": (1, 2)}
    assert signer.serialize("k", "text") == (b"text", 16)
    assert signer.serialize("k", 7) == (b"7", 2)


def test_unsigned_pickle_refused() -> None:
    data, flags = PickleSerializer().serialize("k", Exploit())
    assert flags == FLAG_PICKLE
    with pytest.raises(SerializationError, match="unsigned pickle"):
        SignedPickleSerializer(KEY).deserialize("k", data, flags)


@pytest.mark.parametrize("where", [0, 40, -1])
def test_tampered_bytes_refused(where: int) -> None:
    signer = SignedPickleSerializer(KEY)
    data, flags = signer.serialize("k", ["payload", 1, 2, 3])
    tampered = bytearray(data)
    tampered[where] ^= 0x01
    with pytest.raises(SerializationError, match="signature does not verify"):
        signer.deserialize("k", bytes(tampered), flags)


def test_value_moved_to_another_key_refused() -> None:
    signer = SignedPickleSerializer(KEY)
    data, flags = signer.serialize("session:alice", {"admin": False})
    with pytest.raises(SerializationError, match="signature"):
        signer.deserialize("session:bob", data, flags)


def test_other_key_refused_and_rotation_accepted() -> None:
    old = SignedPickleSerializer("the-old-signing-key-123")
    data, flags = old.serialize("k", [1])
    with pytest.raises(SerializationError):
        SignedPickleSerializer(KEY).deserialize("k", data, flags)
    rotated = SignedPickleSerializer(KEY, fallback_keys=["the-old-signing-key-123"])
    assert rotated.deserialize("k", data, flags) == [1]


def test_short_keys_refused_and_hidden() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        SignedPickleSerializer("short")
    assert KEY not in repr(SignedPickleSerializer(KEY))


def test_real_server_attacker_writes_are_misses(memcached: MemcachedProcess) -> None:
    with (
        Client(memcached.address, serializer=SignedPickleSerializer(KEY)) as client,
        Client(memcached.address) as attacker,
    ):
        assert client.set("k", {"safe": True})
        assert client.get("k") == {"safe": True}
        attacker.set("k", Exploit())  # a plain pickle written by someone else
        assert client.get("k") is None  # refused, logged, never unpickled
        assert client.set("other", {"x": 1})
        assert client.get("other") == {"x": 1}
        # A plain pickle client cannot read signed values either (a miss, not garbage).
        assert attacker.get("other") is None
