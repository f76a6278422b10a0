"""The fault proxy's trickle and garble modes against real memcached, on both engines.

* Trickle: replies arrive one byte every 5 ms, so every single read is quick and only the
  whole is slow. ``timeout`` bounds the whole exchange: a call fails with
  :class:`~layered_cache.CacheTimeoutError` after about ``timeout`` (plain TCP and TLS,
  a fresh connection's handshake included, bounded by ``connect_timeout``), and works
  again once the link is whole.
* Garble: every reply is replaced by bytes no memcached sends. Every method, classic and
  meta, raises :class:`~layered_cache.UnexpectedReplyError` (a
  :class:`~layered_cache.ServerError`) naming the server; the connection is closed (the
  proxy sees it go); the failure counts toward the server's health (the next call is
  skipped); fail-silent mode absorbs it like an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import CacheTimeoutError, ServerUnavailableError, UnexpectedReplyError
from layered_cache.transport import TLSTransport
from tests.faults import FaultProxy
from tests.reliability.test_garbled import ALL_CALLS, QUIET_ANSWERS
from tests.reliability.test_outages import SERVER_CALLS
from tests.servers import MemcachedProcess, TLSMaterial

VALUE = b"v" * 3000
TIMEOUT = 0.5


def _wait_until_closed(proxy: FaultProxy, limit: float = 3.0) -> int:
    deadline = time.monotonic() + limit
    while proxy.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.active_connections


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_trickled_reply_fails_after_about_timeout(
    transport: str,
    memcached: MemcachedProcess,
    tls_memcached: MemcachedProcess,
    tls_material: TLSMaterial,
    proxy_factory: Callable[..., FaultProxy],
    make: Callable[..., Any],
) -> None:
    server = tls_memcached if transport == "tls" else memcached
    proxy = proxy_factory(server, name="trickle")
    options: dict[str, Any] = {}
    if transport == "tls":
        options["transport"] = TLSTransport(ca_file=tls_material.ca_file)
    client = make(
        proxy.address,
        timeout=TIMEOUT,
        connect_timeout=TIMEOUT,
        retry_timeout=0,
        dead_timeout=0,
        **options,
    )
    assert client.set("k", VALUE)
    proxy.trickle(0.005)  # 3 kB: 15 s if nothing bounded the whole
    for attempt in range(2):  # pooled, then fresh (its handshake trickles too)
        started = time.monotonic()
        with pytest.raises(CacheTimeoutError):
            client.get("k")
        took = time.monotonic() - started
        assert 0.4 < took < 1.5, f"attempt {attempt}: {took:.2f} s"
    assert proxy.trickled_bytes > 0
    proxy.restore()
    assert client.get("k") == VALUE


def test_a_slowly_trickled_reply_within_timeout_is_read_whole(
    proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = make(proxy.address, timeout=5)
    assert client.set("k", b"abc")
    proxy.trickle(0.002)  # about 40 bytes: well within the timeout
    assert client.get("k") == b"abc"
    assert proxy.trickled_bytes >= 20


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_a_garbled_reply_is_a_server_error_that_closes_and_counts(
    name: str, proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = make(proxy.address, timeout=1, retry_timeout=30)
    proxy.garble()
    with pytest.raises(UnexpectedReplyError) as caught:
        ALL_CALLS[name](client)
    assert caught.value.server == proxy.address
    assert proxy.address in str(caught.value)
    assert proxy.garbled_chunks >= 1
    assert _wait_until_closed(proxy) == 0  # the client closed the garbled connection
    with pytest.raises(ServerUnavailableError):  # counted: the server is skipped now
        ALL_CALLS[name](client)


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_a_garbled_reply_is_absorbed_in_fail_silent_mode(
    name: str, proxy: FaultProxy, make: Callable[..., Any]
) -> None:
    client = make(proxy.address, timeout=1, retry_timeout=0, dead_timeout=0, ignore_exceptions=True)
    proxy.garble()
    if name in SERVER_CALLS:
        # Administrative commands raise in fail-silent mode, for garbage as for outages.
        with pytest.raises(UnexpectedReplyError):
            ALL_CALLS[name](client)
        return
    for attempt in range(2):
        assert ALL_CALLS[name](client) == QUIET_ANSWERS[name], f"attempt {attempt}"
    assert client.ignored_errors == 2
    assert _wait_until_closed(proxy) == 0
    proxy.restore()
    assert client.set("k", "whole again")
    assert client.get("k") == "whole again"


@pytest.mark.parametrize("silent", [False, True], ids=["strict", "fail-silent"])
def test_a_garbled_tls_stream_is_a_garbled_reply(
    silent: bool,
    tls_memcached: MemcachedProcess,
    tls_material: TLSMaterial,
    proxy_factory: Callable[..., FaultProxy],
    make: Callable[..., Any],
) -> None:
    """Under TLS, garbage arrives as a corrupted record: on a connection that already
    served calls that is a garbled stream (not a TLS configuration problem)."""
    proxy = proxy_factory(tls_memcached, name="garble-tls")
    client = make(
        proxy.address,
        transport=TLSTransport(ca_file=tls_material.ca_file),
        timeout=1,
        retry_timeout=30,
        ignore_exceptions=silent,
    )
    assert client.set("k", "v")  # the connection is established and pooled
    proxy.garble(b"\x17\x03\x03\x00\x10" + b"x" * 16)  # an application-data record
    if silent:
        assert client.get("k") is None
        assert client.ignored_errors == 1
    else:
        with pytest.raises(UnexpectedReplyError, match="corrupted TLS stream") as caught:
            client.get("k")
        assert caught.value.server == proxy.address
        with pytest.raises(ServerUnavailableError):  # counted toward the server's health
            client.get("k")
    assert _wait_until_closed(proxy) == 0
