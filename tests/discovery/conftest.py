"""Fixtures for discovery: a configuration endpoint in front of real memcached nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster_endpoint import ConfigEndpoint
from tests.engines import AsyncFacade
from tests.servers import MemcachedProcess


@pytest.fixture
def endpoint(three_memcached: list[MemcachedProcess]) -> Iterator[ConfigEndpoint]:
    """A configuration endpoint listing the first two of three flushed memcached nodes."""
    with ConfigEndpoint(three_memcached[:2]) as gateway:
        yield gateway


def wait_until(client: Any, condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Let ``client`` run (its event loop, for the asyncio engine) until ``condition()``.

    Returns the seconds it took; fails the test after ``timeout``.
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {client.discovery}")
        if isinstance(client, AsyncFacade):
            client.run(asyncio.sleep(0.02))
        else:
            time.sleep(0.02)
    return time.monotonic() - start


def idle(client: Any, seconds: float) -> None:
    """Let ``seconds`` pass with the client's background work running."""
    if isinstance(client, AsyncFacade):
        client.run(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)
