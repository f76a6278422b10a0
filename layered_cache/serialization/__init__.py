"""Serializers: what the stored bytes mean (pickle or JSON), on pymemcache's flag convention.

Example:
    >>> from layered_cache.serialization import JSONSerializer
    >>> JSONSerializer().deserialize("k", b"[1,2]", 32)
    [1, 2]
"""

from layered_cache.serialization._base import (
    FLAG_BYTES,
    FLAG_COMPRESSED,
    FLAG_INTEGER,
    FLAG_JSON,
    FLAG_LONG,
    FLAG_PICKLE,
    FLAG_TEXT,
    Serialized,
    Serializer,
)
from layered_cache.serialization.compression import FLAG_ZSTD, CompressedSerializer
from layered_cache.serialization.json import JSONSerializer
from layered_cache.serialization.pickle import PickleSerializer, UnpicklableValueError
from layered_cache.serialization.signed import FLAG_SIGNED_PICKLE, SignedPickleSerializer

__all__ = [
    "CompressedSerializer",
    "FLAG_BYTES",
    "FLAG_COMPRESSED",
    "FLAG_INTEGER",
    "FLAG_JSON",
    "FLAG_LONG",
    "FLAG_PICKLE",
    "FLAG_SIGNED_PICKLE",
    "FLAG_TEXT",
    "FLAG_ZSTD",
    "JSONSerializer",
    "PickleSerializer",
    "Serialized",
    "Serializer",
    "SignedPickleSerializer",
    "UnpicklableValueError",
]
