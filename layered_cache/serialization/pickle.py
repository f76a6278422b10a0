"""pickle for arbitrary Python objects; bytes, str and int stored plainly, as pymemcache does."""

from __future__ import annotations

import pickle
from typing import Any

import attrs

from layered_cache.errors import SerializationError
from layered_cache.serialization._base import FLAG_PICKLE, read_shared, store_plain, unreadable

__all__ = ["PickleSerializer", "UnpicklableValueError"]


class UnpicklableValueError(SerializationError, pickle.PicklingError):
    """A value pickle cannot serialize; nothing was written.

    It is also a :class:`pickle.PicklingError`, as Django's cache API promises.
    """


def _check_protocol(_instance: object, _attribute: object, value: int) -> None:
    if not 0 <= value <= pickle.HIGHEST_PROTOCOL:
        raise SerializationError(
            f"PickleSerializer: protocol must be 0-{pickle.HIGHEST_PROTOCOL}, not {value}"
        )


@attrs.frozen
class PickleSerializer:
    """The default: any picklable value, wire-compatible with Django's ``PyMemcacheCache``.

    ``bytes`` are stored as they are (flags 0; empty bytes are pickled, because
    an empty unflagged item is memcached's "being recomputed" placeholder),
    ``str`` as UTF-8 (16), ``int``
    as decimal digits (2, so ``incr``/``decr`` work on them), and everything
    else pickled (1). It also reads the JSON documents (32) that a
    :class:`~layered_cache.serialization.JSONSerializer` client writes.
    Subclasses of these types are pickled so they come back as themselves.

    Unpickling runs code chosen by whoever wrote the bytes: anyone who can
    write to your memcached can run code in every process that reads it.
    Keep memcached private (TLS and authentication help), or use
    :class:`~layered_cache.serialization.JSONSerializer`.

    Args:
        protocol: the pickle protocol for writing; reading accepts any.

    Example:
        >>> PickleSerializer().serialize("k", {"a": 1})[1]
        1
    """

    protocol: int = attrs.field(default=pickle.HIGHEST_PROTOCOL, validator=_check_protocol)

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        """Return ``(bytes, flags)`` for ``value``; see the class description."""
        stored = store_plain(value)
        if stored is not None:
            return stored
        try:
            return pickle.dumps(value, self.protocol), FLAG_PICKLE
        except Exception as exc:
            kind = type(value)
            raise UnpicklableValueError(
                f"cannot pickle a {kind.__module__}.{kind.__qualname__} value: {exc}"
            ) from exc

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        """Return the value stored as ``value`` with ``flags``."""
        if flags == FLAG_PICKLE:
            try:
                return pickle.loads(value)
            except Exception as exc:
                raise unreadable("PickleSerializer", flags, f"unpickling failed: {exc!r}") from exc
        # Plain values, and JSON documents a JSONSerializer client sharing the cache
        # wrote (JSON is safe to read).
        return read_shared("PickleSerializer", value, flags)
