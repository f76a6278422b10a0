"""Compression around another serializer: zlib (standard library) or zstd (optional extra)."""

from __future__ import annotations

import zlib
from typing import Any, Literal

import attrs

from layered_cache.errors import ConfigurationError, SerializationError
from layered_cache.serialization._base import FLAG_COMPRESSED, Serializer, unreadable
from layered_cache.serialization.pickle import PickleSerializer

__all__ = ["FLAG_ZSTD", "CompressedSerializer"]

#: Flag bit of zstd-compressed values. zlib uses pymemcache's own bit (8), so
#: Django's ``PyMemcacheCache`` with pymemcache's ``CompressedSerde`` reads them;
#: zstd has a bit of its own so that no zlib reader mistakes it for zlib.
FLAG_ZSTD = 1 << 7

Codec = Literal["zlib", "zstd"]


def _check_codec(_instance: Any, _attribute: Any, value: str) -> None:
    if value not in ("zlib", "zstd"):
        raise ConfigurationError(
            f'CompressedSerializer: codec must be "zlib" or "zstd", not {value!r}'
        )
    if value == "zstd":
        try:
            import zstandard  # noqa: F401, PLC0415 - optional dependency
        except ImportError:
            raise ConfigurationError(
                'CompressedSerializer: codec "zstd" needs the zstandard package: '
                'pip install "layered-cache[zstd]"'
            ) from None


def _check_serializer(_instance: Any, _attribute: Any, value: Any) -> None:
    if not (
        callable(getattr(value, "serialize", None))
        and callable(getattr(value, "deserialize", None))
    ):
        raise ConfigurationError(
            "CompressedSerializer: serializer must be a serializer instance (with serialize() "
            f"and deserialize(), e.g. JSONSerializer()), not {value!r}"
        )


@attrs.frozen
class CompressedSerializer:
    """Compress what another serializer produces, when that pays.

    A value is compressed only when its serialized form is at least
    ``min_size`` bytes, and stored compressed only if that made it smaller;
    the flags say which happened, so reading never guesses. zlib values carry
    pymemcache's compressed flag (8) and are readable by Django's
    ``PyMemcacheCache`` configured with pymemcache's ``CompressedSerde``.

    Reading also accepts values this serializer would not have compressed
    (written by a plain client on the same cache), and values compressed with
    the other codec when it is installed.

    Args:
        serializer: the serializer whose output is compressed.
        codec: ``"zlib"`` (standard library) or ``"zstd"`` (faster, smaller;
            needs ``pip install "layered-cache[zstd]"``).
        min_size: values smaller than this many bytes are stored as they are.
        level: compression level (zlib 1-9, zstd 1-22); None for the codec's default.
        max_size: largest size a value may decompress to, in bytes, so that a
            hostile value cannot exhaust memory (a "decompression bomb").

    Raises:
        ConfigurationError: unknown codec, or zstd without the zstandard package.

    Example:
        >>> data, flags = CompressedSerializer().serialize("k", "x" * 1000)
        >>> len(data) < 1000, flags & 8 == 8
        (True, True)
    """

    serializer: Serializer = attrs.field(factory=PickleSerializer, validator=_check_serializer)
    codec: Codec = attrs.field(default="zlib", validator=_check_codec)
    min_size: int = attrs.field(default=400, validator=attrs.validators.ge(0))
    level: int | None = None
    max_size: int = attrs.field(default=64 * 1024 * 1024, validator=attrs.validators.gt(0))

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        """Serialize, then compress when the value is large enough and shrinks."""
        data, flags = self.serializer.serialize(key, value)
        if len(data) < self.min_size:
            return data, flags
        if self.codec == "zlib":
            packed = zlib.compress(data, -1 if self.level is None else self.level)
            bit = FLAG_COMPRESSED
        else:
            packed = _zstd_compress(data, self.level)
            bit = FLAG_ZSTD
        if len(packed) >= len(data):
            return data, flags
        return packed, flags | bit

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        """Decompress (bounded by ``max_size``) when the flags say so, then deserialize."""
        if flags & FLAG_COMPRESSED:
            value = self._inflate(value, flags)
            flags &= ~FLAG_COMPRESSED
        elif flags & FLAG_ZSTD:
            value = _zstd_decompress(value, self.max_size, flags)
            flags &= ~FLAG_ZSTD
        return self.serializer.deserialize(key, value, flags)

    def _inflate(self, value: bytes, flags: int) -> bytes:
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(value, self.max_size)
        except zlib.error as exc:
            raise unreadable("CompressedSerializer", flags, f"invalid zlib data: {exc}") from exc
        if inflater.unconsumed_tail:
            raise unreadable(
                "CompressedSerializer", flags, f"it inflates beyond max_size={self.max_size} bytes"
            )
        return data


def _zstd_compress(data: bytes, level: int | None) -> bytes:
    import zstandard  # noqa: PLC0415 - optional dependency, checked at construction

    return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)


def _zstd_decompress(value: bytes, max_size: int, flags: int) -> bytes:
    try:
        import zstandard  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise unreadable(
            "CompressedSerializer", flags, "it is zstd-compressed and zstandard is not installed"
        ) from None
    try:
        data: bytes = zstandard.ZstdDecompressor().decompress(value, max_output_size=max_size)
    except zstandard.ZstdError as exc:
        raise SerializationError(
            f"CompressedSerializer cannot read a value stored with flags {flags}: "
            f"invalid or oversized zstd data: {exc}"
        ) from exc
    if len(data) > max_size:
        raise unreadable("CompressedSerializer", flags, f"it inflates beyond max_size={max_size}")
    return data
