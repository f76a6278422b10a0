"""Serializers: what the stored bytes mean (pickle or JSON), on pymemcache's flag convention.

Example:
    >>> from layered_cache.serialization import JSONSerializer
    >>> JSONSerializer().deserialize("k", b"[1,2]", 32)
    [1, 2]
"""

from layered_cache.serialization import _base
from layered_cache.serialization._base import *  # noqa: F403 - the contract and its flags
from layered_cache.serialization.compression import FLAG_ZSTD, CompressedSerializer
from layered_cache.serialization.json import JSONSerializer
from layered_cache.serialization.pickle import PickleSerializer, UnpicklableValueError
from layered_cache.serialization.signed import FLAG_SIGNED_PICKLE, SignedPickleSerializer

__all__ = [
    "CompressedSerializer",
    "FLAG_SIGNED_PICKLE",
    "FLAG_ZSTD",
    "JSONSerializer",
    "PickleSerializer",
    "SignedPickleSerializer",
    "UnpicklableValueError",
]
__all__ += _base.__all__
__all__.sort()
