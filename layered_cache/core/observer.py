"""The events policy: who listens, what one exchange reports, and listeners that fail.

Both engines call one :class:`Observer` (built by the clients' shared option
checks, ``core.config.client_config``, only when the client has
listeners or an ``on_write_failure`` hook; otherwise every engine sees None
and pays one ``is None`` test per call). The engines hand it each exchange
with the public method's name (:meth:`Observer.exchange`,
:meth:`Observer.aexchange`); the health records, the pools and the herd
flows report their happenings through :meth:`Observer.emit`.

Listeners are plain callables called inline, on the calling thread or task:
a listener must be quick and must not block (hand work to a queue). One that
raises is logged (once per burst of failures, with its traceback) and the
call goes on as if nothing happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

from layered_cache.core.translate import fail_silent_absorbs
from layered_cache.errors import AuthenticationError, ConfigurationError
from layered_cache.observability.events import (
    ConnectEvent,
    Event,
    HandshakeEvent,
    HerdEvent,
    OperationEvent,
    WriteFailureEvent,
)
from layered_cache.protocol import Expect
from layered_cache.protocol.commands import WRITE_COMMANDS, request_commands

__all__ = ["STORE_NAMES", "Listener", "Observer", "make_observer"]

logger = logging.getLogger("layered_cache")

#: A listener: called with each event.
Listener = Callable[[Any], object]
T = TypeVar("T")

#: The public method behind each storage command (``Client._write``'s events).
STORE_NAMES: Final = {
    command: command.decode() for command in (b"set", b"add", b"replace", b"append", b"prepend")
}

_clock: Final = time.perf_counter
_VALUES: Final = Expect.VALUES
# Builds an OperationEvent (a named tuple) without a Python frame.
_new_event: Final = tuple.__new__

# A failing listener is logged again after this long even if it never recovered.
_RELOG_AFTER: Final = 60.0


class _Burst:
    """A listener's current burst of failures: when it was last logged, how many since."""

    __slots__ = ("logged_at", "suppressed")

    def __init__(self, logged_at: float) -> None:
        self.logged_at = logged_at
        self.suppressed = 0


def _name(listener: object) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__qualname__


def _decode(keys: Iterable[bytes]) -> tuple[str, ...]:
    return tuple(key.decode("utf-8", "replace") for key in keys)


class Observer:
    """The listeners of one client, and how exchanges and happenings become events.

    Args:
        listeners: callables, each called with every event.
        include_keys: put the keys in ``key_names`` of the events that carry them.
        on_write_failure: called with a
            :class:`~layered_cache.observability.WriteFailureEvent` (keys always
            filled in) when fail-silent mode answers a failed write with False.
        fail_silent: whether the client absorbs outages (write failures are
            reported only then: otherwise the caller gets the error).
    """

    __slots__ = (
        "_bursts",
        "_one",
        "fail_silent",
        "include_keys",
        "listeners",
        "on_write_failure",
        "read",
    )

    def __init__(
        self,
        listeners: tuple[Listener, ...],
        *,
        include_keys: bool,
        on_write_failure: Callable[[WriteFailureEvent], object] | None,
        fail_silent: bool,
    ) -> None:
        self.listeners = listeners
        # What the read path calls: the one listener itself (the usual case), or emit.
        self._one: Callable[[Any], object] = listeners[0] if len(listeners) == 1 else self.emit
        self.include_keys = include_keys
        #: ``read(step, operation)``: :meth:`exchange` for a single-key read, chosen
        #: once (the lean ``_read`` unless keys go into the events).
        self.read: Callable[[Any, str], Any] = self.exchange if include_keys else self._read
        self.on_write_failure = on_write_failure
        self.fail_silent = fail_silent
        # id(listener) -> its burst of failures; only touched when a listener raises.
        self._bursts: dict[int, _Burst] = {}

    # -- dispatch -----------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Call every listener with ``event``; a listener that raises is logged, not raised."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self._listener_failed(listener, event)

    def _listener_failed(self, listener: Listener, event: object) -> None:
        """Log a listener's failure, at most once a minute per listener (with a count)."""
        now = time.monotonic()
        burst = self._bursts.get(id(listener))
        if burst is not None and now - burst.logged_at < _RELOG_AFTER:
            burst.suppressed += 1
            return
        more = f" ({burst.suppressed} more failures since)" if burst and burst.suppressed else ""
        self._bursts[id(listener)] = _Burst(now)
        # The event's repr never holds keys; the listener's own traceback is its own.
        logger.exception(
            "layered_cache listener %s raised on %s%s; the call went on, and "
            "further failures of this listener are not logged for %g s",
            _name(listener),
            type(event).__name__,
            more,
            _RELOG_AFTER,
        )

    # -- exchanges ------------------------------------------------------------------------

    def exchange(self, step: Any, operation: str) -> Any:
        """Perform ``step`` (an Exchange) on its node, reporting it as ``operation``."""
        start = _clock()
        try:
            reply = step.node.exchange(step)
        except Exception as error:
            self.exchanged(step, operation, start, None, error)
            raise
        self.exchanged(step, operation, start, reply, None)
        return reply

    def _read(self, step: Any, operation: str) -> Any:
        """:meth:`exchange` for a single-key read (``get``): the hot path, kept lean.

        One tuple for the event and no frame beyond the listener's own; the
        general :meth:`exchanged` runs only for failures.
        """
        node = step.node
        start = _clock()
        try:
            reply = node.exchange(step)
        except Exception as error:
            self.exchanged(step, operation, start, None, error)
            raise
        hits = len(reply)
        event = _new_event(
            OperationEvent, (operation, node.name, 1, hits, 1 - hits, _clock() - start, None, None)
        )
        one = self._one
        try:
            one(event)
        except Exception:  # (never from emit, which guards each listener itself)
            self._listener_failed(one, event)
        return reply

    def probe(self, node: Any, operation: str) -> bool:
        """``node.probe_meta()`` (does it speak meta?), reported as an exchange of no keys."""
        start = _clock()
        try:
            speaks: bool = node.probe_meta()
        except Exception as error:
            self.probed(node.name, operation, start, error)
            raise
        self.probed(node.name, operation, start, None)
        return speaks

    async def aprobe(self, node: Any, operation: str) -> bool:
        """:meth:`probe` for the asyncio engine's nodes."""
        start = _clock()
        try:
            speaks: bool = await node.probe_meta()
        except Exception as error:
            self.probed(node.name, operation, start, error)
            raise
        self.probed(node.name, operation, start, None)
        return speaks

    def probed(self, server: str, operation: str, start: float, error: Exception | None) -> None:
        """Report a finished meta probe of ``server`` (begun at ``start``, a perf_counter time)."""
        if self.listeners:
            error_name = None if error is None else type(error).__name__
            self.emit(OperationEvent(operation, server, 0, 0, 0, _clock() - start, error_name))

    async def aexchange(self, step: Any, operation: str) -> Any:
        """:meth:`exchange` for the asyncio engine's nodes."""
        start = time.perf_counter()
        try:
            reply = await step.node.exchange(step)
        except Exception as error:
            self.exchanged(step, operation, start, None, error)
            raise
        self.exchanged(step, operation, start, reply, None)
        return reply

    def exchanged(
        self, step: Any, operation: str, start: float, reply: Any, error: Exception | None
    ) -> None:
        """Report one finished exchange (begun at ``start``, a perf_counter time)."""
        duration = _clock() - start
        hits = misses = 0
        keys = step.keys
        commands = None
        if step.expect == Expect.VALUES:
            count = len(keys)
            if error is None:
                hits = len(reply)
                misses = count - hits
        else:
            commands = request_commands(step.request)
            count = sum(len(names) for _, names in commands)
            if step.expect == Expect.META and error is None and commands[0][0] == b"mg":
                # A herd read: a value is a hit, a lease (won or taken) a miss.
                found = reply.value is not None and not reply.won
                hits, misses = int(found), int(not found)
        server = step.node.name
        names = None
        if self.include_keys:
            names = (
                _decode(keys)
                if commands is None
                else tuple(n.decode("utf-8", "replace") for _, ks in commands for n in ks)
            )
        if self.listeners:
            self.emit(
                OperationEvent(
                    operation,
                    server,
                    count,
                    hits,
                    misses,
                    duration,
                    None if error is None else type(error).__name__,
                    names,
                )
            )
        if error is not None and self.fail_silent and fail_silent_absorbs(error):
            commands = request_commands(step.request) if commands is None else commands
            written = [key for command, ks in commands if command in WRITE_COMMANDS for key in ks]
            if written:
                self.write_failed(operation, server, written, error)

    def write_failed(
        self, operation: str, server: str, keys: list[bytes], error: Exception
    ) -> None:
        """Report writes of ``keys`` that failed and that fail-silent mode answers with False."""
        names = _decode(keys)
        event = WriteFailureEvent(operation, server, len(names), type(error).__name__, names)
        if self.listeners:
            self.emit(event if self.include_keys else _without_keys(event))
        hook = self.on_write_failure
        if hook is not None:
            try:
                hook(event)
            except Exception:
                logger.exception("layered_cache on_write_failure hook raised; the call went on")

    # -- connections and herds ------------------------------------------------------------

    def connected(self, server: str, auth: object, start: float, error: Exception | None) -> None:
        """Report a connection attempt begun at ``start`` (and its handshake, if it logs in)."""
        duration = time.perf_counter() - start
        if not self.listeners:
            return
        refused = _is_refusal(error)
        self.emit(
            ConnectEvent(server, duration, None if error is None or refused else _kind(error))
        )
        user = getattr(auth, "username", None)
        if user is not None and (error is None or refused):
            self.emit(
                HandshakeEvent(
                    server,
                    type(auth).__name__,
                    str(user),
                    ok=error is None,
                    error=None if error is None else _kind(error),
                )
            )

    def observed_connect(
        self, connect: Callable[[], T], server: str, auth: object
    ) -> Callable[[], T]:
        """``connect`` (a sync connection factory), reporting each attempt."""

        def observed() -> T:
            start = time.perf_counter()
            try:
                conn = connect()
            except Exception as error:
                self.connected(server, auth, start, error)
                raise
            self.connected(server, auth, start, None)
            return conn

        return observed

    async def aconnect(self, opening: Awaitable[T], server: str, auth: object) -> T:
        """Await ``opening`` (an asyncio connection being opened), reporting the attempt."""
        start = time.perf_counter()
        try:
            conn = await opening
        except Exception as error:
            self.connected(server, auth, start, error)
            raise
        self.connected(server, auth, start, None)
        return conn

    def herd(self, kind: str, node: Any, encoded: bytes, waited: float = 0.0) -> None:
        """Report what ``get_or_set`` did about a miss.

        (A :class:`~layered_cache.observability.HerdEvent` of ``kind``.)
        """
        if self.listeners:
            names = _decode((encoded,)) if self.include_keys else None
            self.emit(HerdEvent(kind, node.name, waited=waited, key_names=names))


def _without_keys(event: WriteFailureEvent) -> WriteFailureEvent:
    """``event`` without its key names (what listeners see without ``include_keys``)."""
    return WriteFailureEvent(event.operation, event.server, event.keys, event.error)


def _kind(error: Exception) -> str:
    return type(error).__name__


def _is_refusal(error: Exception | None) -> bool:
    return isinstance(error, AuthenticationError)


def _resolve(listener: object, what: str) -> Listener:
    if not callable(listener):
        raise ConfigurationError(
            f"{what} must be callables (a function, or an object with __call__), "
            f"not {type(listener).__name__}"
        )
    return listener


def make_observer(
    listeners: Iterable[object] | None,
    *,
    include_keys: bool,
    on_write_failure: object,
    fail_silent: bool,
) -> Observer | None:
    """The client's :class:`Observer`, or None when nothing listens (the zero-cost case).

    Raises:
        ConfigurationError: ``listeners`` is not a list of callables, or
            ``on_write_failure`` is not callable.
    """
    if listeners is None:
        chosen: tuple[Listener, ...] = ()
    elif (
        callable(listeners)
        or isinstance(listeners, str | bytes)
        or not isinstance(listeners, Iterable)
    ):
        raise ConfigurationError(
            f"listeners must be a list of callables, not {type(listeners).__name__}"
        )
    else:
        chosen = tuple(_resolve(listener, "listeners") for listener in listeners)
    if on_write_failure is not None and not callable(on_write_failure):
        raise ConfigurationError(
            f"on_write_failure must be a callable taking a WriteFailureEvent, "
            f"not {type(on_write_failure).__name__}"
        )
    if not chosen and on_write_failure is None:
        return None
    return Observer(
        chosen,
        include_keys=bool(include_keys),
        on_write_failure=on_write_failure,
        fail_silent=fail_silent,
    )
