"""The fault-injecting proxy itself, checked with raw sockets (no layered_cache)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.faults import GARBAGE, FaultProxy
from tests.servers import HarnessError, MemcachedProcess, recv_until

TIMEOUT = 2.0


@contextmanager
def connect(proxy: FaultProxy, timeout: float = TIMEOUT) -> Iterator[socket.socket]:
    with socket.create_connection((proxy.host, proxy.port), timeout=timeout) as sock:
        yield sock


def ask(sock: socket.socket, data: bytes, until: bytes = b"\r\n") -> bytes:
    sock.sendall(data)
    return recv_until(sock, until, timeout=TIMEOUT)


def version(proxy: FaultProxy) -> bytes:
    """``version`` on a new connection (the connect itself may already see a reset)."""
    with connect(proxy) as sock:
        return ask(sock, b"version\r\n")


def test_transparent_by_default(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert ask(sock, b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
        assert ask(sock, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
        assert proxy.active_connections == 1
    assert proxy.connections == 1
    assert "proxy" in repr(proxy)


def test_delay_holds_replies_until_restore(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        proxy.delay(0.3)
        started = time.monotonic()
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")
        assert 0.25 <= time.monotonic() - started < 1.5
        proxy.delay(30)
        sock.sendall(b"version\r\n")
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        proxy.restore()  # held bytes flow at once
        assert recv_until(sock, timeout=TIMEOUT).startswith(b"VERSION ")


def test_cut_mid_response_forwards_part_then_closes(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert ask(sock, b"set big 0 0 200000\r\n" + b"x" * 200_000 + b"\r\n") == b"STORED\r\n"
        proxy.cut_mid_response(after=1000)
        sock.sendall(b"get big\r\n")
        with pytest.raises(ConnectionError, match="closed by peer"):
            recv_until(sock, b"END\r\n", timeout=TIMEOUT)
    assert proxy.cuts == 1
    with connect(proxy) as sock:  # one-shot: the next connection is whole again
        assert ask(sock, b"get big\r\n", b"END\r\n").endswith(b"x\r\nEND\r\n")


def test_trickle_forwards_one_byte_per_interval_until_restore(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        proxy.trickle(0.02)
        sock.sendall(b"version\r\n")
        sock.settimeout(TIMEOUT)
        started = time.monotonic()
        assert len(sock.recv(100)) == 1  # one byte arrives...
        assert len(sock.recv(100)) == 1  # ...then the next, an interval later
        assert time.monotonic() - started >= 0.015
        proxy.restore()  # the rest at once
        assert recv_until(sock, timeout=TIMEOUT).endswith(b"\r\n")
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")
    assert proxy.trickled_bytes >= 2


def test_garble_replaces_every_reply_until_restore(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        proxy.garble()
        assert ask(sock, b"set k 0 0 1\r\nv\r\n") == GARBAGE  # executed, answered nonsense
        proxy.garble(b"\x00\xfe")
        sock.sendall(b"version\r\n")
        sock.settimeout(TIMEOUT)
        assert sock.recv(100) == b"\x00\xfe"
        proxy.restore()
        assert ask(sock, b"get k\r\n", b"END\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    assert proxy.garbled_chunks == 2
    with pytest.raises(ValueError, match="must not be empty"):
        proxy.garble(b"")


def test_reset_sends_rst(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            ask(sock, b"version\r\n")
    assert proxy.resets == 1
    with connect(proxy) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")


def test_drop_closes_with_fin(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")
        assert proxy.drop() == 1
        assert sock.recv(100) == b""
    assert proxy.drops == 1


def test_blackhole_swallows_then_restore_closes_tainted(proxy: FaultProxy) -> None:
    with connect(proxy) as old:
        assert ask(old, b"version\r\n").startswith(b"VERSION ")
        proxy.blackhole()
        with connect(proxy) as new:  # accepted by the kernel, never answered
            for sock in (old, new):
                sock.sendall(b"version\r\n")
                sock.settimeout(0.2)
                with pytest.raises(TimeoutError):
                    sock.recv(100)
            proxy.restore()
            # Both lost a request: they are closed, not resynchronised.
            assert old.recv(100) == b""
            assert new.recv(100) == b""
    assert proxy.swallowed_bytes >= 2 * len(b"version\r\n")
    with connect(proxy) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")


def test_unreachable_upstream_resets_the_client(
    fresh_memcached: MemcachedProcess, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(fresh_memcached)
    fresh_memcached.kill()
    with pytest.raises(ConnectionError):
        version(proxy)
    assert proxy.upstream_failures == 1
    fresh_memcached.start()  # same port: found again per connection
    with connect(proxy) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")


def test_bounded_connections_and_lifetime(
    memcached: MemcachedProcess, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(memcached, max_connections=1, max_lifetime=1.0)
    with connect(proxy) as first:
        assert ask(first, b"version\r\n").startswith(b"VERSION ")
        with pytest.raises(ConnectionError):
            version(proxy)
    assert proxy.refused == 1
    assert proxy.wait_stopped(timeout=5.0)
    assert proxy.expired
    with pytest.raises(HarnessError, match="not running"):
        proxy.blackhole()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT).close()


def test_loopback_only() -> None:
    with pytest.raises(HarnessError, match="loopback only"):
        FaultProxy(("10.1.2.3", 11211))
