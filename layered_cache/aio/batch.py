"""What the asyncio engine sends to one server in one turn of the event loop, as one batch.

Calls made in the same turn of the loop for the same server (32 tasks each
awaiting a ``get``, say) are not sent one by one: they are gathered into a
:class:`Batch` and written at once on one connection, their replies read in
order. On top of that pipelining, a batch asks memcached for less:

- single-key ``get`` calls are *autobatched*: their keys go out as one
  multi-get (each key once, however many calls asked for it), and each call
  gets the item of its own key;
- reads whose requests are byte for byte the same (a ``get_many`` of the same
  keys from several tasks) are sent once and answered with the same reply.

Writes are never merged: each is sent as it was made, in the order made.

Each request in flight has an *entry* that receives its reply: the call's
future itself (the common case), or one of the small classes here when one
reply answers several calls or one call waits for several replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from layered_cache.core.translate import ErrorReplyReceived
from layered_cache.protocol import ErrorReply, Expect

__all__ = [
    "FUTURE",
    "MAX_MERGED_KEYS",
    "Batch",
    "Counted",
    "Failed",
    "Pending",
    "deliver",
    "fail",
    "over",
]

#: The class of the futures :meth:`asyncio.AbstractEventLoop.create_future` makes.
FUTURE: Final = asyncio.Future

#: Keys per autobatched multi-get at most (more make another request in the same batch).
MAX_MERGED_KEYS: Final = 100

_VALUES: Final = Expect.VALUES


class Failed(Exception):
    """What a waiting call receives when its connection failed under it.

    Attributes:
        error: what the connection met (an ``OSError``, a timeout, a protocol error...).
        reused: the batch went out on a connection that had served before (a
            stale connection, then, if the server closed it).
    """

    def __init__(self, error: BaseException, *, reused: bool) -> None:
        super().__init__(error)
        self.error = error
        self.reused = reused


class _Shared:
    """One reply for several calls that sent the very same read."""

    __slots__ = ("waiters",)

    def __init__(self, waiters: list[asyncio.Future[Any]]) -> None:
        self.waiters = waiters


class _Merged:
    """An autobatched multi-get: ``{key: future or [futures]}``; each call gets its key's item."""

    __slots__ = ("waiters",)

    def __init__(self, waiters: dict[bytes, Any]) -> None:
        self.waiters = waiters


class Counted:
    """A call that sent ``count`` pipelined requests and waits for all their replies (a list)."""

    __slots__ = ("count", "error", "replies", "waiter")

    def __init__(self, waiter: asyncio.Future[Any], count: int) -> None:
        self.waiter = waiter
        self.count = count
        self.replies: list[Any] = []
        self.error: ErrorReply | None = None


def _settle(waiter: asyncio.Future[Any], reply: Any) -> None:
    if not waiter.done():
        if type(reply) is ErrorReply:
            waiter.set_exception(ErrorReplyReceived(reply))
        else:
            waiter.set_result(reply)


def deliver(entry: Any, reply: Any) -> bool:
    """Give ``reply`` to ``entry``; True when the entry has all its replies.

    A call that was cancelled meanwhile simply does not get it: the reply has
    been read all the same, so the next call on the connection reads its own.
    """
    kind = type(entry)
    if kind is FUTURE:
        _settle(entry, reply)
    elif kind is _Merged:
        _split(entry, reply)
    elif kind is _Shared:
        for waiter in entry.waiters:
            _settle(waiter, reply)
    else:
        return _count(entry, reply)
    return True


def _split(entry: _Merged, reply: Any) -> None:
    """An autobatched multi-get's reply: each call gets its key's item (or none)."""
    if type(reply) is ErrorReply:
        items: dict[bytes, Any] = {}
    else:
        items = {item[0]: item for item in reply}
    for key, waiters in entry.waiters.items():
        answer: Any
        if type(reply) is ErrorReply:
            answer = reply
        else:
            item = items.get(key)
            answer = [] if item is None else [item]
        if type(waiters) is list:
            for waiter in waiters:
                _settle(waiter, answer)
        else:
            _settle(waiters, answer)


def _count(entry: Counted, reply: Any) -> bool:
    if type(reply) is ErrorReply:
        if entry.error is None:
            entry.error = reply
    else:
        entry.replies.append(reply)
    entry.count -= 1
    if entry.count:
        return False
    _settle(entry.waiter, entry.error if entry.error is not None else entry.replies)
    return True


def _waiters_of(entry: Any) -> list[asyncio.Future[Any]]:
    kind = type(entry)
    if kind is FUTURE:
        return [entry]
    if kind is _Merged:
        found: list[asyncio.Future[Any]] = []
        for waiters in entry.waiters.values():
            found.extend(waiters if type(waiters) is list else (waiters,))
        return found
    if kind is _Shared:
        return list(entry.waiters)
    return [entry.waiter]


def fail(entry: Any, error: Callable[[], BaseException]) -> None:
    """Give every call still waiting on ``entry`` an exception made by ``error``."""
    for waiter in _waiters_of(entry):
        if not waiter.done():
            waiter.set_exception(error())


class Batch:
    """Requests for one connection, written at once, and who waits for each reply.

    Attributes:
        items: ``(entry, request, expect, keys, count)`` of each request that is
            answered, in order.
        noreply: ``(waiter, request)`` of each request that is not: its call is
            done once the batch is written.
    """

    __slots__ = ("items", "noreply")

    def __init__(self) -> None:
        self.items: list[tuple[Any, bytes, int, Any, int]] = []
        self.noreply: list[tuple[asyncio.Future[Any], bytes]] = []

    def add(
        self, waiter: asyncio.Future[Any], request: bytes, expect: int | None, count: int, keys: Any
    ) -> None:
        """One call's request(s), sent as they are."""
        if expect is None:
            self.noreply.append((waiter, request))
        elif count == 1:
            self.items.append((waiter, request, expect, keys, 1))
        else:
            self.items.append((Counted(waiter, count), request, expect, keys, count))

    def waiters(self) -> list[asyncio.Future[Any]]:
        """Every call this batch answers."""
        found = [waiter for waiter, _ in self.noreply]
        for item in self.items:
            found.extend(_waiters_of(item[0]))
        return found

    def abandoned(self) -> bool:
        """Every call it was made for is over already (cancelled): nothing needs sending."""
        return all(waiter.done() for waiter in self.waiters())

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Give every call still waiting an exception made by ``error`` (the batch is not sent)."""
        for waiter in self.waiters():
            if not waiter.done():
                waiter.set_exception(error())


def over(entry: Any) -> bool:
    """Whether every call ``entry`` answers is over already (cancelled before it was sent)."""
    if type(entry) is FUTURE:
        return bool(entry.done())
    return all(waiter.done() for waiter in _waiters_of(entry))


class Pending:
    """The calls one turn of the loop made for one server, until they are sent as a batch."""

    __slots__ = ("_gets", "_reads", "batch", "careful")

    def __init__(self) -> None:
        self.batch = Batch()
        #: Whether a request that must not be sent twice is among them (then the
        #: connection's socket is checked for an unhandled end-of-file first).
        self.careful = False
        #: Single-key gets: ``{key: future or [futures]}`` (autobatched when built).
        self._gets: dict[bytes, Any] = {}
        #: Reads sent so far, by request bytes: ``{request: index in batch.items}``.
        self._reads: dict[bytes, int] | None = None

    def add(
        self,
        waiter: asyncio.Future[Any],
        request: bytes,
        expect: int | None,
        count: int,
        keys: Any,
        idempotent: bool = True,
    ) -> None:
        """A call's request: reads made twice in this turn are sent once."""
        if not idempotent:
            self.careful = True
        if expect == _VALUES and count == 1:
            reads = self._reads
            if reads is None:
                reads = self._reads = {}
            index = reads.get(request)
            if index is not None:
                items = self.batch.items
                entry, request, expect, keys, count = items[index]
                if type(entry) is _Shared:
                    entry.waiters.append(waiter)
                else:
                    items[index] = (_Shared([entry, waiter]), request, expect, keys, count)
                return
            reads[request] = len(self.batch.items)
        self.batch.add(waiter, request, expect, count, keys)

    def add_get(self, waiter: asyncio.Future[Any], key: bytes) -> None:
        """A single-key ``get`` (an encoded key), autobatched with the others of this turn."""
        gets = self._gets
        waiters = gets.get(key)
        if waiters is None:
            gets[key] = waiter
        elif type(waiters) is list:
            waiters.append(waiter)
        else:
            gets[key] = [waiters, waiter]

    @property
    def empty(self) -> bool:
        """Whether no call has been added."""
        return not self._gets and not self.batch.items and not self.batch.noreply

    def build(self) -> Batch:
        """The batch to send: the calls' requests, then the autobatched gets."""
        batch = self.batch
        gets = self._gets
        if gets:
            keys = list(gets)
            for start in range(0, len(keys), MAX_MERGED_KEYS):
                chunk = keys[start : start + MAX_MERGED_KEYS]
                if len(chunk) == 1:
                    key = chunk[0]
                    waiters = gets[key]
                    entry = _Shared(waiters) if type(waiters) is list else waiters
                    batch.items.append((entry, b"get " + key + b"\r\n", _VALUES, (key,), 1))
                    continue
                merged = {key: gets[key] for key in chunk}
                request = b"get " + b" ".join(chunk) + b"\r\n"
                batch.items.append((_Merged(merged), request, _VALUES, merged, 1))
        return batch
