"""Failures against real servers: refused credentials and certificates, restarts, stalls."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from layered_cache import (
    AuthenticationError,
    CacheConnectionError,
    CacheTimeoutError,
    Client,
    ServerUnavailableError,
    TLSError,
)
from layered_cache.auth import AsciiAuth, MemCachierAuth
from layered_cache.transport import TLSTransport
from tests.servers import MemcachedProcess, MemCachierGateway, TLSMaterial


def test_wrong_memcachier_password(memcachier: MemCachierGateway, make: Callable[..., Any]) -> None:
    client = make(memcachier.address, auth=MemCachierAuth(memcachier.username, "wrong-pass"))
    with pytest.raises(AuthenticationError) as caught:
        client.get("k")
    message = str(caught.value)
    assert memcachier.username in message
    assert memcachier.address in message
    assert "wrong-pass" not in message
    assert memcachier.failed_handshakes == 1
    # Not an outage: the next call tries (and is refused) again, never a silent miss.
    with pytest.raises(AuthenticationError):
        client.set("k", 1)


def test_wrong_ascii_password(
    ascii_auth_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    username, _ = ascii_auth_memcached.credentials
    client = make(ascii_auth_memcached.address, auth=AsciiAuth(username, "not-it"))
    with pytest.raises(AuthenticationError, match="authentication failure") as caught:
        client.set("k", 1)
    assert "not-it" not in str(caught.value)


def test_ascii_auth_server_refuses_clients_without_auth(
    ascii_auth_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(ascii_auth_memcached.address)
    with pytest.raises(Exception, match="unauthenticated"):
        client.get("k")


def test_untrusted_certificate_refused(
    tls_memcached: MemcachedProcess, tls_material: TLSMaterial, make: Callable[..., Any]
) -> None:
    client = make(
        tls_memcached.address, transport=TLSTransport(ca_file=tls_material.untrusted_ca_file)
    )
    with pytest.raises(TLSError, match="certificate") as caught:
        client.get("k")
    assert tls_memcached.address in str(caught.value)
    # TLS refusals are configuration errors, not outages: reported every time.
    with pytest.raises(TLSError):
        client.get("k")


def test_wrong_hostname_refused_unless_named(
    wrong_host_tls_memcached: MemcachedProcess, tls_material: TLSMaterial, make: Callable[..., Any]
) -> None:
    client = make(
        wrong_host_tls_memcached.address, transport=TLSTransport(ca_file=tls_material.ca_file)
    )
    with pytest.raises(TLSError, match="certificate"):
        client.get("k")
    named = TLSTransport(ca_file=tls_material.ca_file, server_hostname=TLSMaterial.WRONG_HOSTNAME)
    with make(wrong_host_tls_memcached.address, transport=named) as client:
        assert client.set("k", 1)


def test_mutual_tls(
    mtls_memcached: MemcachedProcess, tls_material: TLSMaterial, make: Callable[..., Any]
) -> None:
    without = make(mtls_memcached.address, transport=TLSTransport(ca_file=tls_material.ca_file))
    with pytest.raises(TLSError):
        without.set("k", 1)
    with_cert = TLSTransport(
        ca_file=tls_material.ca_file,
        cert_file=tls_material.client_cert_file,
        key_file=tls_material.client_key_file,
    )
    with make(mtls_memcached.address, transport=with_cert) as client:
        assert client.set("k", 1)
        assert client.get("k") == 1


def test_restart_mid_use_reconnects_and_reauthenticates(
    memcached_factory: Callable[..., MemcachedProcess], make: Callable[..., Any]
) -> None:
    server = memcached_factory(credentials=("restart-user", "restart-pass"), name="auth-restart")
    client = make(server.address, auth=AsciiAuth("restart-user", "restart-pass"))
    assert client.set("k", "before")
    connections_before = server.stats()["total_connections"]
    server.restart()
    # Idempotent calls survive the restart without an error (stale connection replaced).
    assert client.get("k") is None
    assert client.set("k", "after")
    assert client.get("k") == "after"
    assert int(server.stats()["total_connections"]) >= 1
    assert connections_before


def test_restart_then_non_idempotent_calls_get_a_fresh_connection(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(fresh_memcached.address)
    client.set("n", 1)
    fresh_memcached.restart()
    # The pooled connection is seen closed before anything is sent, so the
    # command goes out once, on a new connection: no error, no double count.
    assert client.add("n", 5) is True
    assert client.incr("n", 1) == 6
    fresh_memcached.restart()
    assert client.incr("n", 1) is None  # the restart emptied the cache; counted nowhere twice
    client.close()


def test_stopped_server_times_out_within_the_timeout(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(fresh_memcached.address, timeout=0.5, retry_timeout=0)
    client.set("k", 1)
    fresh_memcached.pause()
    try:
        started = time.monotonic()
        with pytest.raises(CacheTimeoutError, match=r"did not answer within 0\.5 s"):
            client.get("k")
        assert time.monotonic() - started < 2.0
    finally:
        fresh_memcached.resume()
    assert client.get("k") == 1


def test_unreachable_server_fails_fast_while_skipped(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    address = fresh_memcached.address
    fresh_memcached.stop()
    client = make(address, retry_attempts=2, retry_timeout=30, dead_timeout=60)
    with pytest.raises(CacheConnectionError, match="refused"):
        client.get("k")
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="skipped"):
        client.get("k")
    assert time.monotonic() - started < 0.1


def test_keys_spread_over_three_servers_like_pymemcache(
    three_memcached: list[MemcachedProcess],
) -> None:
    from pymemcache.client.base import Client as SingleServer
    from pymemcache.client.hash import HashClient

    addresses = [server.address for server in three_memcached]
    keys = [f"key:{i}" for i in range(300)]
    reference = HashClient(addresses)
    with Client(addresses) as client:
        assert client.set_many(dict.fromkeys(keys, "v")) == []
        held: dict[str, set[str]] = {}
        for server in three_memcached:
            direct = SingleServer(("127.0.0.1", server.port))
            held[server.address] = set(direct.get_many(keys))
            direct.close()
        # Every key is on exactly one server: the one pymemcache's HashClient picks.
        assert sum(len(found) for found in held.values()) == 300
        assert all(len(found) > 50 for found in held.values())
        for key in keys:
            assert key in held[client.server_for(key)]
            assert client.server_for(key) == reference.hasher.get_node(key)
        assert client.get_many(keys) == dict.fromkeys(keys, "v")
        assert len(client.stats()) == 3


def test_one_of_three_dead_others_keep_working(
    three_memcached: list[MemcachedProcess], make: Callable[..., Any]
) -> None:
    addresses = [server.address for server in three_memcached]
    with make(addresses, retry_timeout=60, timeout=0.5) as client:
        keys = {server: [] for server in addresses}
        for i in range(100):
            keys[client.server_for(f"k{i}")].append(f"k{i}")
        dead, *alive = three_memcached
        dead.pause()
        try:
            client_timeout_keys = keys[dead.address]
            for server in alive:
                for key in keys[server.address][:5]:
                    assert client.set(key, key)
                    assert client.get(key) == key
            with pytest.raises(CacheConnectionError):
                client.get(client_timeout_keys[0])
            started = time.monotonic()
            with pytest.raises(ServerUnavailableError):
                client.get(client_timeout_keys[1])
            assert time.monotonic() - started < 0.1
        finally:
            dead.resume()


def test_eight_threads_share_one_client(memcached: MemcachedProcess) -> None:
    client = Client(memcached.address)
    client.set("shared-counter", 0)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(200):
                key = f"thread{n}:{i}"
                assert client.set(key, (n, i))
                assert client.get(key) == (n, i)
                client.incr("shared-counter", 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(client.get_many([f"thread{n}:199" for n in range(8)])) == 8
    assert client.get("shared-counter") == 8 * 200
    client.close()


# The harness runs server threads; Python 3.12+ warns that fork() copies them.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_opens_its_own_connections(memcached: MemcachedProcess) -> None:
    import os

    client = Client(memcached.address)
    client.set("before-fork", "parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never share the parent's socket
        try:
            (node,) = client._nodes.values()
            ok = len(node.pool.idle) == 0 and client.get("before-fork") == "parent"
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    verdict = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert verdict == b"1"
    assert client.get("before-fork") == "parent"  # the parent's connection still works
    client.close()


def test_noreply_write_after_restart_is_not_lost(
    fresh_memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(fresh_memcached.address)
    client.set("k", "before")
    fresh_memcached.restart()
    # No reply means no error to retry on: the dead pooled connection is seen first.
    assert client.set("k", "after", noreply=True) is True
    assert client.get("k") == "after"
    client.close()


def test_many_open_files_do_not_defeat_connection_reuse(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 and hard >= 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held = []
    try:
        while len(held) < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))  # push descriptors past 1023
        client = make(memcached.address)
        client.set("n", 0)
        before = int(memcached.stats()["total_connections"])
        for _ in range(20):
            client.incr("n", 1)
            client.add("k", 1)
        assert int(memcached.stats()["total_connections"]) - before <= 2  # stats' own + at most 1
        assert client.get("n") == 20
        client.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
