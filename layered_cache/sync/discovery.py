"""Discovery for the sync engine: lookups over blocking sockets, on a daemon thread.

:func:`run_lookup` drives a discovery strategy's flow: each
:class:`~layered_cache.discovery.Ask` on a new connection of its own
(opened through the client's transport and authenticated like any other),
each :class:`~layered_cache.discovery.Call` right here.

:class:`Refresher` is the client's background thread. It sleeps until the
next lookup is due (the strategy's ``interval``, or sooner after a node
failed), runs it, and sleeps again; cache calls never wait for it. It holds
the client only weakly (a dropped client ends it), stops on ``close()``, and
is started again by the next new connection: after ``close()``, and in a
forked child (gunicorn and Celery workers), whose first call connects afresh.
No thread is ever started inside a fork handler.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from layered_cache.core.membership import LookupRun, Membership
from layered_cache.discovery._base import Ask, DiscoveryFlow, Found
from layered_cache.sync.connection import Connection
from layered_cache.transport._base import Address

__all__ = ["Refresher", "run_lookup"]

logger = logging.getLogger("layered_cache")


def run_lookup(
    flow: DiscoveryFlow, connect: Callable[[Address], Connection], timeout: float | None
) -> Found:
    """Drive a lookup flow to its result (see the module docstring).

    Raises:
        DiscoveryError: the flow found no usable node list.
    """
    run = LookupRun(flow, timeout)
    while run.advance():
        step = run.step
        try:
            if isinstance(step, Ask):
                run.answer = _converse(step, connect)
            elif step is not None:
                run.answer = step.function()
        except Exception as exc:
            run.fail(exc)
    return run.result()


def _converse(step: Ask, connect: Callable[[Address], Connection]) -> Any:
    """Run an :class:`Ask`'s conversation on a new connection of its own."""
    conn = connect(step.address)
    try:
        return conn.run_flow(step.conversation)
    finally:
        conn.close()


class Refresher:
    """A client's background lookups (see the module docstring)."""

    def __init__(self, membership: Membership, refresh: Callable[[], object]) -> None:
        self._membership = membership
        self._refresh = weakref.WeakMethod(refresh)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        membership.add_waker(self._wake.set)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread unless it runs (or the strategy never refreshes in the background)."""
        thread = self._thread
        if (thread is not None and thread.is_alive()) or not self._membership.interval:
            return
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            stop = self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name="layered_cache-discovery", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it ends at once, or after the lookup it is running)."""
        with self._lock:
            if self._stop is not None:
                self._stop.set()
            self._thread = self._stop = None
        self._wake.set()

    def after_fork(self) -> None:
        """In a forked child: no thread, fresh locks; the next new connection starts one."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = self._stop = None
        self._membership.add_waker(self._wake.set)

    def _run(self, stop: threading.Event) -> None:
        membership = self._membership
        while not stop.is_set():
            delay = membership.claim_or_wait()
            if delay:
                self._wake.wait(delay)
                self._wake.clear()
                continue
            refresh = self._refresh()
            if refresh is None:
                return  # the client is gone
            with membership.in_background():
                refresh()
            del refresh
