"""memcached's meta protocol (``mg``, ``ms``, ``md``, ``ma``, ``mn``): just the commands we use.

pymemcache does not speak meta, so this module encodes requests and parses
replies itself, on the same authenticated connections (a
:class:`~layered_cache._connection.Connection`'s socket). Every function here
has the ``op(connection, *args)`` shape that
:meth:`~layered_cache._server.ServerNode.run` drives, so pooling, error
translation and stale-connection handling are the same as for classic commands.

Reply lines look like ``VA <size> <flags>*``, ``HD <flags>*``, ``EN``, ``NF``,
``NS``, ``EX`` and ``MN``; return flags are single letters, some followed by a
token (``c123``, ``t30``, ``f1``), some alone (``W`` won, ``Z`` a win was
already handed out, ``X`` stale). See memcached's ``doc/protocol.txt``.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from layered_cache._connection import Connection, read_line, read_value
from layered_cache.errors import LayeredCacheError

__all__ = [
    "MetaNotSupported",
    "MetaReply",
    "meta_add",
    "meta_arithmetic",
    "meta_delete_many",
    "meta_get_many",
    "meta_lease_get",
    "meta_mark_stale",
    "meta_probe",
    "meta_set",
    "meta_set_many",
]


class MetaNotSupported(LayeredCacheError):
    """The server (or a proxy in front of it) does not speak the meta protocol."""


@attrs.frozen
class MetaReply:
    """One meta reply: its code, its return flags, and its value for ``VA`` replies."""

    code: bytes
    flags: dict[str, bytes]
    value: bytes | None = None

    @property
    def won(self) -> bool:
        """``W``: this caller must (re)compute the value."""
        return "W" in self.flags

    @property
    def win_taken(self) -> bool:
        """``Z``: another caller already holds the right to recompute."""
        return "Z" in self.flags

    @property
    def stale(self) -> bool:
        """``X``: the value was marked stale (``md ... I``)."""
        return "X" in self.flags

    @property
    def cas(self) -> bytes:
        """The item's CAS token (asked with ``c``)."""
        return self.flags.get("c", b"0")

    @property
    def client_flags(self) -> int:
        """The item's client flags (asked with ``f``)."""
        return int(self.flags.get("f", b"0"))


def _parse(line: bytes) -> tuple[bytes, list[bytes]]:
    parts = line.split()
    if not parts:
        raise LayeredCacheError("empty reply to a meta command")
    return parts[0], parts[1:]


def _flags(tokens: Iterable[bytes]) -> dict[str, bytes]:
    return {chr(token[0]): token[1:] for token in tokens if token}


def _exchange(conn: Connection, request: bytes, replies: int) -> list[MetaReply]:
    """Send ``request`` and read ``replies`` replies (or until ``MN`` when ``replies`` is -1)."""
    sock = conn.connected_socket()
    sock.sendall(request)
    buf = b""
    out: list[MetaReply] = []
    while replies < 0 or len(out) < replies:
        buf, line = read_line(sock, buf)
        code, tokens = _parse(line)
        if code == b"VA":
            buf, value = read_value(sock, buf, int(tokens[0]))
            out.append(MetaReply(code, _flags(tokens[1:]), value))
        elif code == b"MN":
            if replies < 0:
                return out
            raise LayeredCacheError("unexpected MN in a meta reply")
        elif code in (b"HD", b"EN", b"NF", b"NS", b"EX"):
            out.append(MetaReply(code, _flags(tokens)))
        elif code == b"ERROR":
            # Older memcached (and proxies such as twemproxy) do not know meta commands.
            raise MetaNotSupported(f"{conn.name} does not support memcached's meta protocol")
        elif code in (b"CLIENT_ERROR", b"SERVER_ERROR"):
            # pymemcache's exceptions, so the one translation boundary applies
            # (ServerResponseError, or UpstreamUnavailableError through a proxy).
            conn._raise_errors(line, b"meta")
            raise LayeredCacheError(f"{conn.name} answered {line.decode('ascii', 'replace')}")
        else:
            raise LayeredCacheError(f"{conn.name} sent an unexpected meta reply {line[:40]!r}")
    return out


def meta_probe(conn: Connection) -> bool:
    """Whether the server speaks meta: ``get <key>``, then ``mn``.

    Every memcached and proxy answers the ``get`` (``END``), which proves the
    server is up; then memcached 1.6+ answers ``MN``, older servers ``ERROR``,
    and twemproxy hangs up. Only those answers mean "no meta"; anything else
    is a failure like any other. Two round trips, not one pipelined: twemproxy
    drops the replies queued before a command it refuses.
    """
    sock = conn.connected_socket()
    sock.sendall(b"get layered_cache:meta-probe\r\n")
    buf, line = read_line(sock, b"")
    while line.startswith(b"VALUE "):  # someone stored the probe key: skip its value
        buf, _ = read_value(sock, buf, int(line.split()[3]))
        buf, line = read_line(sock, buf)
    if line != b"END":
        conn._raise_errors(line, b"get")
        raise LayeredCacheError(f"{conn.name} sent an unexpected reply {line[:40]!r}")
    sock.sendall(b"mn\r\n")
    try:
        _, line = read_line(sock, buf)
    except MemcacheUnexpectedCloseError:
        return False
    return bool(line == b"MN")


# -- single keys ---------------------------------------------------------------


def meta_lease_get(conn: Connection, key: bytes, lease_ttl: int, refresh_ahead: int) -> MetaReply:
    """``mg <key> v f c t N<lease_ttl> [R<refresh_ahead>]``.

    A miss creates an empty placeholder and hands this caller the win (``W``);
    callers arriving while it lives see ``Z``. With ``refresh_ahead``, a hit
    whose remaining TTL is below it hands one caller ``W`` while everyone keeps
    getting the current value. A stale item (``md ... I``) is returned with
    ``X``, and ``W`` to one caller.
    """
    request = b"mg %s v f c t N%d" % (key, lease_ttl)
    if refresh_ahead:
        request += b" R%d" % refresh_ahead
    return _exchange(conn, request + b"\r\n", 1)[0]


def meta_set(
    conn: Connection, key: bytes, data: bytes, flags: int, ttl: int, cas: bytes | None
) -> bool:
    """``ms <key> <size> T<ttl> F<flags> [C<cas>]``: True when stored.

    With ``cas`` the write only lands if the item still has that CAS: a value
    computed from an old state never overwrites a newer one.
    """
    request = b"ms %s %d T%d F%d" % (key, len(data), ttl, flags)
    if cas is not None:
        request += b" C" + cas
    reply = _exchange(conn, request + b"\r\n" + data + b"\r\n", 1)[0]
    return reply.code == b"HD"


def meta_mark_stale(conn: Connection, key: bytes, stale_ttl: int) -> bool:
    """``md <key> I T<stale_ttl>``: keep the value but mark it stale; True when it existed."""
    reply = _exchange(conn, b"md %s I T%d\r\n" % (key, stale_ttl), 1)[0]
    return reply.code == b"HD"


def meta_arithmetic(conn: Connection, key: bytes, delta: int, decrement: bool) -> int | None:
    """``ma <key> D<delta> [MD] v``: the new value, None when the counter is missing."""
    request = b"ma %s D%d v" % (key, delta)
    if decrement:
        request += b" MD"
    reply = _exchange(conn, request + b"\r\n", 1)[0]
    if reply.code == b"NF" or reply.value is None:
        return None
    return int(reply.value)


def meta_add(conn: Connection, key: bytes, data: bytes, flags: int, ttl: int) -> bool:
    """``ms <key> <size> T<ttl> F<flags> ME`` (add mode): True when stored, False if it exists."""
    request = b"ms %s %d T%d F%d ME\r\n%s\r\n" % (key, len(data), ttl, flags, data)
    return _exchange(conn, request, 1)[0].code == b"HD"


# -- pipelined batches ---------------------------------------------------------


def meta_get_many(conn: Connection, keys: list[bytes]) -> dict[bytes, MetaReply]:
    """``mg <key> v f k q`` per key, then ``mn``: one round trip, replies only for hits."""
    request = b"".join(b"mg %s v f k q\r\n" % key for key in keys) + b"mn\r\n"
    return {reply.flags["k"]: reply for reply in _exchange(conn, request, -1)}


def meta_set_many(conn: Connection, items: list[tuple[bytes, bytes, int]], ttl: int) -> list[bytes]:
    """``ms <key> <size> T<ttl> F<flags> k q`` per item, then ``mn``; return keys not stored."""
    request = b"".join(
        b"ms %s %d T%d F%d k q\r\n%s\r\n" % (key, len(data), ttl, flags, data)
        for key, data, flags in items
    )
    replies = _exchange(conn, request + b"mn\r\n", -1)
    return [reply.flags["k"] for reply in replies if reply.code != b"HD"]


def meta_delete_many(conn: Connection, keys: list[bytes]) -> int:
    """``md <key> q`` per key, then ``mn``; return how many were not found."""
    request = b"".join(b"md %s q\r\n" % key for key in keys) + b"mn\r\n"
    return sum(1 for reply in _exchange(conn, request, -1) if reply.code == b"NF")
