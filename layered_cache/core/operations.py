"""Every public method of the clients, as a flow of steps that an engine drives.

A flow is a generator: it validates and encodes its arguments, yields the
:class:`Exchange` (one request, its replies) it needs, receives the replies,
and returns the method's result. It never touches a socket, so the sync and
the asyncio engine run the very same flows; an engine only performs the
steps (:class:`Exchange`, :class:`Batch`, :class:`ProbeMeta`, :class:`Sleep`,
:class:`Compute`). A server failure is thrown into the flow at the ``yield``
and, unless the flow handles it, ends the call; the engine's driver then
applies fail-silent mode with the call's fallback value.

Everything refused before sending (keys, values, arguments) is refused here,
before the first step, so a bad call never reaches the wire.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar

import attrs

from layered_cache._keys import KeyPolicy, key_policy
from layered_cache._ring import Ring
from layered_cache.core.codec import MISS, ValueCodec
from layered_cache.core.health import FailSilent
from layered_cache.core.observer import Observer
from layered_cache.errors import CacheConnectionError, InvalidArgumentError
from layered_cache.protocol import Expect, MetaReply, requests

__all__ = [
    "FAILED",
    "NO_FALLBACK",
    "Batch",
    "Compute",
    "Exchange",
    "Flow",
    "Node",
    "Operations",
    "ProbeMeta",
    "Sleep",
]

Key: TypeAlias = str | bytes


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Marks a call without a fallback, whose failures are raised even in fail-silent mode.
NO_FALLBACK: Final[Any] = _Marker("NO_FALLBACK")
#: In a :class:`Batch` result: this server failed, and fail-silent mode absorbed it.
FAILED: Final[Any] = _Marker("FAILED")


class Node(Protocol):
    """What a flow needs of an engine's server object."""

    #: ``host:port``.
    name: str
    #: Whether the server speaks the meta protocol; None until asked (:class:`ProbeMeta`).
    meta: bool | None

    def retire(self) -> None:
        """Discovery removed the server: close its connections (busy ones as they come back)."""
        ...


N = TypeVar("N", bound=Node)


# One per call: as small as the slots it needs (no weak references), and no repr
# (requests and values carry keys); compared by identity.
@attrs.define(eq=False, repr=False, weakref_slot=False)
class Exchange:
    """Send ``request`` to ``node`` and read ``count`` replies of kind ``expect``.

    The engine answers with the reply (``count == 1``) or the list of replies,
    or with None when ``expect`` is None (a ``noreply`` write: nothing is read).

    Attributes:
        node: the engine's server object.
        request: the bytes to send.
        expect: the :class:`~layered_cache.protocol.replies.Expect` kind of each reply,
            or None.
        idempotent: safe to send again on a fresh connection if the pooled one
            turns out to be closed by the server.
        count: how many replies (pipelined requests).
        keys: for ``VALUES`` replies, the keys that may come back.
        admin: the command's name when it must run on a connection of its own
            (``stats``, ``flush_all``: proxies hang up on these).
    """

    node: Any
    request: bytes
    expect: int | None
    idempotent: bool
    count: int = 1
    keys: Any = None
    admin: str | None = None


@attrs.define(eq=False, repr=False, weakref_slot=False)
class Batch:
    """Several exchanges with different servers, sent at once; answered with a list.

    Each element of the answer is the exchange's reply, or :data:`FAILED` when
    that server failed and ``absorb`` let fail-silent mode take the failure.
    Without ``absorb`` (or outside fail-silent mode) the first failure is raised.
    """

    exchanges: list[Exchange]
    absorb: bool = attrs.field(default=True, kw_only=True)


@attrs.define(eq=False, weakref_slot=False)
class ProbeMeta:
    """Ask ``node`` once whether it speaks the meta protocol.

    (:func:`~layered_cache.core.connection_flows.meta_probe_flow`, on a connection
    of its own.)

    The engine sets ``node.meta`` and answers with it.
    """

    node: Any


@attrs.define(eq=False, weakref_slot=False)
class Sleep:
    """Wait ``seconds`` (a herd waiter polling); answered with None."""

    seconds: float


@attrs.define(eq=False, repr=False, weakref_slot=False)
class Compute:
    """Produce ``default``: the value itself, or what calling it returns (awaited if need be)."""

    default: Any


Step: TypeAlias = Exchange | Batch | ProbeMeta | Sleep | Compute
T = TypeVar("T")
#: A flow: yields steps, receives their answers, returns the method's result.
Flow: TypeAlias = Generator[Step, Any, T]

_STAT_FLOATS: Final = frozenset({"rusage_user", "rusage_system", "growth_factor"})
_STAT_TEXTS: Final = frozenset({"version", "inter", "stat_key_prefix", "libevent"})


def _stat_value(name: str, raw: bytes) -> Any:
    """A ``stats`` value as pymemcache gives it: a number where it is one, else a string."""
    text = raw.decode("ascii", "replace")
    if name in _STAT_TEXTS:
        return text
    try:
        return float(text) if name in _STAT_FLOATS else int(text)
    except ValueError:
        return text


class Operations(Generic[N]):
    """The flows of one client: its codec, its servers and how keys are placed on them."""

    def __init__(
        self,
        codec: ValueCodec,
        nodes: Mapping[str, N],
        fail_silent: FailSilent,
        keys: KeyPolicy | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.codec = codec
        self.nodes = dict(nodes)
        self.fail_silent = fail_silent
        #: What becomes of each key before it is sent (:class:`~layered_cache._keys.KeyPolicy`).
        self.keys = key_policy("strict") if keys is None else keys
        self._encode = self.keys.encode
        self._encode_many = self.keys.encode_many
        #: Where flows report what they did (herd events); None when nothing listens.
        self.observer = observer
        servers = list(self.nodes.values())
        # One server needs no hashing at all: the common case stays cheap.
        self._only: N | None = servers[0] if len(servers) == 1 else None
        self._ring = Ring(list(self.nodes))

    def with_keys(self, keys: KeyPolicy) -> Operations[N]:
        """These flows over the same servers and placement, with another key policy."""
        other = copy.copy(self)
        other.keys, other._encode, other._encode_many = keys, keys.encode, keys.encode_many
        return other

    # -- placement ------------------------------------------------------------------

    def node(self, key: Key) -> N:
        """The server that holds ``key`` (rendezvous hashing over the server names)."""
        only = self._only
        if only is not None:
            return only
        return self.nodes[self._ring.node_for(key)]

    def _groups(self, keys: list[Key], encoded: list[bytes]) -> list[tuple[N, dict[bytes, Key]]]:
        """``[(node, {encoded key: key})]``: the keys of a batch, by server, in first-seen order."""
        only = self._only
        if only is not None:
            return [(only, dict(zip(encoded, keys, strict=True)))]
        groups: dict[str, dict[bytes, Key]] = {}
        group_of = groups.get
        node_for = self._ring.node_for
        for key, raw in zip(keys, encoded, strict=True):
            name = node_for(key)
            group = group_of(name)
            if group is None:  # (not setdefault: it would make a dict for every key)
                group = groups[name] = {}
            group[raw] = key
        return [(self.nodes[name], group) for name, group in groups.items()]

    @staticmethod
    def _fan_out(exchanges: list[Exchange], *, absorb: bool = True) -> Flow[list[Any]]:
        replies: list[Any] = yield Batch(exchanges, absorb=absorb)
        return replies

    # -- reads ------------------------------------------------------------------------

    # Single-exchange calls come as a pair: ``<name>_step`` checks the arguments and
    # builds the one Exchange, ``<name>_result`` turns its reply into the result.
    # Engines call the pair directly (no generator on the hot path); the flow of
    # the same name composes them for flows that need the call as a step.

    def get_step(self, key: Key) -> Exchange:
        """``get <key>``."""
        encoded = self._encode(key)
        # (self.node(key), inline: this is the hot path)
        node = self._only or self.nodes[self._ring.node_for(key)]
        return Exchange(node, b"get " + encoded + b"\r\n", Expect.VALUES, True, 1, (encoded,))

    def get_result(self, key: Key, reply: list[Any], default: Any) -> Any:
        """The value of a ``get`` reply, or ``default``."""
        if not reply:
            return default
        value = self.codec.decode(key, reply[0][2], reply[0][1])
        return default if value is MISS else value

    def get(self, key: Key, default: Any) -> Flow[Any]:
        """``get <key>`` as a flow: the value, or ``default``."""
        reply = yield self.get_step(key)
        return self.get_result(key, reply, default)

    @staticmethod
    def ask(step: Exchange, result: Callable[[Any], T]) -> Flow[T]:
        """One exchange as a flow answering ``result(reply)`` (``store_result``, ...)."""
        reply = yield step
        return result(reply)

    def get_many(self, keys: Iterable[Key]) -> Flow[dict[Key, Any]]:
        """``get`` of many keys, one request per server: ``{key: value}`` of the hits."""
        found: dict[Key, Any] = yield from self._fetch_many(keys, cas=False)
        return found

    def gets_step(self, key: Key) -> Exchange:
        """``gets <key>``."""
        encoded = self._encode(key)
        request = requests.gets([encoded])
        return Exchange(self.node(key), request, Expect.VALUES, True, 1, (encoded,))

    def gets_result(
        self, key: Key, reply: list[Any], default: Any, cas_default: Any
    ) -> tuple[Any, Any]:
        """``(value, cas token)`` of a ``gets`` reply, or the defaults."""
        if not reply:
            return default, cas_default
        _, flags, data, token = reply[0]
        value = self.codec.decode(key, data, flags)
        if value is MISS:
            return default, cas_default
        return value, token

    def gets_many(self, keys: Iterable[Key]) -> Flow[dict[Key, tuple[Any, Any]]]:
        """``gets`` of many keys: ``{key: (value, cas token)}`` of the hits."""
        found: dict[Key, tuple[Any, Any]] = yield from self._fetch_many(keys, cas=True)
        return found

    def _fetch_many(self, keys: Iterable[Key], *, cas: bool) -> Flow[dict[Key, Any]]:
        """Ask every server for its keys at once: ``{key: value}`` of the hits.

        With ``cas``: ``{key: (value, cas token)}``.
        """
        keys = keys if isinstance(keys, list) else list(keys)
        encoded = self._encode_many(keys)  # every key, before anything is sent
        found: dict[Key, Any] = {}
        if not keys:
            return found
        groups = self._groups(keys, encoded)
        encode = requests.gets if cas else requests.get
        replies: list[Any] = yield Batch(
            [
                Exchange(node, encode(list(group)), Expect.VALUES, True, 1, group)
                for node, group in groups
            ]
        )
        decode = self.codec.decode
        for (_, group), reply in zip(groups, replies, strict=True):
            if reply is not FAILED:
                for raw, flags, data, token in reply:
                    key = group[raw]
                    value = decode(key, data, flags)
                    if value is not MISS:
                        found[key] = (value, token) if cas else value
        return found

    # -- writes -------------------------------------------------------------------------

    def store_step(
        self,
        command: bytes,
        key: Key,
        value: Any,
        expire: int,
        noreply: bool,
        flags: int | None,
    ) -> Exchange:
        """``set``/``add``/``replace``/``append``/``prepend``, checked and serialized."""
        encoded = self._encode(key)
        if type(expire) is not int:
            requests.check_expire(expire)  # raises, naming the problem
        data, value_flags = self.codec.encode(key, value, flags)
        request = requests.store(command, encoded, value_flags, expire, data, noreply)
        # Only a plain set is safe to send twice; with noreply no error can come
        # back to trigger a resend, so the connection is checked before sending.
        idempotent = command == b"set" and not noreply
        node = self._only or self.nodes[self._ring.node_for(key)]  # self.node(key), inline
        return Exchange(node, request, None if noreply else Expect.STORE, idempotent)

    @staticmethod
    def store_result(reply: Any) -> bool:
        """True when stored (a ``noreply`` write, with no reply, counts as stored)."""
        return reply is None or reply == b"STORED"

    def cas_step(
        self,
        key: Key,
        value: Any,
        token: Any,
        expire: int,
        noreply: bool,
        flags: int | None,
    ) -> Exchange:
        """``cas``, checked and serialized."""
        encoded = self._encode(key)
        requests.check_expire(expire)
        data, value_flags = self.codec.encode(key, value, flags)
        request = requests.cas(encoded, value_flags, expire, data, token, noreply)
        return Exchange(self.node(key), request, None if noreply else Expect.STORE, False)

    @staticmethod
    def cas_result(reply: Any) -> bool | None:
        """True stored, False someone wrote in between, None the key is missing."""
        if reply is None:
            return True  # noreply
        if reply == b"NOT_FOUND":
            return None
        return bool(reply == b"STORED")

    def set_many(
        self, values: Mapping[Key, Any], expire: int, noreply: bool, flags: int | None
    ) -> Flow[list[Key]]:
        """``set`` of many values, pipelined per server: the keys that were not stored.

        Every key and value is checked (and serialized) before anything is sent.
        Servers that speak meta get quiet ``ms`` commands, which only answer for
        failures; the others pipelined classic ``set`` commands.
        """
        requests.check_expire(expire)
        keys = list(values)
        encoded = self._encode_many(keys)
        encode = self.codec.encode
        items = {
            raw: encode(key, values[key], flags) for key, raw in zip(keys, encoded, strict=True)
        }
        if not keys:
            return []
        groups = self._groups(keys, encoded)
        failed: list[Key] = []
        # Ask each server once whether it speaks meta; one that cannot be asked fails here.
        usable = []
        for node, group in groups:
            if node.meta is None:
                try:
                    yield ProbeMeta(node)
                except CacheConnectionError as error:
                    self._unreachable(node, group, error, failed)
                    continue
            usable.append((node, group))
        exchanges = []
        # Whether each request went out as meta, read once: a probe still in flight
        # elsewhere may change node.meta before the replies are read.
        as_meta = [bool(node.meta) for node, _ in usable]
        for (node, group), meta in zip(usable, as_meta, strict=True):
            if meta:
                request = b"".join(
                    requests.meta_set(raw, items[raw][0], b"T%d F%d k q" % (expire, items[raw][1]))
                    for raw in group
                )
                exchanges.append(
                    Exchange(
                        node,
                        request + requests.META_NOOP,
                        Expect.META_BATCH,
                        idempotent=True,
                        keys=group,
                    )
                )
            else:
                request = b"".join(
                    requests.store(b"set", raw, items[raw][1], expire, items[raw][0], noreply)
                    for raw in group
                )
                exchanges.append(
                    Exchange(
                        node,
                        request,
                        None if noreply else Expect.STORE,
                        count=len(group),
                        idempotent=not noreply,
                    )
                )
        replies = yield from self._fan_out(exchanges)
        for (_, group), meta, reply in zip(usable, as_meta, replies, strict=True):
            if reply is FAILED:
                failed.extend(group.values())
            elif meta:
                failed.extend(group[r.flags["k"]] for r in reply if r.code != b"HD")
            elif reply is not None:
                lines = reply if len(group) > 1 else [reply]
                failed.extend(
                    key
                    for key, line in zip(group.values(), lines, strict=True)
                    if line != b"STORED"
                )
        return failed

    def _unreachable(
        self, node: N, group: dict[bytes, Key], error: CacheConnectionError, failed: list[Key]
    ) -> None:
        """A set_many server could not be asked: raise, or (fail-silent) count its keys failed."""
        if not self.fail_silent.absorb(error):
            raise error
        failed.extend(group.values())
        if self.observer is not None:
            self.observer.write_failed("set_many", node.name, list(group), error)

    def delete_step(self, key: Key, noreply: bool) -> Exchange:
        """``delete <key>``.

        Not resent: a delete that landed and lost its reply would answer
        ``NOT_FOUND`` the second time, and the call ``False``, a lie.
        """
        encoded = self._encode(key)
        expect = None if noreply else Expect.DELETE
        return Exchange(self.node(key), requests.delete(encoded, noreply), expect, False)

    @staticmethod
    def delete_result(reply: Any) -> bool:
        """True when the key was in the cache (a ``noreply`` delete counts as True)."""
        return reply is None or reply == b"DELETED"

    def delete_many(self, keys: Iterable[Key], noreply: bool) -> Flow[bool]:
        """``delete`` of many keys, pipelined per server: True once every server acknowledged."""
        keys = keys if isinstance(keys, list) else list(keys)
        encoded = self._encode_many(keys)  # every key, before anything is deleted
        if not keys:
            return True
        groups = self._groups(keys, encoded)
        replies = yield from self._fan_out(
            [
                Exchange(
                    node,
                    b"".join(requests.delete(raw, noreply) for raw in group),
                    None if noreply else Expect.DELETE,
                    count=len(group),
                    idempotent=not noreply,
                )
                for node, group in groups
            ]
        )
        return all(reply is not FAILED for reply in replies)

    def touch_step(self, key: Key, expire: int, noreply: bool) -> Exchange:
        """``touch <key> <expire>``."""
        encoded = self._encode(key)
        request = requests.touch(encoded, expire, noreply)
        return Exchange(self.node(key), request, None if noreply else Expect.TOUCH, not noreply)

    @staticmethod
    def touch_result(reply: Any) -> bool:
        """True when the key was in the cache (a ``noreply`` touch counts as True)."""
        return reply is None or reply == b"TOUCHED"

    # -- counters -------------------------------------------------------------------------

    def count_step(self, key: Key, delta: int, noreply: bool, *, decrement: bool) -> Exchange:
        """``incr``/``decr`` (never resent: the first attempt may have counted)."""
        encoded = self._encode(key)
        request = requests.arithmetic(b"decr" if decrement else b"incr", encoded, delta, noreply)
        return Exchange(self.node(key), request, None if noreply else Expect.ARITHMETIC, False)

    @staticmethod
    def count_result(reply: Any) -> int | None:
        """The new value, None when the counter is missing (or for ``noreply``)."""
        return reply if type(reply) is int else None

    def count_or_create(
        self, key: Key, delta: int, initial: int, expire: int, *, decrement: bool
    ) -> Flow[int | None]:
        """Count; if the counter is missing, add it holding ``initial``; if someone added
        it in between, count again. One round trip for an existing counter."""
        for name, number in (("value", delta), ("initial", initial)):
            requests.check_non_negative(name, number)
        if type(expire) is not int:
            raise InvalidArgumentError(f"expire must be an integer, not {expire!r}")
        encoded = self._encode(key)
        node = self.node(key)
        # Stored as an int (flags 2), so get() reads a number.
        data, flags = self.codec.encode(key, initial)
        if node.meta is None:
            yield ProbeMeta(node)
        for _ in range(2):
            if node.meta:
                request = requests.meta_arithmetic(
                    encoded, b"D%d v MD" % delta if decrement else b"D%d v" % delta
                )
                reply: Any = yield Exchange(node, request, Expect.META, idempotent=False)
                counted = int(reply.value) if reply.code == b"VA" and reply.value else None
            else:
                command = b"decr" if decrement else b"incr"
                reply = yield Exchange(
                    node,
                    requests.arithmetic(command, encoded, delta, False),
                    Expect.ARITHMETIC,
                    idempotent=False,
                )
                counted = reply if type(reply) is int else None
            if counted is not None:
                return counted
            if node.meta:
                request = requests.meta_set(encoded, data, b"T%d F%d ME" % (expire, flags))
                reply = yield Exchange(node, request, Expect.META, idempotent=False)
                added = reply.code == b"HD"
            else:
                request = requests.store(b"add", encoded, flags, expire, data, False)
                added = (yield Exchange(node, request, Expect.STORE, idempotent=False)) == b"STORED"
            if added:
                return initial
        return None

    # -- meta ----------------------------------------------------------------------------

    def mark_stale(self, key: Key, stale_ttl: int) -> Flow[bool]:
        """``md <key> I T<stale_ttl>`` (a plain ``delete`` without meta): True when it existed."""
        encoded = self._encode(key)
        requests.check_expire(stale_ttl)
        node = self.node(key)
        if node.meta is None:
            yield ProbeMeta(node)
        if node.meta:
            reply: MetaReply = yield Exchange(
                node,
                requests.meta_delete(encoded, b"I T%d" % stale_ttl),
                Expect.META,
                idempotent=True,
            )
            return reply.code == b"HD"
        reply_line = yield Exchange(
            node, requests.delete(encoded, False), Expect.DELETE, idempotent=False
        )
        return bool(reply_line == b"DELETED")

    # -- servers ---------------------------------------------------------------------------

    def stats(self, args: tuple[str, ...]) -> Flow[dict[str, dict[str, Any]]]:
        """``stats [args]`` of every server: ``{server: {name: value}}``."""
        request = requests.stats(args)
        nodes = list(self.nodes.values())
        replies = yield from self._fan_out(
            [
                Exchange(node, request, Expect.STATS, idempotent=True, admin="stats")
                for node in nodes
            ],
            absorb=False,
        )
        report: dict[str, dict[str, Any]] = {}
        for node, raw in zip(nodes, replies, strict=True):
            stats = {}
            for name, value in raw.items():
                text = name.decode("ascii", "replace")
                stats[text] = _stat_value(text, value)
            report[node.name] = stats
        return report

    def version(self) -> Flow[dict[str, str]]:
        """``version`` of every server: ``{server: "1.6.18"}``."""
        nodes = list(self.nodes.values())
        replies = yield from self._fan_out(
            [Exchange(node, requests.VERSION, Expect.VERSION, idempotent=True) for node in nodes],
            absorb=False,
        )
        return {
            node.name: reply.decode("ascii", "replace")
            for node, reply in zip(nodes, replies, strict=True)
        }

    def flush_all(self, delay: int, noreply: bool) -> Flow[bool]:
        """``flush_all [delay]`` on every server: True when all agreed."""
        request = requests.flush_all(delay, noreply)
        nodes = list(self.nodes.values())
        replies = yield from self._fan_out(
            [
                Exchange(
                    node,
                    request,
                    None if noreply else Expect.OK,
                    idempotent=True,
                    admin="flush_all",
                )
                for node in nodes
            ],
            absorb=False,
        )
        return noreply or all(reply == b"OK" for reply in replies)
