"""Helpers shared by the scale-out tests: where keys really are, and bounded waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from pymemcache.client.base import Client as SingleServerClient

from tests.servers import MemcachedProcess

T = TypeVar("T")

#: Every client under test waits at most this long for a connect or an answer.
CALL_TIMEOUT = 2.0
#: "At once": well under CALL_TIMEOUT, so no timeout was waited for (with room for a busy CI).
AT_ONCE = 0.8
#: Reference clients (pymemcache, Django) and direct reads: generous, they only observe.
REFERENCE_TIMEOUT = 5.0
_CHUNK = 100


def holders(backends: Sequence[MemcachedProcess], keys: Iterable[str]) -> dict[str, list[str]]:
    """``{key: [address of every backend that holds it]}``, read with one plain pymemcache
    client per backend (no hashing involved: this is where the bytes really are)."""
    wanted = list(keys)
    found: dict[str, list[str]] = {key: [] for key in wanted}
    for backend in backends:
        direct = SingleServerClient(
            (backend.host, backend.port),
            connect_timeout=REFERENCE_TIMEOUT,
            timeout=REFERENCE_TIMEOUT,
            allow_unicode_keys=True,
        )
        try:
            for start in range(0, len(wanted), _CHUNK):
                for key in direct.get_many(wanted[start : start + _CHUNK]):
                    found[key].append(backend.address)
        finally:
            direct.close()
    return found


def owners(backends: Sequence[MemcachedProcess], keys: Iterable[str]) -> dict[str, str]:
    """``{key: address of the one backend holding it}``; fails if a key is missing or doubled."""
    where = holders(backends, keys)
    lost = [key for key, places in where.items() if len(places) != 1]
    assert not lost, f"keys not held by exactly one server: { {k: where[k] for k in lost[:5]} }"
    return {key: places[0] for key, places in where.items()}


def read_raw(backend: MemcachedProcess, key: str) -> bytes | None:
    """The bytes ``backend`` holds under ``key`` (None when it has none)."""
    direct = SingleServerClient(
        (backend.host, backend.port),
        connect_timeout=REFERENCE_TIMEOUT,
        timeout=REFERENCE_TIMEOUT,
        allow_unicode_keys=True,
    )
    try:
        value: bytes | None = direct.get(key)
    finally:
        direct.close()
    return value


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail if the block takes ``seconds`` or longer (it is a bound, not a timeout)."""
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s, expected under {seconds} s"


def outcome(call: Callable[[], T]) -> tuple[T | BaseException, float]:
    """``(result or the exception raised, seconds taken)``."""
    start = time.monotonic()
    try:
        result: T | BaseException = call()
    except Exception as exc:
        result = exc
    return result, time.monotonic() - start


def poll(
    call: Callable[[], T], until: Callable[[T | BaseException], bool], *, timeout: float
) -> list[tuple[T | BaseException, float]]:
    """Call ``call`` every 20 ms until ``until(result)`` holds; return every outcome seen.

    Fails after ``timeout`` seconds with the outcomes so far.
    """
    seen: list[tuple[T | BaseException, float]] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(outcome(call))
        if until(seen[-1][0]):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s; outcomes: {seen}")
        time.sleep(0.02)
