"""The value codec: a serializer, plus the rule that bytes it will not read are a miss.

A stored value written by another program (or an older release of this
one) must not take the application down, and a refused pickle must never be
retried with a looser reader: such a value is logged and read as a miss.
The serializer always receives the caller's key, as given.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from layered_cache.protocol import requests
from layered_cache.serialization._base import Serialized, Serializer

__all__ = ["MISS", "ValueCodec"]

logger = logging.getLogger("layered_cache")


class _Miss:
    """Stands for "no usable value": absent, unreadable, or a lease placeholder."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<miss>"


#: What :meth:`ValueCodec.decode` returns for bytes that are not a value.
MISS: Final[Any] = _Miss()


class ValueCodec:
    """Values to ``(bytes, flags)`` and back, with the serializer of a client."""

    __slots__ = ("_deserialize", "_serialize", "serializer")

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self._serialize = serializer.serialize
        self._deserialize = serializer.deserialize

    def encode(self, key: Any, value: Any, flags: int | None = None) -> tuple[bytes, int]:
        """``(data, flags)`` to store ``value`` under ``key``; ``flags`` overrides the serializer's.

        A :class:`~layered_cache.serialization.Serialized` value was serialized
        already (elsewhere, e.g. in a worker thread) and is stored as it is.

        Raises:
            SerializationError: the serializer cannot hold the value (nothing is sent).
            InvalidArgumentError: ``flags`` is not what memcached can store.
        """
        if type(value) is Serialized:
            data, value_flags = value.data, value.flags
        else:
            data, value_flags = self._serialize(key, value)
        if type(data) is not bytes:
            # pymemcache serdes may return str (e.g. the digits of an int).
            data = str(data).encode("ascii") if not isinstance(data, bytes) else bytes(data)
        if flags is not None:
            value_flags = requests.check_flags(flags)
        return data, value_flags

    def decode(self, key: Any, data: bytes, flags: int) -> Any:
        """The value ``data`` (stored with ``flags``) represents, or :data:`MISS`."""
        if not data and not flags:
            # An empty item with no flags is what memcached's meta protocol
            # leaves while one caller recomputes a value (mg ... N): a miss.
            return MISS
        try:
            return self._deserialize(key, data, flags)
        except Exception as exc:
            # The key is not logged: keys can be session ids.
            logger.warning("treating a stored value as a miss (flags %d): %s", flags, exc)
            return MISS
