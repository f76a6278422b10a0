"""The serializer contract and the flag bits shared with pymemcache and Django."""

from __future__ import annotations

import json
from typing import Any, Protocol

import attrs
from pymemcache.serde import (
    FLAG_BYTES,
    FLAG_COMPRESSED,
    FLAG_INTEGER,
    FLAG_LONG,
    FLAG_PICKLE,
    FLAG_TEXT,
)

from layered_cache.errors import SerializationError

# The public names (layered_cache.serialization re-exports them); the helpers
# below the contract are the serializers' own.
__all__ = [
    "FLAG_BYTES",
    "FLAG_COMPRESSED",
    "FLAG_INTEGER",
    "FLAG_JSON",
    "FLAG_LONG",
    "FLAG_PICKLE",
    "FLAG_TEXT",
    "Serialized",
    "Serializer",
]

#: Our flag for JSON documents. pymemcache leaves bit 5 unused; a reader that
#: does not know it (Django's PyMemcacheCache) gets the raw JSON bytes back.
FLAG_JSON = 1 << 5


class Serializer(Protocol):
    """Turns values into bytes plus memcached flags, and back.

    This is pymemcache's "serde" contract, so any serializer here plugs into
    pymemcache and any pymemcache serde works here. The flags say how the
    bytes were made, so a reader never guesses: ``0`` bytes, ``1`` pickle,
    ``2`` int, ``4`` long, ``8`` compressed, ``16`` UTF-8 text (pymemcache's
    convention, which Django's ``PyMemcacheCache`` shares), ``32`` JSON.

    ``serialize`` raises :class:`~layered_cache.errors.SerializationError`
    for a value it cannot hold, before anything is written. ``deserialize``
    raises it for bytes it will not read; the client then logs the problem
    and answers as if the key were missing.
    """

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        """Return the bytes to store for ``value`` and their flags."""
        ...

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        """Return the value that ``value`` (stored with ``flags``) represents."""
        ...


@attrs.frozen
class Serialized:
    """A value its serializer already turned into bytes: a client stores it as it is.

    The clients serialize every value they store. Pass a ``Serialized`` instead
    when the serializing has to happen elsewhere, for example in a worker
    thread because pickling the value runs code that must not run in an event
    loop (Django refuses database queries there, and pickling a lazy
    ``QuerySet`` makes one). The bytes and flags must come from the client's
    own serializer, or readers will not understand them.

    Attributes:
        data: the bytes to store.
        flags: their flags, as the serializer returned them.

    Example:
        >>> from layered_cache.serialization import PickleSerializer
        >>> Serialized(*PickleSerializer().serialize("k", [1, 2])).flags
        1
    """

    data: bytes
    flags: int


#: What :func:`read_plain` answers for flags that are not a plain value's.
UNPLAIN: Any = object()


def store_plain(value: Any) -> tuple[bytes, int] | None:
    """``(bytes, flags)`` for non-empty bytes, str and int, stored as pymemcache stores them.

    Every client that shares pymemcache's flag convention (Django's
    ``PyMemcacheCache`` among them) reads these back, and ``incr``/``decr``
    work on the integers. None for any other value (empty bytes included: an
    empty unflagged item is memcached's "being recomputed" placeholder).
    """
    kind = type(value)
    if kind is bytes:
        return (value, FLAG_BYTES) if value else None
    if kind is str:
        return value.encode("utf-8"), FLAG_TEXT
    if kind is int:
        return b"%d" % value, FLAG_INTEGER
    return None


def read_plain(value: bytes, flags: int) -> Any:
    """The value :func:`store_plain` stored with ``flags``, or :data:`UNPLAIN` for other flags."""
    if flags == FLAG_BYTES:
        return value
    if flags == FLAG_TEXT:
        return value.decode("utf-8")
    if flags in (FLAG_INTEGER, FLAG_LONG):
        return int(value)
    return UNPLAIN


def read_shared(serializer: str, value: bytes, flags: int) -> Any:
    """What every serializer reads besides its own format: plain values and JSON documents.

    Other flags raise, saying why (compressed, pickled, unknown), in the name
    of ``serializer``.

    Raises:
        SerializationError: the bytes are not one of these, or not valid JSON.
    """
    plain = read_plain(value, flags)
    if plain is not UNPLAIN:
        return plain
    if flags == FLAG_JSON:
        try:
            return json.loads(value)
        except ValueError as exc:
            raise unreadable(serializer, flags, f"invalid JSON: {exc}") from exc
    if flags & FLAG_COMPRESSED:
        raise unreadable(serializer, flags, "it is compressed; configure a CompressedSerializer")
    if flags & FLAG_PICKLE:
        raise unreadable(serializer, flags, "it is a pickle, and this serializer never unpickles")
    raise unreadable(serializer, flags, "unknown flags")


def unreadable(serializer: str, flags: int, why: str) -> SerializationError:
    """The error for stored bytes whose flags ``serializer`` will not read."""
    return SerializationError(f"{serializer} cannot read a value stored with flags {flags}: {why}")
