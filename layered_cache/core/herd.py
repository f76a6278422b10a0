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

These are flows (see :mod:`layered_cache.core.operations`): both engines run
them, sleeping and computing the default in their own way.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

from layered_cache.core.codec import MISS
from layered_cache.core.observer import Observer
from layered_cache.core.operations import Compute, Exchange, Flow, Key, Operations, ProbeMeta, Sleep
from layered_cache.errors import CacheConnectionError
from layered_cache.observability.events import HERD_LEASE_WAITED, HERD_LEASE_WON, HERD_STALE_SERVED
from layered_cache.protocol import Expect, MetaReply, requests

__all__ = ["absorbing", "get_or_set"]

_MISSING: Final[Any] = object()
_FIRST_POLL: Final = 0.002
_MAX_POLL: Final = 0.05


def get_or_set(
    ops: Operations[Any],
    key: Key,
    default: Any,
    expire: int,
    *,
    wait_timeout: float,
    lease_ttl: int,
    refresh_ahead: int,
) -> Flow[Any]:
    """See :meth:`layered_cache.Client.get_or_set`."""
    encoded = ops.keys.encode(key)
    requests.check_expire(expire)
    requests.check_non_negative("lease_ttl", lease_ttl)
    requests.check_non_negative("refresh_ahead", refresh_ahead)
    node = ops.node(key)
    try:
        if node.meta is None:
            yield ProbeMeta(node)
    except CacheConnectionError as error:
        if not ops.fail_silent.absorb(error):
            raise
        return (yield Compute(default))
    if not node.meta:
        return (yield from _classic(ops, key, encoded, default, expire, wait_timeout, lease_ttl))
    request = b"mg %s v f c t N%d" % (encoded, lease_ttl)
    if refresh_ahead:
        request += b" R%d" % refresh_ahead
    request += b"\r\n"
    started = time.monotonic()
    deadline = started + wait_timeout
    poll = _FIRST_POLL
    waited = False
    observer = ops.observer
    while True:
        try:
            # Not idempotent: a resent lease read would meet its own placeholder.
            reply: MetaReply = yield Exchange(node, request, Expect.META, idempotent=False)
        except CacheConnectionError as error:
            if not ops.fail_silent.absorb(error):
                raise
            return (yield Compute(default))
        if reply.won:
            _report(observer, HERD_LEASE_WON, node, encoded)
            return (yield from _recompute(ops, node, key, encoded, default, expire, reply.cas))
        value = MISS
        if reply.value is not None:
            value = ops.codec.decode(key, reply.value, reply.client_flags)
        if value is not MISS:
            _served(observer, node, encoded, reply, started if waited else None)
            return value  # a hit, or a stale value another caller is refreshing
        if not reply.win_taken or time.monotonic() >= deadline:
            _served(observer, node, encoded, None, started if waited else None)
            # Unreadable and nobody recomputing it, or the winner is slow or
            # gone: compute, but only fill the placeholder (CAS).
            return (yield from _recompute(ops, node, key, encoded, default, expire, reply.cas))
        yield Sleep(poll)
        poll = min(poll * 2, _MAX_POLL)
        waited = True


def _report(
    observer: Observer | None, kind: str, node: Any, encoded: bytes, since: float | None = None
) -> None:
    """Tell the observer (if any) what this caller did; ``since``: when its wait began."""
    if observer is not None:
        observer.herd(kind, node, encoded, 0.0 if since is None else time.monotonic() - since)


def _served(
    observer: Observer | None,
    node: Any,
    encoded: bytes,
    reply: MetaReply | None,
    waited_since: float | None,
) -> None:
    """After a wait (``waited_since``), or on a value being refreshed (``reply``): report it."""
    if waited_since is not None:
        _report(observer, HERD_LEASE_WAITED, node, encoded, waited_since)
    if reply is not None and (reply.stale or reply.win_taken):
        _report(observer, HERD_STALE_SERVED, node, encoded)


def _recompute(
    ops: Operations[Any],
    node: Any,
    key: Key,
    encoded: bytes,
    default: Any,
    expire: int,
    cas: bytes,
) -> Flow[Any]:
    value = yield Compute(default)
    data, flags = ops.codec.encode(key, value)
    try:
        # With the CAS we read: a newer value written meanwhile is never overwritten.
        request = requests.meta_set(encoded, data, b"T%d F%d C%s" % (expire, flags, cas))
        yield Exchange(node, request, Expect.META, idempotent=True)
    except CacheConnectionError as error:
        if not ops.fail_silent.absorb(error):
            raise
    return value


def _lease_key(ops: Operations[Any], key: Key, encoded: bytes) -> bytes:
    """``<key>:lease``, as the key policy lays it out (bytes: placed as it always was)."""
    lease = (key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key) + b":lease"
    if ops.keys.problem(lease) is not None:  # too long for the strict policy
        lease = b"lease:" + hashlib.sha256(encoded).hexdigest().encode("ascii")
    return lease


def absorbing(ops: Operations[Any], flow: Flow[Any], fallback: Any) -> Flow[Any]:
    """Run a sub-flow; in fail-silent mode a server failure gives ``fallback`` instead."""
    try:
        return (yield from flow)
    except CacheConnectionError as error:
        if not ops.fail_silent.absorb(error):
            raise
        return fallback


def _classic(
    ops: Operations[Any],
    key: Key,
    encoded: bytes,
    default: Any,
    expire: int,
    wait_timeout: float,
    lease_ttl: int,
) -> Flow[Any]:
    value = yield from absorbing(ops, ops.get(key, _MISSING), _MISSING)
    if value is not _MISSING:
        return value
    lease = _lease_key(ops, key, encoded)

    def add(name: Key, item: Any, ttl: int) -> Flow[bool]:
        return absorbing(
            ops,
            ops.ask(ops.store_step(b"add", name, item, ttl, False, None), ops.store_result),
            False,
        )

    def release() -> Flow[bool]:
        return absorbing(ops, ops.ask(ops.delete_step(lease, False), ops.delete_result), False)

    started = time.monotonic()
    deadline = started + wait_timeout
    poll = _FIRST_POLL
    observer = ops.observer
    node = ops.node(key)
    while True:
        if (yield from add(lease, b"1", lease_ttl)):
            # The lease is ours, but the previous holder may have stored the value
            # and released the lease since we last looked: look once more.
            value = yield from absorbing(ops, ops.get(key, _MISSING), _MISSING)
            if value is not _MISSING:
                yield from release()
                return value
            if observer is not None:
                observer.herd(HERD_LEASE_WON, node, encoded)
            try:
                value = yield Compute(default)
            except Exception:
                yield from release()
                raise
            # add, not set: a value written while we computed is newer than ours.
            yield from add(key, value, expire)
            yield from release()
            return value
        yield Sleep(poll)
        poll = min(poll * 2, _MAX_POLL)
        value = yield from absorbing(ops, ops.get(key, _MISSING), _MISSING)
        done = value is not _MISSING or time.monotonic() >= deadline
        if done and observer is not None:
            observer.herd(HERD_LEASE_WAITED, node, encoded, time.monotonic() - started)
        if value is not _MISSING:
            return value
        if time.monotonic() >= deadline:
            value = yield Compute(default)
            yield from add(key, value, expire)  # never overwrite the winner's value
            return value
