"""Key validation: the one place a key is checked and encoded before it reaches the wire.

The rule is Django's memcached rule, the stricter of Django's and pymemcache's:
a key is at most 250 bytes once UTF-8 encoded and contains no byte below 33
(space and control characters) and no DEL (127). A key breaking it could split
a command line in two (the CVE-2020-13254 class of bug), so it never leaves
the process.
"""

from __future__ import annotations

import re

from layered_cache.errors import InvalidKeyError

__all__ = ["MAX_KEY_LENGTH", "describe_key", "encode_key", "encode_keys", "key_problem"]

#: memcached's limit on the length of a key, in bytes.
MAX_KEY_LENGTH = 250

# Bytes 0-32 (control characters and space) and 127 (DEL). UTF-8 never
# produces them inside a multi-byte character, so checking bytes is exact.
_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f]")


def key_problem(key: object) -> str | None:
    """Say what is wrong with ``key``, or return None when it is a valid key."""
    if isinstance(key, str):
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:
            return "the key is not valid Unicode (it holds a lone surrogate)"
    elif isinstance(key, bytes):
        encoded = key
    else:
        return f"keys must be str or bytes, not {type(key).__name__}"
    if not encoded:
        return "the key is empty"
    if len(encoded) > MAX_KEY_LENGTH:
        return (
            f"the key is {len(encoded)} bytes long once UTF-8 encoded; "
            f"memcached allows at most {MAX_KEY_LENGTH}"
        )
    found = _FORBIDDEN.search(encoded)
    if found is not None:
        return (
            f"the key contains {found.group()!r} at byte {found.start()}; "
            "whitespace, control characters and DEL are not allowed"
        )
    return None


def describe_key(key: object) -> str:
    """What a key is, without showing it (keys can be session ids): ``"a str of 9 characters"``."""
    if isinstance(key, str):
        return f"a str of {len(key)} characters"
    if isinstance(key, bytes):
        return f"a bytes of {len(key)} bytes"
    return f"a {type(key).__name__}"


def _refuse(key: object) -> InvalidKeyError:
    return InvalidKeyError(f"invalid memcached key ({describe_key(key)}): {key_problem(key)}")


def encode_key(key: str | bytes) -> bytes:
    """Return ``key`` as the bytes sent to memcached, or raise :class:`InvalidKeyError`.

    Example:
        >>> encode_key("café:1")
        b'caf\\xc3\\xa9:1'
    """
    # The common case (a short, clean str) costs one encode, one length test
    # and one regex scan; the detailed diagnosis runs only on failure.
    try:
        encoded = key.encode("utf-8") if isinstance(key, str) else key
    except (AttributeError, UnicodeEncodeError):
        raise _refuse(key) from None
    if (
        type(encoded) is not bytes
        or not 0 < len(encoded) <= MAX_KEY_LENGTH
        or _FORBIDDEN.search(encoded) is not None
    ):
        raise _refuse(key)
    return encoded


def encode_keys(keys: list[str | bytes]) -> list[bytes]:
    """Encode and validate many keys at once (for batches); raise on the first bad one.

    The checks run over all keys together (one regex scan, one length scan),
    so a batch pays a fraction of the per-key cost; only a batch holding a bad
    key is re-checked key by key to name it.
    """
    try:
        encoded = [key.encode("utf-8") for key in keys]  # type: ignore[union-attr]
    except (AttributeError, UnicodeEncodeError):
        return [encode_key(key) for key in keys]
    if encoded and (
        _FORBIDDEN.search(b"!".join(encoded)) is not None
        or max(map(len, encoded)) > MAX_KEY_LENGTH
        or min(map(len, encoded)) == 0
    ):
        return [encode_key(key) for key in keys]
    return encoded
