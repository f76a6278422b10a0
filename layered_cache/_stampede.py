"""get_or_set without a thundering herd: one caller recomputes, the others wait or serve stale.

With memcached's meta protocol (1.6+), a miss hands exactly one caller
fleet-wide the right to recompute (``mg ... N`` answers ``W`` once and ``Z`` to
everyone else until the value is written); ``R`` hands one caller an early
refresh of a hot key while everyone else keeps reading it; and a key marked
stale (``md ... I``) keeps being served while one caller refreshes it. The
winner writes with the CAS it read, so a value computed from an old state
never overwrites a newer one.

Where the server does not speak meta (older memcached, twemproxy), the same
shape is built from classic commands: ``add`` of a lease key decides the
winner, and waiters poll the key. That still gives one computation per miss
in the common case, but the lease is a second key and a waiter cannot tell a
stale value from a fresh one.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from layered_cache._connection import UNREADABLE
from layered_cache._keys import MAX_KEY_LENGTH, encode_key
from layered_cache._meta import MetaReply, meta_lease_get, meta_probe, meta_set
from layered_cache.errors import CacheConnectionError

if TYPE_CHECKING:
    from layered_cache._server import ServerNode
    from layered_cache.client import Client

__all__ = ["get_or_set", "speaks_meta"]

_MISSING: Any = object()
_FIRST_POLL = 0.002
_MAX_POLL = 0.05


def speaks_meta(node: ServerNode) -> bool:
    """Whether ``node``'s server speaks the meta protocol; asked once, then remembered.

    Raises:
        CacheConnectionError: the server could not be asked (nothing is remembered).
    """
    if node.meta is None:
        node.meta = node.probe(meta_probe)
    return node.meta


def _compute(default: Any) -> Any:
    return default() if callable(default) else default


def get_or_set(
    client: Client,
    key: str | bytes,
    default: Any,
    expire: int,
    *,
    wait_timeout: float,
    lease_ttl: int,
    refresh_ahead: int,
) -> Any:
    """See :meth:`layered_cache.Client.get_or_set`."""
    encoded = encode_key(key)
    node = client._node(key)
    try:
        meta = speaks_meta(node)
    except CacheConnectionError as error:
        if not client._absorb(error):
            raise
        return _compute(default)
    if not meta:
        return _classic(client, key, encoded, default, expire, wait_timeout, lease_ttl)
    deadline = time.monotonic() + wait_timeout
    poll = _FIRST_POLL
    while True:
        try:
            # Not idempotent: a resent lease read would meet its own placeholder.
            reply: MetaReply = node.run(meta_lease_get, False, encoded, lease_ttl, refresh_ahead)
        except CacheConnectionError as error:
            if not client._absorb(error):
                raise
            return _compute(default)
        if reply.won:
            return _recompute(client, node, key, encoded, default, expire, reply.cas)
        value = UNREADABLE
        if reply.value is not None:
            value = client._serde.deserialize(key, reply.value, reply.client_flags)
        if value is not UNREADABLE:
            return value  # a hit, or a stale value another caller is refreshing
        if not reply.win_taken:
            # Unreadable and nobody recomputing it: replace it ourselves.
            return _recompute(client, node, key, encoded, default, expire, reply.cas)
        if time.monotonic() >= deadline:
            # The winner is slow or gone: compute, but only fill the placeholder.
            return _recompute(client, node, key, encoded, default, expire, reply.cas)
        time.sleep(poll)
        poll = min(poll * 2, _MAX_POLL)


def _recompute(
    client: Client,
    node: ServerNode,
    key: str | bytes,
    encoded: bytes,
    default: Any,
    expire: int,
    cas: bytes,
) -> Any:
    value = _compute(default)
    data, flags = client.serializer.serialize(key, value)
    try:
        # With the CAS we read: a newer value written meanwhile is never overwritten.
        node.run(meta_set, True, encoded, data, flags, expire, cas)
    except CacheConnectionError as error:
        if not client._absorb(error):
            raise
    return value


def _lease_key(encoded: bytes) -> bytes:
    lease = encoded + b":lease"
    if len(lease) > MAX_KEY_LENGTH:
        lease = b"lease:" + hashlib.sha256(encoded).hexdigest().encode("ascii")
    return lease


def _classic(
    client: Client,
    key: str | bytes,
    encoded: bytes,
    default: Any,
    expire: int,
    wait_timeout: float,
    lease_ttl: int,
) -> Any:
    value = client.get(key, _MISSING)
    if value is not _MISSING:
        return value
    lease = _lease_key(encoded)
    deadline = time.monotonic() + wait_timeout
    poll = _FIRST_POLL
    while True:
        if client.add(lease, b"1", expire=lease_ttl):
            try:
                value = _compute(default)
                # add, not set: a value written while we computed is newer than ours.
                client.add(key, value, expire=expire)
            finally:
                client.delete(lease)
            return value
        time.sleep(poll)
        poll = min(poll * 2, _MAX_POLL)
        value = client.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if time.monotonic() >= deadline:
            value = _compute(default)
            client.add(key, value, expire=expire)  # never overwrite the winner's value
            return value
