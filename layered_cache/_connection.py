"""One socket to one server: pymemcache's protocol code over our transport and authenticator.

This is the only module that touches pymemcache's private API: the seam is
``pymemcache.client.base.Client._connect`` (where the socket is made) and
``check_key`` (where keys are validated), plus pymemcache's buffered socket
readers, which the meta protocol module reuses. ``tests/test_seams.py`` fails loudly
if a pymemcache release moves either.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from pymemcache.client.base import Client as _PymemcacheClient
from pymemcache.client.base import _readline as read_line
from pymemcache.client.base import _readvalue as read_value

from layered_cache._keys import encode_key
from layered_cache.auth._base import Authenticator, HandshakeFlow
from layered_cache.serialization._base import Serializer
from layered_cache.transport._base import Address, Transport

__all__ = [
    "UNREADABLE",
    "Connection",
    "ReadGuard",
    "read_line",
    "read_value",
    "run_handshake",
]

logger = logging.getLogger("layered_cache")


#: Stands for a stored value the serializer refused to read; the client turns it into a miss.
class _Unreadable:
    def __repr__(self) -> str:
        return "<unreadable value>"


UNREADABLE: Any = _Unreadable()

_MAX_HANDSHAKE_LINE = 1024


def run_handshake(flow: HandshakeFlow, sock: socket.socket) -> None:
    """Drive an authenticator's flow over ``sock``: send what it yields, return each reply."""
    try:
        request = next(flow)
    except StopIteration:
        return
    while True:
        try:
            sock.sendall(request)
        finally:
            # The request may carry a password: keep it out of tracebacks' locals.
            del request
        reply = _read_line(sock)
        try:
            request = flow.send(reply)
        except StopIteration:
            return


def _read_line(sock: socket.socket) -> bytes:
    # The server sends exactly one line and then waits for us, so reading
    # until CRLF cannot swallow bytes that belong to a later reply.
    buffer = b""
    while not buffer.endswith(b"\r\n"):
        chunk = sock.recv(_MAX_HANDSHAKE_LINE)
        if not chunk:
            return b""
        buffer += chunk
        if len(buffer) > _MAX_HANDSHAKE_LINE:
            break
    return buffer[:-2] if buffer.endswith(b"\r\n") else buffer


class ReadGuard:
    """Wraps a serializer so that a value it refuses to read becomes a logged miss.

    A stored value written by another program (or an older release of this
    one) must not take the application down, and a refused pickle must never
    be retried with a looser reader. The client filters :data:`UNREADABLE`.
    """

    __slots__ = ("_deserialize", "serialize")

    def __init__(self, serializer: Serializer) -> None:
        self.serialize = serializer.serialize
        self._deserialize = serializer.deserialize

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        if not value and not flags:
            # An empty item with no flags is what memcached's meta protocol
            # leaves while one caller recomputes a value (mg ... N): a miss.
            return UNREADABLE
        try:
            return self._deserialize(key, value, flags)
        except Exception as exc:
            logger.warning("treating key %r as a miss: %s", key, exc)
            return UNREADABLE


class Connection(_PymemcacheClient):  # type: ignore[misc]
    """A pymemcache ``Client`` whose connect step uses our transport and runs our handshake.

    Keys are validated here, once, by :func:`~layered_cache._keys.encode_key`
    (stricter than pymemcache's own check), before anything is sent.
    """

    sock: socket.socket | None
    #: monotonic time the connection went back to the pool (kept only with an idle timeout).
    idle_since = 0.0

    def __init__(
        self,
        address: Address,
        *,
        name: str,
        transport: Transport,
        auth: Authenticator,
        serde: ReadGuard,
        connect_timeout: float | None,
        timeout: float | None,
    ) -> None:
        super().__init__(
            address,
            serde=serde,
            connect_timeout=connect_timeout,
            timeout=timeout,
            allow_unicode_keys=True,
            default_noreply=False,
        )
        self.name = name
        self._transport = transport
        self._auth = auth

    def _connect(self) -> None:
        self.close()
        sock = self._transport.connect(
            self.server, connect_timeout=self.connect_timeout, timeout=self.timeout
        )
        try:
            # Authenticating is part of connecting: connect_timeout bounds it.
            sock.settimeout(self.connect_timeout)
            run_handshake(self._auth.handshake(self.name), sock)
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def connected_socket(self) -> socket.socket:
        """The socket, connecting (and authenticating) first if there is none."""
        if self.sock is None:
            self._connect()
        sock = self.sock
        if sock is None:  # pragma: no cover - _connect() either sets it or raises
            raise OSError(f"{self.name}: no connection")
        return sock

    def check_key(self, key: str | bytes, key_prefix: bytes = b"") -> bytes:
        return encode_key(key)
