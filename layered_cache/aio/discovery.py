"""Discovery for the asyncio engine: lookups on the event loop, one background task per loop.

:func:`run_lookup` drives a discovery strategy's flow: each
:class:`~layered_cache.discovery.Ask` on a new asyncio connection of its own
(through the client's transport and authenticator), each
:class:`~layered_cache.discovery.Call` (a resolver, which may block) in a
worker thread, so the loop never waits on it.

:class:`LoopRefreshers` keeps one task per event loop that uses the client,
started by the loop's first new connection (the client has no loop of its
own when it is made, and may be used from several). Each task sleeps until
the next lookup is due and runs it; when several loops share the client,
the first one due does the lookup (the membership hands it to one caller),
and all of them see the new ring. ``aclose()`` stops the task of the loop it
runs in; the loop's next new connection starts it again. A loop that ends
(:func:`asyncio.run` returning) cancels its task with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from layered_cache.aio.connection import AsyncConnection
from layered_cache.core.membership import LookupRun, Membership
from layered_cache.discovery._base import Ask, DiscoveryFlow, Found
from layered_cache.transport._base import Address

__all__ = ["LoopRefreshers", "run_lookup"]

logger = logging.getLogger("layered_cache")


async def run_lookup(
    flow: DiscoveryFlow,
    connect: Callable[[Address], Coroutine[Any, Any, AsyncConnection]],
    timeout: float | None,
) -> Found:
    """:func:`layered_cache.sync.discovery.run_lookup` on the event loop (see the module
    docstring); a :class:`~layered_cache.errors.DiscoveryError` when no usable list is found."""
    run = LookupRun(flow, timeout)
    while run.advance():
        step = run.step
        try:
            if isinstance(step, Ask):
                run.answer = await _converse(step, connect, timeout)
            elif step is not None:
                run.answer = await asyncio.to_thread(step.function)
        except Exception as exc:
            run.fail(exc)
    return run.result()


async def _converse(
    step: Ask,
    connect: Callable[[Address], Coroutine[Any, Any, AsyncConnection]],
    timeout: float | None,
) -> Any:
    """Run an :class:`Ask`'s conversation on a new connection of its own, within ``timeout``."""
    conn = await connect(step.address)
    try:
        async with asyncio.timeout(timeout):
            return await conn.run_flow(step.conversation)
    finally:
        conn.close()


class LoopRefreshers:
    """A client's background lookups, one task per event loop (see the module docstring)."""

    def __init__(
        self, membership: Membership, refresh: Callable[[], Coroutine[Any, Any, object]]
    ) -> None:
        self._membership = membership
        self._refresh = weakref.WeakMethod(refresh)
        self._tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )
        self._events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )
        membership.add_waker(self._wake_all)

    def ensure_running(self) -> None:
        """Start this loop's task unless it runs (or the strategy never refreshes)."""
        if not self._membership.interval:
            return
        loop = asyncio.get_running_loop()
        task = self._tasks.get(loop)
        if task is not None and not task.done():
            return
        event = self._events[loop] = asyncio.Event()
        self._tasks[loop] = loop.create_task(self._run(event), name="layered_cache-discovery")

    async def stop(self) -> None:
        """Stop this loop's task (and wait until it ended)."""
        loop = asyncio.get_running_loop()
        task = self._tasks.pop(loop, None)
        self._events.pop(loop, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wake_all(self) -> None:
        # Called from whichever thread saw a node fail.
        for loop, event in list(self._events.items()):
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)

    async def _run(self, event: asyncio.Event) -> None:
        membership = self._membership
        while True:
            delay = membership.claim_or_wait()
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), delay)
                event.clear()
                continue
            refresh = self._refresh()
            if refresh is None:
                return  # the client is gone
            with membership.in_background():
                await refresh()
            del refresh
