"""The authenticator contract: what a new connection says before its first command."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeAlias

from layered_cache.errors import AuthenticationError, CacheConnectionError, ConfigurationError
from layered_cache.protocol import requests

__all__ = [
    "Authenticator",
    "HandshakeFlow",
    "SetCredentials",
    "expect_stored",
    "password_check",
    "refuse_unsafe_password",
    "refuse_unsafe_username",
    "set_handshake",
    "set_request",
    "username_check",
]

#: An attrs field validator: ``(instance, attribute, value) -> None``.
Validator: TypeAlias = Callable[[object, object, Any], None]

#: A handshake: yields the bytes to send, receives each reply line (without CRLF).
HandshakeFlow: TypeAlias = Generator[bytes, bytes, None]

_UNSAFE_USERNAME = re.compile(r"[\x00-\x20\x7f]")


class Authenticator(Protocol):
    """Authenticates every new connection, once, before any command is sent.

    :meth:`handshake` is a *flow* (a generator), so an authenticator does no
    I/O itself and is testable without sockets: it yields the bytes to send,
    and receives the server's reply line (without the trailing CRLF; ``b""``
    when the server closed the connection instead of answering). It returns
    when the connection is authenticated and raises
    :class:`~layered_cache.errors.AuthenticationError` when it is refused.
    The client runs the flow on the first connection and on every reconnect.
    """

    def handshake(self, server: str) -> HandshakeFlow:
        """Return the handshake flow for a new connection to ``server`` (``host:port``)."""
        ...


def refuse_unsafe_username(scheme: str, username: object, *, extra: str = "") -> str:
    """Return ``username`` if it cannot break the ASCII protocol, else raise ConfigurationError.

    Args:
        scheme: the authenticator's name, for the message.
        username: the value to check.
        extra: characters that are also forbidden by this scheme.
    """
    if not isinstance(username, str):
        raise ConfigurationError(f"{scheme}: username must be a str, not {type(username).__name__}")
    problem = None
    if not username:
        problem = "it is empty"
    elif len(username.encode("utf-8", "surrogatepass")) > 250:
        problem = "it is longer than 250 bytes"
    elif _UNSAFE_USERNAME.search(username):
        problem = "it contains whitespace or control characters"
    elif extra and any(ch in extra for ch in username):
        problem = f"it contains one of {extra!r}"
    if problem is not None:
        shown = repr(username if len(username) <= 40 else username[:37] + "...")
        raise ConfigurationError(
            f"{scheme}: username {shown} is not allowed: {problem}. Usernames are "
            "1-250 bytes of printable characters without spaces"
        )
    return username


def refuse_unsafe_password(scheme: str, password: object, *, forbidden: str = "") -> str:
    """Return ``password`` if usable, else raise ConfigurationError (never showing it)."""
    if not isinstance(password, str):
        raise ConfigurationError(f"{scheme}: password must be a str, not {type(password).__name__}")
    if not password:
        raise ConfigurationError(f"{scheme}: the password is empty")
    if forbidden and any(ch in forbidden for ch in password):
        raise ConfigurationError(
            f"{scheme}: the password contains a character this scheme cannot carry "
            "(carriage return, line feed or NUL)"
        )
    return password


def username_check(scheme: str, *, extra: str = "") -> Validator:
    """An attrs validator running :func:`refuse_unsafe_username` for ``scheme``."""

    def check(_instance: object, _attribute: object, value: Any) -> None:
        refuse_unsafe_username(scheme, value, extra=extra)

    return check


def password_check(scheme: str, *, forbidden: str = "") -> Validator:
    """An attrs validator running :func:`refuse_unsafe_password` for ``scheme``."""

    def check(_instance: object, _attribute: object, value: Any) -> None:
        refuse_unsafe_password(scheme, value, forbidden=forbidden)

    return check


def set_request(key: str, data: bytes) -> bytes:
    """The ``set <key> 0 0 <n>`` both ASCII schemes authenticate with, encoded like any set."""
    return requests.store(b"set", key.encode("utf-8"), 0, 0, data, False)


class SetCredentials(Protocol):
    """An authenticator whose handshake is one ``set`` (:func:`set_request`)."""

    @property
    def username(self) -> str: ...

    @property
    def set_request(self) -> bytes: ...


def set_handshake(auth: SetCredentials, *, scheme: str, server: str) -> HandshakeFlow:
    """Send ``auth.set_request``; anything but ``STORED`` is a refusal.

    The request (it holds the password) is never a local of this frame, so a
    traceback rendered with its locals cannot show it.
    """
    reply = yield auth.set_request
    expect_stored(reply, scheme=scheme, server=server, username=auth.username)


def expect_stored(reply: bytes, *, scheme: str, server: str, username: str) -> None:
    """Raise AuthenticationError unless the handshake's reply is ``STORED``."""
    if reply == b"STORED":
        return
    if reply.startswith(b"SERVER_ERROR"):
        # The server (or a gateway's upstream) failed: an outage, not a refusal.
        text = reply[:120].decode("ascii", "backslashreplace")
        raise CacheConnectionError(
            f"{server} failed during {scheme} authentication: it answered {text!r}",
            server=server,
        )
    if not reply:
        said = "closed the connection without answering"
    else:
        text = reply[:120].decode("ascii", "backslashreplace")
        said = f"answered {text!r}"
    raise AuthenticationError(
        f"{server} refused {scheme} authentication for user {username!r}: the server {said}",
        server=server,
        username=username,
    )
