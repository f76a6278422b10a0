"""Pickle with an HMAC signature, so a writable cache cannot become remote code execution."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Sequence
from typing import Any

import attrs

from layered_cache.errors import ConfigurationError
from layered_cache.serialization._base import FLAG_PICKLE, unreadable
from layered_cache.serialization.pickle import PickleSerializer

__all__ = ["FLAG_SIGNED_PICKLE", "SignedPickleSerializer"]

#: Flags of a signed pickle. A reader that does not know the bit (Django's
#: ``PyMemcacheCache``) returns the raw bytes instead of unpickling them.
FLAG_SIGNED_PICKLE = 1 << 6

_DIGEST = hashlib.sha256
_MAC_SIZE = _DIGEST().digest_size
_MIN_KEY_BYTES = 16


def _derive(secret: str | bytes, salt: str) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not isinstance(raw, bytes) or len(raw) < _MIN_KEY_BYTES:
        raise ConfigurationError(
            f"SignedPickleSerializer: a signing key must be at least {_MIN_KEY_BYTES} bytes"
        )
    # Salting keeps signatures made here useless anywhere else the same secret is used.
    return hmac.new(salt.encode("utf-8"), raw, _DIGEST).digest()


def _key_bytes(key: Any) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


@attrs.frozen
class SignedPickleSerializer:
    """Pickle, signed with HMAC-SHA256, and never unpickling anything unsigned or altered.

    Unpickling runs code chosen by whoever wrote the bytes, so with plain
    pickle anyone who can write to memcached can run code in every process
    that reads it. This serializer signs each pickled value together with its
    key (so a value cannot be moved to another key either) and refuses, as a
    logged miss, any pickle whose signature does not verify. ``bytes``,
    ``str`` and ``int`` are stored plainly, as :class:`PickleSerializer` stores
    them (they cannot run code, and ``incr``/``decr`` need the digits).

    Args:
        key: the signing secret (at least 16 bytes; Django's backend derives it
            from ``SECRET_KEY``). Never shown in a repr.
        fallback_keys: older secrets still accepted for reading while a new key
            rolls out (signing always uses ``key``).
        salt: separates these signatures from other uses of the same secret.
        protocol: the pickle protocol for writing.

    Raises:
        ConfigurationError: a key is shorter than 16 bytes.

    Example:
        >>> signer = SignedPickleSerializer(key="a-long-enough-secret")
        >>> data, flags = signer.serialize("k", {"a": 1})
        >>> signer.deserialize("k", data, flags)
        {'a': 1}
    """

    key: str | bytes = attrs.field(repr=False)
    fallback_keys: Sequence[str | bytes] = attrs.field(default=(), repr=False, converter=tuple)
    salt: str = "layered_cache.serialization.SignedPickleSerializer"
    protocol: int = pickle.HIGHEST_PROTOCOL
    _plain: PickleSerializer = attrs.field(init=False, repr=False, eq=False)
    _secrets: tuple[bytes, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_plain", PickleSerializer(protocol=self.protocol))
        secrets = tuple(_derive(secret, self.salt) for secret in (self.key, *self.fallback_keys))
        object.__setattr__(self, "_secrets", secrets)

    def _mac(self, secret: bytes, key: Any, payload: bytes) -> bytes:
        return hmac.new(secret, _key_bytes(key) + b"\0" + payload, _DIGEST).digest()

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        """Return ``(bytes, flags)``; pickled values carry a signature."""
        data, flags = self._plain.serialize(key, value)
        if flags != FLAG_PICKLE:
            return data, flags
        return self._mac(self._secrets[0], key, data) + data, FLAG_SIGNED_PICKLE

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        """Return the value; refuse unsigned pickles and signatures that do not verify."""
        if flags == FLAG_SIGNED_PICKLE:
            mac, payload = value[:_MAC_SIZE], value[_MAC_SIZE:]
            for secret in self._secrets:
                if hmac.compare_digest(mac, self._mac(secret, key, payload)):
                    return pickle.loads(payload)
            raise unreadable(
                "SignedPickleSerializer",
                flags,
                "the signature does not verify (tampered with, moved from another key, "
                "or signed with a key this client does not have)",
            )
        if flags & FLAG_PICKLE:
            raise unreadable("SignedPickleSerializer", flags, "it is an unsigned pickle")
        return self._plain.deserialize(key, value, flags)
