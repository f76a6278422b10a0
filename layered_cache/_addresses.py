"""Parsing server lists: ``"host:port"``, ``(host, port)``, ``"[::1]:11211"``, UNIX paths."""

from __future__ import annotations

import re
from collections.abc import Iterable

from layered_cache.errors import ConfigurationError
from layered_cache.transport._base import Address

__all__ = ["DEFAULT_PORT", "ServerSpec", "hash_name", "parse_servers"]

DEFAULT_PORT = 11211

ServerSpec = str | tuple[str, int]

_SEPARATORS = re.compile(r"[,;\s]+")


def parse_servers(servers: ServerSpec | Iterable[ServerSpec]) -> list[Address]:
    """Normalize a server list.

    Accepts one server or an iterable of servers; a string may hold several
    separated by commas, semicolons or whitespace (as in ``MEMCACHE_SERVERS``).
    The port defaults to 11211. ``unix:/path`` and ``/path`` are UNIX sockets.

    Raises:
        ConfigurationError: the list is empty or a server is malformed.

    Example:
        >>> parse_servers("a.example:11212, b.example")
        [('a.example', 11212), ('b.example', 11211)]
    """
    items: list[ServerSpec]
    if isinstance(servers, str | tuple):
        items = [servers]
    else:
        try:
            items = list(servers)
        except TypeError:
            raise ConfigurationError(
                f"servers must be 'host:port', (host, port) or a list of them, not {servers!r}"
            ) from None
    parsed: list[Address] = []
    for item in items:
        if isinstance(item, str):
            parsed.extend(_parse_one(part) for part in _SEPARATORS.split(item) if part)
        else:
            parsed.append(_parse_tuple(item))
    if not parsed:
        raise ConfigurationError(
            "no memcached server given: pass 'host:port' (or set MEMCACHE_SERVERS)"
        )
    return parsed


def _parse_tuple(item: object) -> Address:
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and item[0]
        and isinstance(item[1], int)
    ):
        return (item[0], _check_port(item[1], item))
    raise ConfigurationError(f"a server must be 'host:port' or (host, port), not {item!r}")


def _parse_one(text: str) -> Address:
    if text.startswith("unix:"):
        text = text[5:]
    if text.startswith("/"):
        return text
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigurationError(f"malformed IPv6 server {text!r}: write [address]:port")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ConfigurationError(f"IPv6 server {text!r} needs brackets: [{text}]:11211")
    else:
        host, port_text = text, str(DEFAULT_PORT)
    if not host or not port_text.isdigit():
        raise ConfigurationError(
            f"malformed server {text!r}: write host:port, e.g. 127.0.0.1:11211"
        )
    return (host, _check_port(int(port_text), text))


def _check_port(port: int, given: object) -> int:
    if not 0 < port < 65536:
        raise ConfigurationError(f"server {given!r}: port must be 1-65535")
    return port


def hash_name(address: Address) -> str:
    """The name a server has on the hash ring: pymemcache's ``HashClient`` naming.

    Keeping pymemcache's ``"host:port"`` (IPv6 without brackets) means keys land
    on the same servers as with Django's ``PyMemcacheCache`` for the same list.
    """
    if isinstance(address, tuple):
        return "%s:%s" % address  # noqa: UP031 - must match pymemcache byte for byte
    return address
