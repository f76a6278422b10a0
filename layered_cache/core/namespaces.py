"""Namespaces: a group of keys invalidated at once, by moving it to a new generation.

memcached cannot delete keys by pattern. A namespace gets the same effect
without touching its keys: every key in it is stored under the namespace's
current *generation* (``<name> 0xFF <generation> 0xFF <key>``, see
:mod:`layered_cache._keys`), and the generation itself, a random number, is
stored in memcached (``<name> 0xFF ns``), on the one server placement gives
it. :meth:`NamespaceFlows.invalidate` stores a new random number, so every key
of the old generation reads as a miss from then on, fleet-wide, and ages out
by LRU.

A generation is created on first use with ``add``, so racing creators agree
on one (the loser reads the winner's); and since it is random, a generation
that memcached evicted comes back as one no key was written in: a namespace
never reads another generation's data. Each process remembers a generation it
read for ``namespace_cache_ttl`` seconds (:class:`GenerationCache`, shared by
every client of the same servers), which is how long another process may keep
using a generation this one just left.

A namespace view runs the client's own methods on a copy of the client
whose flows lay keys out under the current generation
(:meth:`NamespaceFlows.client`). If the generation cannot be read, the copy's
every server fails as the generation's server did, so the call fails as it
would if its own server had failed: it raises, or in fail-silent mode answers
its fallback, and never reads another generation's data.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from layered_cache._keys import generation_key, namespace_name, namespace_prefix
from layered_cache.core import herd
from layered_cache.core.operations import Exchange, Flow, Operations
from layered_cache.errors import CacheConnectionError, ServerResponseError
from layered_cache.protocol import Expect, requests

__all__ = [
    "GENERATIONS",
    "GenerationCache",
    "NamespaceFlows",
    "fleet_of",
    "forget_generations",
    "view_method",
]

# Generations are random numbers below this: two generations of one namespace
# meet with a chance of one in 2**62.
_START_BELOW: Final = 2**62
# Attempts to read or make a generation when other processes keep changing it
# (or memcached evicts it) between two of our commands.
_ATTEMPTS: Final = 3


def _fresh_generation() -> bytes:
    return b"%d" % (secrets.randbelow(_START_BELOW) + 1)


class GenerationCache:
    """The generations this process has read, each remembered for a short while.

    One per process (:data:`GENERATIONS`), shared by every client of the same
    servers, so an :meth:`~NamespaceFlows.invalidate` through one client is
    seen at once by the others (the Django backend's sync and async clients,
    for one). At most ``size`` namespaces are remembered; the least recently
    read is forgotten first.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, bytes], tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, fleet: Any, key: bytes, ttl: float) -> bytes | None:
        """The generation under ``key`` if it was read less than ``ttl`` seconds ago."""
        entry = self._entries.get((fleet, key))
        if entry is None or time.monotonic() - entry[1] >= ttl:
            return None
        return entry[0]

    def remember(self, fleet: Any, key: bytes, generation: bytes) -> None:
        """Note that the namespace's generation is ``generation``, as of now."""
        with self._lock:
            self._entries[(fleet, key)] = (generation, time.monotonic())
            self._entries.move_to_end((fleet, key))
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, fleet: Any, key: bytes) -> None:
        """Forget the namespace's generation: the next call reads it from memcached."""
        with self._lock:
            self._entries.pop((fleet, key), None)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()

    def forget_fleet(self, fleet: Any) -> None:
        """Forget every generation of these servers (they were flushed)."""
        with self._lock:
            for entry in [entry for entry in self._entries if entry[0] == fleet]:
                del self._entries[entry]


#: The process's generations (see :class:`GenerationCache`).
GENERATIONS: Final = GenerationCache()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=GENERATIONS.after_fork)


def fleet_of(ops: Operations[Any]) -> frozenset[str]:
    """What identifies a client's servers in :data:`GENERATIONS` (not their order)."""
    return frozenset(ops.nodes)


def forget_generations(ops: Operations[Any]) -> None:
    """After ``flush_all``: the generations this process remembers for these servers are gone."""
    GENERATIONS.forget_fleet(fleet_of(ops))


C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])


class NamespaceFlows(Generic[C]):
    """One namespace of a client: its generation, and the client ``C`` to run a call on.

    Each call of a namespace view first runs :meth:`client`, which finds the
    namespace's generation (in the process's :class:`GenerationCache`, else
    from memcached) and answers a copy of the client whose flows lay every key
    out under that generation; the view then calls the client's own method on
    that copy.

    Args:
        current: the client's flows (asked at every call: discovery may change them).
        over: the client over other flows (its ``_over``).
        name: the namespace's name: a valid memcached key of at most 100 bytes.
        ttl: seconds a generation read is used before it is read again.

    Raises:
        InvalidKeyError: ``name`` is not a valid namespace name.
    """

    def __init__(
        self,
        current: Callable[[], Operations[Any]],
        over: Callable[[Operations[Any]], C],
        name: str | bytes,
        ttl: float,
    ) -> None:
        # The client's flows are asked for at each call: discovery may swap in
        # other servers (and a new placement) at any time.
        self._current_ops = current
        self._over = over
        self._name = namespace_name(name)
        self._key = generation_key(self._name)
        self._ttl = ttl
        # (client flows, their fleet, generation, the client in that generation), last used.
        self._last: tuple[Operations[Any], frozenset[str], bytes, C] | None = None

    # -- the generation -----------------------------------------------------------------

    @property
    def _ops(self) -> Operations[Any]:
        return self._current_ops()

    def _fleet(self, ops: Operations[Any]) -> frozenset[str]:
        last = self._last
        return last[1] if last is not None and last[0] is ops else fleet_of(ops)

    def _exchange(self, request: bytes, expect: int, *, idempotent: bool) -> Exchange:
        node = self._ops.node(self._key)
        return Exchange(node, request, expect, idempotent, 1, (self._key,))

    def _store(self, command: bytes, generation: bytes) -> Exchange:
        request = requests.store(command, self._key, 0, 0, generation, False)
        return self._exchange(request, Expect.STORE, idempotent=command == b"set")

    def generation(self) -> Flow[bytes]:
        """The namespace's current generation (made, with ``add``, if it has none)."""
        fleet = self._fleet(self._ops)
        found = GENERATIONS.lookup(fleet, self._key, self._ttl)
        if found is not None:
            return found
        for _ in range(_ATTEMPTS):
            reply = yield self._exchange(requests.get([self._key]), Expect.VALUES, idempotent=True)
            if reply:
                found = reply[0][2]
                if not (found.isdigit() and len(found) <= 20):
                    # Not a generation (written by something else): start a new one.
                    found = _fresh_generation()
                    yield self._store(b"set", found)
                break
            fresh = _fresh_generation()
            if (yield self._store(b"add", fresh)) == b"STORED":
                found = fresh
                break
            # Another process made it first: read theirs.
        if found is None:
            raise ServerResponseError(
                "the namespace's generation kept disappearing between reading and making it",
                server=self._ops.node(self._key).name,
            )
        GENERATIONS.remember(fleet, self._key, found)
        return found

    def invalidate(self) -> Flow[bool]:
        """Move the namespace to a new generation; True when memcached stored it.

        False, too, when fail-silent mode absorbs a failure of its server.
        """
        return herd.absorbing(self._ops, self._invalidate(), False)

    def _invalidate(self) -> Flow[bool]:
        """See :meth:`invalidate`.

        A plain ``set`` of a fresh random generation: invalidations racing
        each other end on the last one written, and each leaves a generation
        no key was ever written in. This process forgets the old generation
        first, so that even when the move fails no call here uses it again
        without asking memcached.
        """
        fleet = self._fleet(self._ops)
        GENERATIONS.forget(fleet, self._key)
        fresh = _fresh_generation()
        reply = yield self._store(b"set", fresh)
        if reply != b"STORED":
            return False
        GENERATIONS.remember(fleet, self._key, fresh)
        return True

    # -- the client of a call -------------------------------------------------------------

    def client(self) -> Flow[C]:
        """The client to run one call on: its flows lay keys out in the current generation.

        When the generation cannot be read, the client answered is one whose
        every server fails with that error (reporting nothing more to
        listeners: the failed read was reported): the call
        then raises it, or in fail-silent mode answers its fallback, as when
        its own server fails.
        """
        ops = self._ops
        try:
            generation = yield from self.generation()
        except CacheConnectionError as error:
            node = _Unreachable(ops.node(self._key).name, error)
            return self._over(Operations(ops.codec, {node.name: node}, ops.fail_silent, ops.keys))
        last = self._last
        if last is not None and last[0] is ops and last[2] == generation:
            return last[3]
        keys = ops.keys.within(*namespace_prefix(self._name, generation))
        client = self._over(ops.with_keys(keys))
        self._last = (ops, self._fleet(ops), generation, client)
        return client


class _Unreachable:
    """Every server of a call whose namespace generation could not be read.

    Each step on it (an exchange, a single ``get``, a meta probe) raises the
    failure of the generation's read, as a server that cannot be reached does.
    """

    __slots__ = ("_error", "name")

    #: Never asked: the probe fails.
    meta = None

    def __init__(self, name: str, error: CacheConnectionError) -> None:
        self.name = name
        self._error = error

    def _fail(self, *args: object) -> Any:
        raise self._error

    exchange = get = checkout = probe_meta = _fail

    def retire(self) -> None:
        """Nothing to close."""


def view_method(call: F, method: Callable[..., Any], view: str) -> F:
    """``call``, presented as the client's ``method`` in the namespace view class ``view``.

    Its signature and annotations are ``method``'s (``__wrapped__``, which
    :func:`inspect.signature` and the documentation follow); its docstring
    points to the client's.
    """
    module = call.__module__
    functools.update_wrapper(call, method)
    call.__module__ = module
    client, name = method.__qualname__.rsplit(".", 1)
    call.__qualname__ = f"{view}.{name}"
    call.__doc__ = f":meth:`~layered_cache.{client}.{name}` in this namespace."
    return call
