"""Fixtures for the scale-out tests: twemproxy (nutcracker) over real memcached, and a fleet
of five memcached processes for client-side placement.

``nutcracker`` fronts the three shared memcached of ``tests/conftest.py`` (flushed for every
test) and must not be stopped or reconfigured by a test; tests that kill, pause or eject a
server build their own proxy with ``nutcracker_factory`` over ``memcached_factory``
processes.  A missing ``nutcracker`` binary fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import pytest

from tests.servers import HarnessError, MemcachedProcess, ServerGroup
from tests.twemproxy import NutcrackerProcess, find_nutcracker

#: The hash function the fixtures configure.  ``fnv1a_64`` (twemproxy's usual example)
#: clusters keys that differ only in their last characters (``key-0`` ... ``key-199`` can all
#: land on one server), which would leave some servers without test keys.
PROXY_HASH = "md5"
FLEET_SIZE = 5


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def _start_proxy(proxy: NutcrackerProcess) -> NutcrackerProcess:
    try:
        find_nutcracker()
        proxy.start()
    except HarnessError as exc:
        proxy.close()
        _fail(f"could not start nutcracker:\n{exc}")
    return proxy


@pytest.fixture(scope="session")
def nutcracker_session(
    three_memcached_session: list[MemcachedProcess],
) -> Iterator[NutcrackerProcess]:
    """The session's nutcracker over the three shared memcached (no ejection, 500 ms timeout)."""
    proxy = _start_proxy(
        NutcrackerProcess(three_memcached_session, hash=PROXY_HASH, timeout=500, name="twemproxy")
    )
    yield proxy
    proxy.close()


@pytest.fixture
def nutcracker(
    nutcracker_session: NutcrackerProcess, three_memcached: list[MemcachedProcess]
) -> NutcrackerProcess:
    """The shared nutcracker, running, its three backends flushed (``.servers`` lists them)."""
    if not nutcracker_session.is_running:
        _start_proxy(nutcracker_session)
    return nutcracker_session


@pytest.fixture
def nutcracker_backends(
    nutcracker: NutcrackerProcess, three_memcached: list[MemcachedProcess]
) -> list[MemcachedProcess]:
    """The three memcached behind ``nutcracker`` (flushed; do not stop or pause them)."""
    return three_memcached


@pytest.fixture
def nutcracker_factory() -> Iterator[Callable[..., NutcrackerProcess]]:
    """``factory(servers, **NutcrackerProcess options)`` -> a started, test-owned nutcracker.

    Uses :data:`PROXY_HASH` unless ``hash`` is given; every proxy it made is stopped when the
    test ends.  Pair it with ``memcached_factory`` for backends the test may kill or pause.
    """
    made: list[NutcrackerProcess] = []

    def factory(servers: Sequence[MemcachedProcess | str], **options: Any) -> NutcrackerProcess:
        options.setdefault("hash", PROXY_HASH)
        proxy = NutcrackerProcess(servers, **options)
        made.append(proxy)
        return _start_proxy(proxy)

    try:
        yield factory
    finally:
        for proxy in made:
            proxy.close()


@pytest.fixture(scope="session")
def fleet_session() -> Iterator[list[MemcachedProcess]]:
    """Five plain memcached for placement tests (not flushed; prefer ``fleet``)."""
    group = ServerGroup()
    try:
        for index in range(FLEET_SIZE):
            group.add(MemcachedProcess(name=f"fleet-{index}")).start()
    except HarnessError as exc:
        group.close()
        _fail(f"could not start the memcached fleet:\n{exc}")
    yield list(group.processes)
    group.close()


@pytest.fixture
def fleet(fleet_session: list[MemcachedProcess]) -> list[MemcachedProcess]:
    """Five running memcached, all flushed for this test (shared: do not stop or pause them)."""
    for process in fleet_session:
        try:
            process.ensure_running()
            process.flush()
        except (HarnessError, OSError) as exc:
            _fail(f"could not reset {process.name}:\n{exc!r}")
    return fleet_session
