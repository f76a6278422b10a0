"""A client's node list over time: what discovery found, when to ask again, what changed.

:class:`Membership` is the engine-independent half of discovery: the
strategy and the seeds, the last good list, when the next lookup is due
(every ``interval`` seconds, and sooner after a node failed), and what
diagnostics show. :func:`reconcile` turns a new list into the client's next
set of nodes, keeping the node objects (and so the pooled connections and
health records) of every node that stays. Nothing here does I/O; the
engines run the lookups (``sync/discovery.py``, ``aio/discovery.py``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from layered_cache._addresses import hash_name
from layered_cache.core.operations import N
from layered_cache.core.translate import translate
from layered_cache.discovery._base import Ask, Call, Discovery, DiscoveryFlow, Found
from layered_cache.errors import DiscoveryError, LayeredCacheError
from layered_cache.transport import format_address
from layered_cache.transport._base import Address

__all__ = ["FAILURE_GAP", "DiscoveryStatus", "LookupRun", "Membership", "reconcile"]

logger = logging.getLogger("layered_cache")

#: Seconds between two lookups a node failure asks for (at most; never more
#: often than the interval itself).
FAILURE_GAP = 1.0


class DiscoveryStatus(NamedTuple):
    """What a client's discovery has done, for diagnostics.

    Attributes:
        strategy: the discovery strategy's repr.
        seeds: the endpoints or names the client was given.
        nodes: the nodes in use now (``host:port``).
        version: the configuration version last reported (None for DNS and static).
        source: where the last good list came from.
        refreshed_at: ``time.time()`` of the last successful lookup (None: none yet).
        last_error: why the last lookup failed, or None if it succeeded.
        changes: how many times the node list changed.
    """

    strategy: str
    seeds: tuple[str, ...]
    nodes: tuple[str, ...]
    version: int | None
    source: str
    refreshed_at: float | None
    last_error: str | None
    changes: int


class Membership:
    """The discovery state one client shares between its refreshers (threads, event loops)."""

    def __init__(self, discovery: Discovery, seeds: tuple[Address, ...]) -> None:
        self.discovery = discovery
        self.seeds = seeds
        #: Held while a new list is reconciled and swapped in.
        self.lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.found = Found(seeds, None, "the servers given")
        self.refreshed_at: float | None = None
        self.last_error: str | None = None
        self.changes = 0
        self._attempted_at: float | None = None
        self._hinted = False
        self._wakers: list[Callable[[], None]] = []

    @property
    def interval(self) -> float:
        """The strategy's interval in seconds (0 means no background lookups)."""
        return float(self.discovery.interval)

    # -- when -----------------------------------------------------------------------------

    def due_in(self) -> float:
        """Seconds until the next lookup is due (0 or less: now)."""
        if self._attempted_at is None:
            return 0.0
        wait = self.interval
        if self._hinted:
            wait = min(wait, FAILURE_GAP)
        return self._attempted_at + wait - time.monotonic()

    def claim(self, *, force: bool = False) -> bool:
        """Whether the caller should run the lookup that is due now (only one caller does).

        ``force``: an explicit ``refresh()``, which always runs (and counts as the
        lookup that was due).
        """
        return self.claim_or_wait(force=force) == 0

    def claim_or_wait(self, *, force: bool = False) -> float:
        """0 when the caller is to run the lookup due now (as :meth:`claim`), else the
        seconds until the next one is due (a background refresher waits that long)."""
        with self._state_lock:
            wait = self.due_in()
            if wait > 0 and not force:
                return wait
            self._attempted_at = time.monotonic()
            self._hinted = False
            return 0.0

    def hint(self) -> None:
        """A node failed: look up sooner (a replaced node is found within :data:`FAILURE_GAP`)."""
        self._hinted = True
        for wake in list(self._wakers):
            wake()

    def add_waker(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` (from any thread) when a lookup becomes due early."""
        self._wakers.append(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake``."""
        if wake in self._wakers:
            self._wakers.remove(wake)

    # -- outcomes -------------------------------------------------------------------------

    def succeeded(self, found: Found, *, changed: bool) -> None:
        """Record a good list."""
        if self.last_error is not None:
            logger.warning("discovery answers again (%s)", found.source)
        self.found = found
        self.refreshed_at = time.time()
        self.last_error = None
        if changed:
            self.changes += 1
            logger.info(
                "discovery: %d node(s) from %s (version %s)",
                len(found.nodes),
                found.source,
                found.version,
            )

    @contextlib.contextmanager
    def in_background(self) -> Iterator[None]:
        """Around a background lookup: a failure never ends the refresher.

        A :class:`~layered_cache.errors.LayeredCacheError` was recorded and
        logged (the last good list stays); anything else is a bug, logged with
        its traceback.
        """
        try:
            yield
        except LayeredCacheError:
            pass
        except Exception:  # pragma: no cover - a bug must not end the refresher silently
            logger.exception("discovery: the background lookup failed")

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Around a lookup: a :class:`~layered_cache.errors.DiscoveryError` is recorded
        (:meth:`failed`), then raised on."""
        try:
            yield
        except DiscoveryError as error:
            self.failed(error)
            raise

    def failed(self, error: Exception) -> None:
        """Record a failed lookup: the last good list stays (logged once until one succeeds)."""
        message = str(error)
        if self.last_error is None:
            logger.warning("discovery failed; keeping the last good node list: %s", message)
        self.last_error = message

    def after_fork(self) -> None:
        """In a forked child: fresh locks, no wakers (the parent's refreshers are not here)."""
        self.lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._wakers = []
        self._attempted_at = None

    def status(self, nodes: list[str]) -> DiscoveryStatus:
        """A snapshot for diagnostics; ``nodes`` are the client's nodes now."""
        return DiscoveryStatus(
            strategy=repr(self.discovery),
            seeds=tuple(format_address(seed) for seed in self.seeds),
            nodes=tuple(nodes),
            version=self.found.version,
            source=self.found.source,
            refreshed_at=self.refreshed_at,
            last_error=self.last_error,
            changes=self.changes,
        )


class LookupRun:
    """One lookup flow being driven: the stepping both engines' drivers share.

    The driver calls :meth:`advance` while it returns True, performing
    ``step`` in between: it sets ``answer`` to what the step gave, or calls
    :meth:`fail` with what it raised. Then :meth:`result` is what the flow
    returned.

    Args:
        flow: the strategy's lookup.
        timeout: the client's exchange timeout, named in the error of an
            :class:`~layered_cache.discovery.Ask` that timed out.
    """

    __slots__ = ("_error", "_flow", "_timeout", "answer", "found", "step")

    def __init__(self, flow: DiscoveryFlow, timeout: float | None) -> None:
        self._flow = flow
        self._timeout = timeout
        self.step: Ask | Call | None = None
        self.found: Found | None = None
        #: What the last step gave, sent into the flow by the next :meth:`advance`.
        self.answer: Any = None
        self._error: BaseException | None = None

    def advance(self) -> bool:
        """Send ``answer`` (or throw the failure) into the flow; True while it has a step."""
        answer, error = self.answer, self._error
        self.answer = self._error = None
        try:
            self.step = self._flow.send(answer) if error is None else self._flow.throw(error)
        except StopIteration as done:
            self.found = done.value
            return False
        return True

    def fail(self, error: Exception) -> None:
        """The step failed with ``error``: it is thrown into the flow, an
        :class:`~layered_cache.discovery.Ask`'s
        translated (:func:`~layered_cache.core.translate.translate`) as a connection's."""
        step = self.step
        if isinstance(step, Ask):
            address = format_address(step.address)
            self._error = translate(error, address, self._timeout, first_use=True)
        else:
            self._error = error

    def result(self) -> Found:
        """What the finished flow returned."""
        if self.found is None:  # pragma: no cover - a driver bug, not a runtime condition
            raise RuntimeError("the lookup has not finished")
        return self.found


def reconcile(
    current: Mapping[str, N], found: tuple[Address, ...], build: Callable[[Address], N]
) -> tuple[dict[str, N], list[N]] | None:
    """The nodes for the list ``found``, and the nodes it drops; None when nothing changed.

    Nodes are keyed by their name on the hash ring (as the client's are), so a
    node that stays keeps its object: its pooled connections and its health.
    ``build(address)`` makes the node of an address that is new.
    """
    wanted: dict[str, Address] = {}
    for address in found:
        wanted.setdefault(hash_name(address), address)
    if wanted.keys() == current.keys():
        return None
    nodes: dict[str, Any] = {
        key: current[key] if key in current else build(address) for key, address in wanted.items()
    }
    removed = [node for key, node in current.items() if key not in wanted]
    return nodes, removed
