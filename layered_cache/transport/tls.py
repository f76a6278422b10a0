"""TLS connections, verified by default (memcached's ``-Z``, managed services, stunnel)."""

from __future__ import annotations

import os
import socket
import ssl
import warnings
from collections.abc import Callable
from typing import Any

import attrs

from layered_cache.errors import ConfigurationError
from layered_cache.transport._base import Address
from layered_cache.transport.tcp import ConnectionPlan, Keepalive, _to_keepalive, open_socket

__all__ = ["InsecureTLSWarning", "TLSTransport"]


class InsecureTLSWarning(UserWarning):
    """TLS was configured without certificate or hostname verification."""


def _existing_file(option: str) -> Callable[[Any, Any, str | None], None]:
    def check(_instance: Any, _attribute: Any, value: str | None) -> None:
        if value is not None and not os.path.isfile(value):
            raise ConfigurationError(f"TLSTransport {option}: no such file: {value!r}")

    return check


@attrs.frozen
class TLSTransport:
    """TCP wrapped in TLS (1.2 or newer), with the server's certificate and name verified.

    Args:
        ca_file: PEM file of the certificate authorities to trust. None trusts
            the system's default authorities.
        cert_file: PEM client certificate, for servers that require mutual TLS
            (memcached's ``ssl_verify_mode``).
        key_file: PEM private key of ``cert_file`` (when not inside it).
        check_hostname: verify that the certificate names the server. Turning it
            off warns with :class:`InsecureTLSWarning`.
        server_hostname: the name to verify and to send as SNI, when it differs
            from the host in the server address (e.g. connecting by IP).
        ssl_context: a ready :class:`ssl.SSLContext`, used as is; it excludes the
            file options above.
        verify: verify the server's certificate at all. ``False`` accepts any
            certificate (testing only) and warns with :class:`InsecureTLSWarning`.
        key_password: password of an encrypted ``key_file``; never shown in reprs.
        no_delay: set ``TCP_NODELAY`` on the underlying socket.
        keepalive: TCP keepalive, as for :class:`~layered_cache.transport.TCPTransport`.

    Raises:
        ConfigurationError: a file is missing or unreadable, or options conflict.

    Example:
        >>> TLSTransport(ca_file=None).check_hostname
        True
    """

    ca_file: str | None = attrs.field(default=None, validator=_existing_file("ca_file"))
    cert_file: str | None = attrs.field(default=None, validator=_existing_file("cert_file"))
    key_file: str | None = attrs.field(default=None, validator=_existing_file("key_file"))
    check_hostname: bool = True
    server_hostname: str | None = None
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False)
    verify: bool = True
    key_password: str | None = attrs.field(default=None, repr=False)
    no_delay: bool = True
    keepalive: Keepalive | None = attrs.field(default=None, converter=_to_keepalive)
    _context: ssl.SSLContext = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_context", self._build_context())

    def _build_context(self) -> ssl.SSLContext:
        if self.ssl_context is not None:
            given = [
                name
                for name in ("ca_file", "cert_file", "key_file", "key_password")
                if getattr(self, name) is not None
            ]
            if given:
                raise ConfigurationError(
                    f"TLSTransport: ssl_context excludes {', '.join(given)}; "
                    "configure the context itself, or pass the files instead of a context"
                )
            if self.ssl_context.verify_mode == ssl.CERT_NONE:
                _warn_insecure("the given ssl_context does not verify certificates")
            return self.ssl_context
        if self.key_file is not None and self.cert_file is None:
            raise ConfigurationError(
                "TLSTransport: key_file needs cert_file (the client certificate)"
            )
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _warn_insecure("verify=False accepts any certificate")
        elif not self.check_hostname:
            context.check_hostname = False
            _warn_insecure("check_hostname=False accepts a certificate issued for another server")
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file, password=self.key_password)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigurationError(
                    f"TLSTransport: cannot load the client certificate {self.cert_file!r}"
                    f"{f' with key {self.key_file!r}' if self.key_file else ''}: "
                    f"{exc.__class__.__name__}"
                ) from None
        return context

    def plan(self, address: Address) -> ConnectionPlan:
        """How to open a connection to ``address``: this context, verifying this host name."""
        hostname = self.server_hostname
        if hostname is None and isinstance(address, tuple):
            hostname = address[0]
        return ConnectionPlan(
            address,
            ssl_context=self._context,
            server_hostname=hostname,
            no_delay=self.no_delay,
            keepalive=self.keepalive,
        )

    def connect(
        self, address: Address, *, connect_timeout: float | None, timeout: float | None
    ) -> socket.socket:
        """Open a connected, handshaken TLS socket; see :meth:`Transport.connect`."""
        plan = self.plan(address)
        sock = open_socket(plan, connect_timeout=connect_timeout)
        try:
            # The handshake runs inside wrap_socket, bounded by connect_timeout.
            tls_sock = self._context.wrap_socket(sock, server_hostname=plan.server_hostname)
        except BaseException:
            sock.close()
            raise
        tls_sock.settimeout(timeout)
        return tls_sock


def _warn_insecure(reason: str) -> None:
    warnings.warn(
        f"TLS without full verification: {reason}; anyone on the path can read "
        "and change cache traffic",
        InsecureTLSWarning,
        stacklevel=4,
    )
