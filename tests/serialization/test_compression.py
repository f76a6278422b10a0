"""Compression: only when it pays, flagged, bounded on read, interoperable with pymemcache."""

from __future__ import annotations

import os
import zlib

import pytest
from pymemcache import serde
from pymemcache.client.base import Client as PymemcacheClient

from layered_cache import Client, ConfigurationError
from layered_cache.serialization import (
    FLAG_COMPRESSED,
    FLAG_PICKLE,
    FLAG_TEXT,
    FLAG_ZSTD,
    CompressedSerializer,
    JSONSerializer,
)
from tests.servers import MemcachedProcess

COMPRESSIBLE = {"rows": ["the same words again and again"] * 4000}  # ~130 KB pickled


@pytest.mark.parametrize(("codec", "bit"), [("zlib", FLAG_COMPRESSED), ("zstd", FLAG_ZSTD)])
def test_compresses_large_values(codec: str, bit: int) -> None:
    serializer = CompressedSerializer(codec=codec)  # type: ignore[arg-type]
    data, flags = serializer.serialize("k", COMPRESSIBLE)
    assert flags == FLAG_PICKLE | bit
    assert len(data) < 5_000
    assert serializer.deserialize("k", data, flags) == COMPRESSIBLE


def test_small_and_incompressible_values_stay_plain() -> None:
    serializer = CompressedSerializer(min_size=100)
    assert serializer.serialize("k", "short") == (b"short", FLAG_TEXT)
    noise = os.urandom(5_000)
    assert serializer.serialize("k", noise) == (noise, 0)


def test_wraps_any_serializer() -> None:
    serializer = CompressedSerializer(JSONSerializer(), min_size=10)
    data, flags = serializer.serialize("k", {"a": "b" * 500})
    assert flags & FLAG_COMPRESSED
    assert serializer.deserialize("k", data, flags) == {"a": "b" * 500}


def test_decompression_bomb_refused() -> None:
    bomb = zlib.compress(b"\0" * 50_000_000)
    with pytest.raises(Exception, match="beyond max_size"):
        CompressedSerializer(max_size=1_000_000).deserialize("k", bomb, FLAG_COMPRESSED)


def test_unknown_codec() -> None:
    with pytest.raises(ConfigurationError, match='"zlib" or "zstd"'):
        CompressedSerializer(codec="lz4")  # type: ignore[arg-type]


def test_pymemcache_compressed_serde_interop(memcached: MemcachedProcess) -> None:
    theirs = PymemcacheClient(
        ("127.0.0.1", memcached.port), serde=serde.CompressedSerde(), allow_unicode_keys=True
    )
    with Client(memcached.address, serializer=CompressedSerializer()) as ours:
        assert ours.set("from-us", COMPRESSIBLE)
        assert theirs.get("from-us") == COMPRESSIBLE
        theirs.set("from-them", COMPRESSIBLE, noreply=False)
        assert ours.get("from-them") == COMPRESSIBLE
    theirs.close()


def test_wrapped_serializer_must_be_a_serializer() -> None:
    with pytest.raises(ConfigurationError, match="must be a serializer instance"):
        CompressedSerializer("json")  # type: ignore[arg-type]
