"""Request encoders: the exact bytes of every command the clients send.

Pure functions from validated arguments to bytes. Keys arrive already encoded
and checked (``layered_cache._keys.encode_key``); the other arguments are
checked here, before anything could be sent, and refused with
:class:`~layered_cache.errors.InvalidArgumentError`. Each encoder says in its
docstring which :class:`~layered_cache.protocol.replies.Expect` kind its reply
is read with.

Classic commands are memcached's text protocol; the meta commands (``mg``,
``ms``, ``md``, ``ma``, ``mn``) are memcached 1.6's, see its
``doc/protocol.txt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from layered_cache.errors import InvalidArgumentError

__all__ = [
    "META_NOOP",
    "VERSION",
    "arithmetic",
    "cas",
    "check_expire",
    "check_flags",
    "check_non_negative",
    "delete",
    "flush_all",
    "get",
    "gets",
    "meta_arithmetic",
    "meta_delete",
    "meta_get",
    "meta_set",
    "stats",
    "store",
    "touch",
]

#: ``mn``: the meta no-op, answered ``MN``; ends a pipeline of quiet meta commands.
META_NOOP = b"mn\r\n"
#: ``version``, answered ``VERSION <x>``.
VERSION = b"version\r\n"

_MAX_FLAGS = 2**32 - 1


def check_expire(expire: object) -> int:
    """Return ``expire`` if it is an integer number of seconds (or a Unix time), else raise."""
    if type(expire) is not int:
        raise InvalidArgumentError(
            f"expire must be an integer number of seconds, not {type(expire).__name__} {expire!r}"
        )
    return expire


def check_flags(flags: object) -> int:
    """Return ``flags`` if memcached can store them (0 to 2**32-1), else raise."""
    if type(flags) is not int or not 0 <= flags <= _MAX_FLAGS:
        raise InvalidArgumentError(
            f"flags must be an integer from 0 to {_MAX_FLAGS}, not {flags!r}"
        )
    return flags


def check_non_negative(name: str, value: object) -> int:
    """Return ``value`` if it is a non-negative integer below 2**64, else raise."""
    if type(value) is not int or not 0 <= value < 2**64:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _check_cas(token: object) -> bytes:
    if type(token) is int and token >= 0:
        return b"%d" % token
    if isinstance(token, str):
        token = token.encode("ascii", "replace")
    if isinstance(token, bytes) and token.isdigit() and len(token) <= 20:
        return token
    raise InvalidArgumentError(
        f"cas must be the token gets() returned (digits only), not {token!r}"
    )


def _noreply(noreply: bool) -> bytes:
    return b" noreply\r\n" if noreply else b"\r\n"


# -- retrieval ----------------------------------------------------------------------------


def get(keys: Sequence[bytes]) -> bytes:
    """``get <key>*``; read with ``Expect.VALUES``."""
    return b"get " + b" ".join(keys) + b"\r\n"


def gets(keys: Sequence[bytes]) -> bytes:
    """``gets <key>*`` (values with their CAS tokens); read with ``Expect.VALUES``."""
    return b"gets " + b" ".join(keys) + b"\r\n"


# -- storage ------------------------------------------------------------------------------


def store(command: bytes, key: bytes, flags: int, expire: int, data: bytes, noreply: bool) -> bytes:
    """``set|add|replace|append|prepend <key> <flags> <expire> <bytes>``; ``Expect.STORE``."""
    return b"%s %s %d %d %d%s%s\r\n" % (
        command,
        key,
        flags,
        expire,
        len(data),
        b" noreply\r\n" if noreply else b"\r\n",
        data,
    )


def cas(key: bytes, flags: int, expire: int, data: bytes, token: object, noreply: bool) -> bytes:
    """``cas <key> <flags> <expire> <bytes> <token>``; read with ``Expect.STORE``."""
    return b"cas %s %d %d %d %s%s%s\r\n" % (
        key,
        flags,
        expire,
        len(data),
        _check_cas(token),
        _noreply(noreply),
        data,
    )


def delete(key: bytes, noreply: bool) -> bytes:
    """``delete <key>``; read with ``Expect.DELETE``."""
    return b"delete " + key + _noreply(noreply)


def arithmetic(command: bytes, key: bytes, delta: int, noreply: bool) -> bytes:
    """``incr|decr <key> <delta>``; read with ``Expect.ARITHMETIC``."""
    return b"%s %s %d%s" % (command, key, check_non_negative("value", delta), _noreply(noreply))


def touch(key: bytes, expire: int, noreply: bool) -> bytes:
    """``touch <key> <expire>``; read with ``Expect.TOUCH``."""
    return b"touch %s %d%s" % (key, check_expire(expire), _noreply(noreply))


# -- servers ------------------------------------------------------------------------------


def stats(args: Iterable[str]) -> bytes:
    """``stats [<group> ...]``; read with ``Expect.STATS``."""
    words = [arg.encode("ascii") for arg in args]
    for word in words:
        if not word or not word.isalnum():
            raise InvalidArgumentError(
                f"stats arguments are single words such as 'items' or 'slabs', not {word!r}"
            )
    return b" ".join([b"stats", *words]) + b"\r\n"


def flush_all(delay: int, noreply: bool) -> bytes:
    """``flush_all <delay>``; read with ``Expect.OK``."""
    return b"flush_all %d%s" % (check_non_negative("delay", delay), _noreply(noreply))


# -- meta -----------------------------------------------------------------------------------


def meta_get(key: bytes, flags: bytes) -> bytes:
    """``mg <key> <flags>``; ``Expect.META`` (or part of an ``Expect.META_BATCH``)."""
    return b"mg %s %s\r\n" % (key, flags)


def meta_set(key: bytes, data: bytes, flags: bytes) -> bytes:
    """``ms <key> <size> <flags>`` and the data; ``Expect.META`` (or in a batch)."""
    return b"ms %s %d %s\r\n%s\r\n" % (key, len(data), flags, data)


def meta_delete(key: bytes, flags: bytes) -> bytes:
    """``md <key> [<flags>]``; ``Expect.META`` (or in a batch)."""
    return b"md %s %s\r\n" % (key, flags) if flags else b"md %s\r\n" % key


def meta_arithmetic(key: bytes, flags: bytes) -> bytes:
    """``ma <key> <flags>``; read with ``Expect.META``."""
    return b"ma %s %s\r\n" % (key, flags)
