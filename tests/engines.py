"""Both engines behind one test: a sync facade over :class:`AsyncClient`.

Tests written against the sync API run unchanged against the asyncio engine: each
coroutine method of the facade runs to completion on the facade's own event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from layered_cache import AsyncClient, Client

ENGINES = ["sync", "async"]


class AsyncFacade:
    """An :class:`AsyncClient` that sync test code can call (one event loop per facade)."""

    def __init__(self, client: AsyncClient) -> None:
        self.aclient = client
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.aclient, name)
        if inspect.iscoroutinefunction(attribute):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.run(attribute(*args, **kwargs))

            return call
        return attribute

    def namespace(self, name: Any) -> RunsOnLoop:
        """The AsyncClient's namespace view, its coroutines run on this facade's loop."""
        return RunsOnLoop(self.aclient.namespace(name), self.run)

    # pymemcache's aliases, as Client has them.
    def get_multi(self, keys: Any) -> Any:
        return self.run(self.aclient.get_many(keys))

    def set_multi(self, values: Any, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.aclient.set_many(values, *args, **kwargs))

    def delete_multi(self, keys: Any, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.aclient.delete_many(keys, *args, **kwargs))

    def close(self) -> None:
        self.run(self.aclient.aclose())

    def shutdown(self) -> None:
        if not self.loop.is_closed():
            self.close()
            self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()


class RunsOnLoop:
    """Any object whose coroutine methods sync test code calls, run by ``run``."""

    def __init__(self, target: Any, run: Callable[[Any], Any]) -> None:
        self.target = target
        self.run = run

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if inspect.iscoroutinefunction(attribute):
            return lambda *args, **kwargs: self.run(attribute(*args, **kwargs))
        return attribute


def client_maker(engine: str) -> Callable[..., Any]:
    """``Client`` for ``"sync"``; for ``"async"``, a factory of :class:`AsyncFacade`."""
    if engine == "sync":
        return Client
    return lambda *args, **kwargs: AsyncFacade(AsyncClient(*args, **kwargs))
