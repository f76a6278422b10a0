"""Custom strategies the OPTIONS tests name by dotted path."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Generator
from typing import Any

from layered_cache.transport import TCPTransport


class LevelTransport:
    """A transport with its own keyword (and one a serializer below shares)."""

    def __init__(self, level: int = 0, label: str = "") -> None:
        self.level = level
        self.label = label
        self._tcp = TCPTransport()

    def connect(
        self, address: Any, *, connect_timeout: float | None, timeout: float | None
    ) -> socket.socket:
        return self._tcp.connect(address, connect_timeout=connect_timeout, timeout=timeout)


class LevelSerializer:
    """A serializer that takes ``level`` too: flat ``level`` is then ambiguous."""

    def __init__(self, level: int = 0) -> None:
        self.level = level

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        return repr(value).encode(), 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        return value


class EchoingAuth:
    """An authenticator whose validation error (badly) repeats the password."""

    def __init__(self, username: str, password: str) -> None:
        if len(password) < 100:
            raise ValueError(f"password {password!r} is too short for {username}")
        self.username = username

    def handshake(self, server: str) -> Generator[bytes, bytes, None]:
        yield from ()


class KwargsAuth:
    """An authenticator taking anything by ``**kwargs``."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def handshake(self, server: str) -> Generator[bytes, bytes, None]:
        yield from ()


def make_transport(no_delay: bool = True) -> TCPTransport:
    """A factory function rather than a class."""
    return TCPTransport(no_delay=no_delay)


def make_nothing() -> object:
    """A factory that does not make a strategy."""
    return object()


#: A ready instance, named by dotted path.
TRANSPORT = TCPTransport(no_delay=False)
NOT_A_STRATEGY = 42


class OwnPickleSerializer:
    """A custom serializer over pickle: the feature checks judge it by what it does."""

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        return pickle.dumps(value), 1

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        return pickle.loads(value)


class BytesOnlySerializer:
    """A serializer for bytes alone."""

    def serialize(self, key: Any, value: Any) -> tuple[bytes, int]:
        if not isinstance(value, bytes):
            raise TypeError(f"only bytes, not {type(value).__name__}")
        return value, 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        return value
