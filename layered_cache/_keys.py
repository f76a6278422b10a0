"""Keys: the one place a key is checked and encoded before it reaches the wire.

The rule is Django's memcached rule, the stricter of Django's and pymemcache's:
a key is at most 250 bytes once UTF-8 encoded and contains no byte below 33
(space and control characters) and no DEL (127). A key breaking it could split
a command line in two (the CVE-2020-13254 class of bug), so it never leaves
the process.

A :class:`KeyPolicy` says what happens to a key that breaks the rule: the
``"strict"`` policy refuses it (:class:`~layered_cache.InvalidKeyError`), the
``"hash"`` policy stores it under a digest form. The same policy, bound to a
prefix, lays out the keys of a namespace. Every wire key this library makes
has one of these shapes (``M`` is the byte ``0xFF``, which UTF-8 text never
contains, so no ``str`` key can take a shape reserved for another)::

    <key>                                   a key used as it is (no M in it)
    <readable start> M <sha256 hex>         a key the hash policy digested
    <name> M <generation> M <key>           a key in a namespace
    <name> M ns                             a namespace's generation
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Final

from layered_cache.errors import ConfigurationError, InvalidKeyError

__all__ = [
    "KEY_POLICIES",
    "MARK",
    "MAX_KEY_LENGTH",
    "MAX_NAMESPACE_LENGTH",
    "KeyPolicy",
    "describe_key",
    "encode_key",
    "encode_keys",
    "generation_key",
    "key_policy",
    "key_problem",
    "namespace_name",
    "namespace_prefix",
]

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
    """``key`` as the bytes sent to memcached, or raise :class:`~layered_cache.InvalidKeyError`.

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


# -- key policies ---------------------------------------------------------------------------

#: The names :func:`key_policy` accepts.
KEY_POLICIES: Final = ("strict", "hash")

#: The byte that separates the parts of the keys this library lays out. UTF-8
#: never produces it, so a str key can never look like a digest or a namespace key.
MARK: Final = b"\xff"

#: The longest namespace name, in bytes (the rest of the 250 is left to its keys).
MAX_NAMESPACE_LENGTH: Final = 100

_DIGEST_LENGTH: Final = 64  # sha256, hex
# The readable start of a digest form: what is left of 250 bytes after MARK and the digest.
_READABLE_LENGTH: Final = MAX_KEY_LENGTH - len(MARK) - _DIGEST_LENGTH
# What the hash policy cannot send as it is: the strict rule's bytes, and MARK (a
# bytes key holding it could otherwise pass for one of the shapes above).
_UNUSABLE = re.compile(rb"[\x00-\x20\x7f\xff]")
_UNREADABLE = re.compile(r"[\x00-\x20\x7f]")


def _key_bytes(key: object) -> bytes:
    """A str or bytes key as bytes (lone surrogates kept, so distinct texts stay distinct)."""
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if type(key) is bytes:
        return key
    raise _refuse(key)


def _readable(data: bytes) -> bytes:
    """The start of ``data`` as valid, printable UTF-8 without spaces, for ``stats cachedump``."""
    text = _UNREADABLE.sub("_", data[:_READABLE_LENGTH].decode("utf-8", "replace"))
    cut = text.encode("utf-8")[:_READABLE_LENGTH]
    return cut.decode("utf-8", "ignore").encode("utf-8")  # no character cut in half


def _digest_form(label: bytes, prefix: bytes, data: bytes) -> bytes:
    """``<readable start> MARK <sha256 hex>`` for the key ``data`` under ``prefix``.

    The digest covers ``prefix MARK data``: a plain key's input starts with
    MARK, a namespaced one's with its name (never MARK), and a namespace
    prefix ends at its second MARK, so different keys never share an input.
    """
    digest = hashlib.sha256(prefix + MARK + data).hexdigest().encode("ascii")
    return _readable(label + data) + MARK + digest


class KeyPolicy:
    """What becomes of a key before it is sent: used as it is, refused, or digested.

    Made by :func:`key_policy`; :meth:`within` binds it to a namespace's prefix.
    An engine calls :attr:`encode` on every key, and :attr:`encode_many` on
    the keys of a batch.

    Attributes:
        name: ``"strict"`` or ``"hash"``.
        hashes: whether keys memcached cannot take are digested (else refused).
        encode: the key as the bytes sent to memcached; raises
            :class:`~layered_cache.InvalidKeyError` for a key the policy refuses.
        encode_many: the same for a list of keys, all checked before any is used.
    """

    __slots__ = ("_label", "_prefix", "_room", "encode", "encode_many", "hashes", "name")

    def __init__(self, name: str, *, prefix: bytes = b"", label: bytes = b"") -> None:
        self.name = name
        self.hashes = name == "hash"
        self._prefix = prefix
        self._label = label
        self._room = MAX_KEY_LENGTH - len(prefix)
        self.encode: Callable[[str | bytes], bytes]
        self.encode_many: Callable[[list[str | bytes]], list[bytes]]
        if self.hashes:
            self.encode, self.encode_many = self._hash, self._hash_many
        elif prefix:
            self.encode, self.encode_many = self._strict_within, self._strict_within_many
        else:
            # The default: the module's functions themselves, no extra call on the hot path.
            self.encode, self.encode_many = encode_key, encode_keys

    def within(self, prefix: bytes, label: bytes) -> KeyPolicy:
        """This policy for the keys under ``prefix`` (a namespace's), digests starting ``label``."""
        return KeyPolicy(self.name, prefix=prefix, label=label)

    def problem(self, key: object) -> str | None:
        """What this policy refuses in ``key``, or None when :attr:`encode` will take it."""
        if self.hashes:
            return None if isinstance(key, str) or type(key) is bytes else key_problem(key)
        problem = key_problem(key)
        if problem is None and self._prefix and len(_key_bytes(key)) > self._room:
            problem = _too_long_within(len(_key_bytes(key)), self._room)
        return problem

    def _strict_within(self, key: str | bytes) -> bytes:
        encoded = encode_key(key)
        if len(encoded) > self._room:
            raise InvalidKeyError(
                f"invalid memcached key ({describe_key(key)}): "
                f"{_too_long_within(len(encoded), self._room)}"
            )
        return self._prefix + encoded

    def _strict_within_many(self, keys: list[str | bytes]) -> list[bytes]:
        return [self._strict_within(key) for key in keys]

    def _hash(self, key: str | bytes) -> bytes:
        try:
            data = key.encode("utf-8") if isinstance(key, str) else key
        except UnicodeEncodeError:
            data = _key_bytes(key)
        else:
            if type(data) is not bytes:
                raise _refuse(key)
            if 0 < len(data) <= self._room and _UNUSABLE.search(data) is None:
                return self._prefix + data if self._prefix else data
        return _digest_form(self._label, self._prefix, data)

    def _hash_many(self, keys: list[str | bytes]) -> list[bytes]:
        try:
            encoded = [key.encode("utf-8") for key in keys]  # type: ignore[union-attr]
        except (AttributeError, UnicodeEncodeError):
            return [self._hash(key) for key in keys]
        if encoded and (
            _UNUSABLE.search(b"!".join(encoded)) is not None
            or max(map(len, encoded)) > self._room
            or min(map(len, encoded)) == 0
        ):
            return [self._hash(key) for key in keys]
        prefix = self._prefix
        return [prefix + raw for raw in encoded] if prefix else encoded

    def __repr__(self) -> str:
        return f"KeyPolicy({self.name!r})"


def _too_long_within(length: int, room: int) -> str:
    return (
        f"the key is {length} bytes long once UTF-8 encoded; in this namespace memcached "
        f"allows at most {room} (the namespace and its generation take the rest of 250)"
    )


_STRICT: Final = KeyPolicy("strict")
_HASH: Final = KeyPolicy("hash")


def key_policy(name: object) -> KeyPolicy:
    """The key policy called ``name``: ``"strict"`` or ``"hash"``.

    Raises:
        ConfigurationError: ``name`` is not one of :data:`KEY_POLICIES`.
    """
    if name == "strict":
        return _STRICT
    if name == "hash":
        return _HASH
    raise ConfigurationError(
        f"key_policy must be {' or '.join(repr(p) for p in KEY_POLICIES)}, not {name!r}"
    )


# -- namespaces -------------------------------------------------------------------------------


def namespace_name(name: object) -> bytes:
    """A namespace's name as bytes, or raise: a valid key of at most 100 bytes.

    Raises:
        InvalidKeyError: the name is not one (the message never shows it).
    """
    problem = key_problem(name)
    if problem is None:
        encoded = _key_bytes(name)
        if len(encoded) > MAX_NAMESPACE_LENGTH:
            problem = (
                f"the name is {len(encoded)} bytes long once UTF-8 encoded; "
                f"namespace names are at most {MAX_NAMESPACE_LENGTH}"
            )
        elif MARK in encoded:
            problem = "the name contains the byte 0xff, which separates a namespace from its keys"
        else:
            return encoded
    raise InvalidKeyError(f"invalid namespace name ({describe_key(name)}): {problem}")


def generation_key(name: bytes) -> bytes:
    """The key that holds the generation of the namespace ``name`` (a :func:`namespace_name`)."""
    return name + MARK + b"ns"


def namespace_prefix(name: bytes, generation: bytes) -> tuple[bytes, bytes]:
    """``(prefix, label)`` of the keys of ``name`` in ``generation``.

    The prefix starts their wire keys; the label, the readable start of their
    digest forms (``<name>:<generation>:``).
    """
    return name + MARK + generation + MARK, name + b":" + generation + b":"
