"""The integration harness itself, checked with raw sockets and ssl only (no layered_cache)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.servers import (
    HarnessError,
    MemcachedProcess,
    MemCachierGateway,
    TLSMaterial,
    auth_token_command,
    free_port,
    memcachier_handshake,
    recv_until,
)

TIMEOUT = 2.0


@contextlib.contextmanager
def tcp(server: MemcachedProcess | MemCachierGateway) -> Iterator[socket.socket]:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        yield sock


@contextlib.contextmanager
def tls(
    server: MemcachedProcess, context: ssl.SSLContext, hostname: str = "127.0.0.1"
) -> Iterator[ssl.SSLSocket]:
    with (
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as sock,
    ):
        yield sock


def roundtrip(sock: socket.socket, key: bytes = b"k", value: bytes = b"hello") -> bytes:
    sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
    assert recv_until(sock) == b"STORED\r\n"
    sock.sendall(b"get %s\r\n" % key)
    return recv_until(sock, b"END\r\n")


def ask(sock: socket.socket, data: bytes, until: bytes = b"\r\n") -> bytes:
    sock.sendall(data)
    return recv_until(sock, until)


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer has closed: EOF (or a reset) within the timeout."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


# -- basics --------------------------------------------------------------------------------
def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_plain_round_trip(memcached: MemcachedProcess) -> None:
    assert memcached.address == f"127.0.0.1:{memcached.port}"
    with tcp(memcached) as sock:
        assert roundtrip(sock) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_flush_empties_the_cache(memcached: MemcachedProcess) -> None:
    with tcp(memcached) as sock:
        roundtrip(sock)
    memcached.flush()
    with tcp(memcached) as sock:
        assert ask(sock, b"get k\r\n", b"END\r\n") == b"END\r\n"
    # flush_all invalidates lazily: curr_items only drops as items are touched or crawled
    assert int(memcached.stats()["cmd_flush"]) >= 1


def test_three_servers_are_distinct(three_memcached: list[MemcachedProcess]) -> None:
    assert len({server.port for server in three_memcached}) == 3
    for server in three_memcached:
        with tcp(server) as sock:
            assert ask(sock, b"get k\r\n", b"END\r\n") == b"END\r\n"


def test_startup_failure_reports_stderr() -> None:
    process = MemcachedProcess(["-o", "ssl_verify_mode=7"], name="broken")
    try:
        with pytest.raises(HarnessError, match="Invalid ssl_verify_mode"):
            process.start()
        assert not process.is_running
    finally:
        process.close()


# -- TLS -----------------------------------------------------------------------------------
def test_tls_round_trip_with_ca(tls_memcached: MemcachedProcess, tls_material: TLSMaterial) -> None:
    with tls(tls_memcached, tls_material.client_context()) as sock:
        assert roundtrip(sock) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    with tls(tls_memcached, tls_material.client_context(), hostname="localhost") as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION 1.")


def test_tls_fails_without_the_ca(
    tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    for context in (tls_material.client_context(trusted=False), ssl.create_default_context()):
        with pytest.raises(ssl.SSLCertVerificationError), tls(tls_memcached, context):
            pass


def test_tls_port_refuses_plain_text(tls_memcached: MemcachedProcess) -> None:
    with tcp(tls_memcached) as sock:
        sock.sendall(b"version\r\n")
        assert closed_by_peer(sock)


def test_tls_hostname_mismatch(
    wrong_host_tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    with (
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        tls(wrong_host_tls_memcached, tls_material.client_context()),
    ):
        pass
    with tls(
        wrong_host_tls_memcached, tls_material.client_context(), hostname="wrong.example"
    ) as sock:
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")


@pytest.mark.parametrize("client_cert", ["none", "untrusted"])
def test_mtls_refuses_without_a_valid_client_cert(
    mtls_memcached: MemcachedProcess, tls_material: TLSMaterial, client_cert: str
) -> None:
    context = tls_material.client_context()
    if client_cert == "untrusted":
        context.load_cert_chain(
            tls_material.untrusted_client_cert_file, tls_material.untrusted_client_key_file
        )
    # TLS 1.3: the handshake completes client-side; the alert arrives with the first read.
    with pytest.raises(ssl.SSLError), tls(mtls_memcached, context) as sock:
        ask(sock, b"version\r\n")


def test_mtls_accepts_a_client_cert(
    mtls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    with tls(mtls_memcached, tls_material.client_context(client_cert=True)) as sock:
        assert roundtrip(sock) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


# -- memcached ASCII auth (-Y) --------------------------------------------------------------
def test_ascii_auth_accepts_credentials(ascii_auth_memcached: MemcachedProcess) -> None:
    assert (ascii_auth_memcached.username, ascii_auth_memcached.password) == (
        "alice",
        "s3cret-pass",
    )
    with tcp(ascii_auth_memcached) as sock:
        assert ask(sock, b"set anykey 0 0 17\r\nalice s3cret-pass\r\n") == b"STORED\r\n"
        assert roundtrip(sock) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"


def test_ascii_auth_refuses(ascii_auth_memcached: MemcachedProcess) -> None:
    with tcp(ascii_auth_memcached) as sock:
        assert ask(sock, b"get k\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
        wrong = auth_token_command("alice", "wrong-pass")
        assert ask(sock, wrong) == b"CLIENT_ERROR authentication failure\r\n"
        assert ask(sock, b"version\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
        # the connection survives a failure: a retry with the right password works
        assert ask(sock, auth_token_command("alice", "s3cret-pass")) == b"STORED\r\n"
        assert ask(sock, b"get k\r\n", b"END\r\n") == b"END\r\n"


# -- MemCachier gateway ----------------------------------------------------------------------
def test_gateway_accepts_exact_handshake_and_forwards(memcachier: MemCachierGateway) -> None:
    assert (memcachier.username, memcachier.password) == ("memcachier-user", "gateway-secret")
    handshake = b"set memcachier-user 0 0 14\r\ngateway-secret\r\n"
    assert memcachier_handshake(memcachier.username, memcachier.password) == handshake
    with tcp(memcachier) as sock:
        assert ask(sock, handshake) == b"STORED\r\n"
        assert roundtrip(sock) == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    assert (memcachier.connections, memcachier.handshakes, memcachier.failed_handshakes) == (
        1,
        1,
        0,
    )
    # the value really lives upstream, and the handshake was not stored there
    upstream = memcachier.upstream
    assert isinstance(upstream, MemcachedProcess)
    assert upstream.command(b"get k memcachier-user\r\n", until=b"END\r\n") == (
        b"VALUE k 0 5\r\nhello\r\nEND\r\n"
    )
    memcachier.reset_counts()
    assert memcachier.connections == memcachier.handshakes == 0


def test_gateway_handshake_in_pieces_and_pipelined(memcachier: MemCachierGateway) -> None:
    handshake = memcachier_handshake(memcachier.username, memcachier.password)
    with tcp(memcachier) as sock:
        cut = len(handshake) - 3
        for i in range(0, cut, 5):
            sock.sendall(handshake[i : min(i + 5, cut)])
            time.sleep(0.005)
        sock.sendall(handshake[cut:] + b"set p 0 0 1\r\nx\r\nget p\r\n")
        assert recv_until(sock, b"END\r\n") == b"STORED\r\nSTORED\r\nVALUE p 0 1\r\nx\r\nEND\r\n"
    assert memcachier.handshakes == 1


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"set memcachier-user 0 0 14\r\nwrong-password\r\n",  # wrong password, same length
        b"set memcachier-user 0 0 5\r\nwrong\r\n",  # wrong password
        b"set memcachier-user 1 0 14\r\ngateway-secret\r\n",  # wrong flags
        b"set memcachier-user 0 60 14\r\ngateway-secret\r\n",  # wrong exptime
        b"set other-user 0 0 14\r\ngateway-secret\r\n",  # wrong user
        b"get k\r\n",  # not a handshake at all
        b"version\r\n",
    ],
)
def test_gateway_refuses_bad_handshakes(memcachier: MemCachierGateway, first_bytes: bytes) -> None:
    with tcp(memcachier) as sock:
        assert ask(sock, first_bytes) == b"CLIENT_ERROR authentication failed\r\n"
        assert closed_by_peer(sock)
    deadline = time.monotonic() + TIMEOUT
    while memcachier.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (memcachier.connections, memcachier.handshakes, memcachier.failed_handshakes) == (
        1,
        0,
        1,
    )


def test_gateway_drop_connections(memcachier: MemCachierGateway) -> None:
    handshake = memcachier_handshake(memcachier.username, memcachier.password)
    with tcp(memcachier) as first, tcp(memcachier) as second:
        assert ask(first, handshake) == b"STORED\r\n"
        assert ask(second, handshake) == b"STORED\r\n"
        assert memcachier.drop_connections() == 2
        assert closed_by_peer(first)
        assert closed_by_peer(second)
    assert memcachier.active_connections == 0
    with tcp(memcachier) as sock:  # new connections still work
        assert ask(sock, handshake) == b"STORED\r\n"
        assert ask(sock, b"version\r\n").startswith(b"VERSION ")
    assert memcachier.handshakes == 3


def test_gateway_handshake_timeout_and_lifecycle(memcached: MemcachedProcess) -> None:
    with MemCachierGateway(memcached, "u", "p", handshake_timeout=0.2) as gateway:
        port = gateway.port
        with tcp(gateway) as sock:
            sock.sendall(b"set u 0 0 1\r\n")
            assert recv_until(sock) == b"CLIENT_ERROR authentication failed\r\n"
            assert closed_by_peer(sock)
        assert gateway.failed_handshakes == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()


def test_gateway_reports_upstream_down(fresh_memcached: MemcachedProcess) -> None:
    with MemCachierGateway(fresh_memcached, "u", "p") as gateway:
        fresh_memcached.kill()
        with tcp(gateway) as sock:
            reply = ask(sock, memcachier_handshake("u", "p"))
            assert reply == b"SERVER_ERROR upstream unavailable\r\n"
            assert closed_by_peer(sock)
        fresh_memcached.start()  # same port: the gateway finds it again
        with tcp(gateway) as sock:
            assert ask(sock, memcachier_handshake("u", "p")) == b"STORED\r\n"


# -- process control ----------------------------------------------------------------------
def test_restart_keeps_the_port(fresh_memcached: MemcachedProcess) -> None:
    port, pid = fresh_memcached.port, fresh_memcached.pid
    with tcp(fresh_memcached) as sock:
        roundtrip(sock)
        fresh_memcached.restart(graceful=False)
        assert closed_by_peer(sock)
    assert fresh_memcached.port == port
    assert fresh_memcached.pid not in (None, pid)
    with tcp(fresh_memcached) as sock:
        assert ask(sock, b"get k\r\n", b"END\r\n") == b"END\r\n"


def test_graceful_stop_and_start(fresh_memcached: MemcachedProcess) -> None:
    port = fresh_memcached.port
    fresh_memcached.stop()
    assert not fresh_memcached.is_running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    fresh_memcached.start()
    assert fresh_memcached.command(b"version\r\n").startswith(b"VERSION ")


def test_pause_makes_reads_time_out(fresh_memcached: MemcachedProcess) -> None:
    with tcp(fresh_memcached) as sock:
        fresh_memcached.pause()
        sock.settimeout(0.3)
        sock.sendall(b"version\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(100)
        fresh_memcached.resume()
        sock.settimeout(TIMEOUT)
        assert recv_until(sock).startswith(b"VERSION ")


def test_auto_port_collision_is_retried() -> None:
    process = MemcachedProcess(name="collision")
    taken = process.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        try:
            process.start()
            assert process.port != taken
            assert process.command(b"version\r\n").startswith(b"VERSION ")
        finally:
            process.close(graceful=False)
