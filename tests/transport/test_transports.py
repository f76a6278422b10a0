"""Transport configuration: verification on by default, explicit and loud when turned off."""

from __future__ import annotations

import socket
import ssl

import pytest

from layered_cache import ConfigurationError
from layered_cache.transport import InsecureTLSWarning, Keepalive, TCPTransport, TLSTransport
from tests.servers import MemcachedProcess, TLSMaterial


def test_tls_verifies_by_default() -> None:
    transport = TLSTransport()
    context = transport._context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [({"verify": False}, "accepts any certificate"), ({"check_hostname": False}, "another server")],
)
def test_turning_verification_off_warns(kwargs: dict[str, bool], said: str) -> None:
    with pytest.warns(InsecureTLSWarning, match=said):
        TLSTransport(**kwargs)


@pytest.mark.parametrize("option", ["ca_file", "cert_file", "key_file"])
def test_missing_files_are_configuration_errors(option: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{option}: no such file: '/nonexistent.pem'"):
        TLSTransport(**{option: "/nonexistent.pem"})


def test_key_without_cert_and_context_with_files(tls_material: TLSMaterial) -> None:
    with pytest.raises(ConfigurationError, match="key_file needs cert_file"):
        TLSTransport(key_file=tls_material.client_key_file)
    with pytest.raises(ConfigurationError, match="excludes ca_file"):
        TLSTransport(ca_file=tls_material.ca_file, ssl_context=ssl.create_default_context())


def test_unreadable_client_certificate(tls_material: TLSMaterial) -> None:
    with pytest.raises(ConfigurationError, match="cannot load the client certificate"):
        TLSTransport(cert_file=tls_material.ca_file)  # a CA cert without its key


def test_key_password_hidden_from_repr(tls_material: TLSMaterial) -> None:
    transport = TLSTransport(
        cert_file=tls_material.client_cert_file,
        key_file=tls_material.client_key_file,
        key_password="pem-secret",
    )
    assert "pem-secret" not in repr(transport)


def test_ready_ssl_context_is_used(
    tls_memcached: MemcachedProcess, tls_material: TLSMaterial
) -> None:
    context = ssl.create_default_context(cafile=tls_material.ca_file)
    sock = TLSTransport(ssl_context=context).connect(
        ("127.0.0.1", tls_memcached.port), connect_timeout=2, timeout=2
    )
    with sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.gettimeout() == 2
        sock.sendall(b"version\r\n")
        assert sock.recv(100).startswith(b"VERSION ")


def test_tcp_options(memcached: MemcachedProcess) -> None:
    transport = TCPTransport(no_delay=True, keepalive=Keepalive(idle=30, interval=5, count=3))
    sock = transport.connect(("127.0.0.1", memcached.port), connect_timeout=1, timeout=0.5)
    with sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert sock.gettimeout() == 0.5
    assert TCPTransport(keepalive=True).keepalive == Keepalive()
    with pytest.raises(ConfigurationError, match="keepalive"):
        TCPTransport(keepalive="yes")  # type: ignore[arg-type]
