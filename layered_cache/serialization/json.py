"""JSON for values other languages (and other clients) can read; never unpickles."""

from __future__ import annotations

import json
from typing import Any

import attrs

from layered_cache.errors import SerializationError
from layered_cache.serialization._base import FLAG_JSON, read_shared, store_plain

__all__ = ["JSONSerializer"]


@attrs.frozen
class JSONSerializer:
    """JSON documents: dicts, lists, str, int, float, bool and None; never pickle.

    ``bytes``, ``str`` and ``int`` are stored as :class:`PickleSerializer`
    stores them (flags 0, 16, 2), so Django's ``PyMemcacheCache`` reads them
    and ``incr``/``decr`` work. Other values are JSON (flags 32). A value
    JSON cannot hold (a set, a datetime, NaN, an object) raises
    :class:`~layered_cache.errors.SerializationError` and nothing is written.
    As always with JSON, tuples come back as lists and dict keys as strings.

    Empty ``bytes`` are refused: an empty item without flags is what
    memcached leaves while a value is being recomputed, and reads as a miss.

    A pickled value (flags 1) written by another client is never unpickled:
    reading it is treated as a miss and logged, so a writable cache cannot
    run code in this process.

    Args:
        sort_keys: write dict keys sorted (stable bytes for equal values).

    Example:
        >>> JSONSerializer().serialize("k", {"a": [1, 2]})
        (b'{"a":[1,2]}', 32)
    """

    sort_keys: bool = False

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        """Return ``(bytes, flags)`` for ``value``; see the class description."""
        stored = store_plain(value)
        if stored is not None:
            return stored
        kind = type(value)
        if kind is bytes:
            # An empty unflagged item is memcached's "being recomputed"
            # placeholder, which every reader treats as a miss; JSON has no
            # other way to hold bytes, so refuse rather than lose the value.
            raise SerializationError(
                "JSONSerializer cannot store empty bytes (they would read back as a "
                'miss); store "" or None instead'
            )
        try:
            text = json.dumps(
                value, separators=(",", ":"), allow_nan=False, sort_keys=self.sort_keys
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"JSONSerializer cannot store a {kind.__module__}.{kind.__qualname__} "
                f"value: {exc}. JSON holds dicts, lists, str, int, finite floats, "
                "bool and None"
            ) from exc
        return text.encode("utf-8"), FLAG_JSON

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        """Return the value stored as ``value`` with ``flags``; refuses pickles."""
        return read_shared("JSONSerializer", value, flags)
