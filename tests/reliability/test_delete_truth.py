"""``delete()`` tells the truth: True when the key was there, False when it was not, and an
error when it cannot know.

A delete is never sent twice. Sending it again after its connection broke mid-call would
meet ``NOT_FOUND`` if the first one had landed, and answer False for a key that was there.
Instead, a pooled connection the server already closed (restart, idle drop, reset) is
found before the delete is written and replaced (so the call is as transparent as an
idempotent one), and a connection that breaks after the delete was written makes the call
raise :class:`~layered_cache.CacheConnectionError` (fail-silent mode: False), because the
delete may or may not have landed. Both engines, against a real memcached through the
fault proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheConnectionError
from tests.faults import FaultProxy


def _pooled(make: Callable[..., Any], proxy: FaultProxy, **options: Any) -> Any:
    client = make(proxy.address, timeout=1.0, retry_timeout=30, **options)
    assert client.set("k", "v")
    assert client.get("k") == "v"  # its connection is pooled now
    return client


def test_a_delete_that_landed_but_lost_its_reply_raises_instead_of_answering_false(
    proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = _pooled(make, proxy)
    proxy.cut_mid_response(after=0)  # memcached deletes, the reply never reaches us
    with pytest.raises(CacheConnectionError):
        client.delete("k")
    assert proxy.cuts == 1
    assert client.get("k") is None  # it had landed: False would have been a lie
    # Not an outage: the server stays in service.
    assert client.set("k", "again")
    assert client.delete("k") is True
    assert client.delete("k") is False


def test_in_fail_silent_mode_such_a_delete_answers_false_and_is_counted(
    proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = _pooled(make, proxy, ignore_exceptions=True)
    proxy.cut_mid_response(after=0)
    assert client.delete("k") is False
    assert client.ignored_errors == 1


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_a_delete_on_a_connection_closed_while_idle_is_transparent_and_truthful(
    fault: str, proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = _pooled(make, proxy)
    assert (proxy.drop() if fault == "drop" else proxy.reset()) >= 1
    assert client.delete("k") is True  # found closed before writing: a fresh connection
    assert client.get("k") is None
    assert client.set("k", "v")
    assert (proxy.drop() if fault == "drop" else proxy.reset()) >= 1
    assert client.delete("missing") is False  # and a miss is a miss
    assert client.delete("k") is True
