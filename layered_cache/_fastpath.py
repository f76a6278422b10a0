"""Single-key ``get`` and ``set``, the hot path, written out directly.

pymemcache's ``get``/``set`` go through its general multi-key machinery
(lists, dicts of remapped keys, several passes over each reply line). For one
key the protocol is one line out and one or three lines back, so these
functions speak it directly on a pymemcache connection's socket, with
pymemcache's own buffered readers and error replies. Same classic commands,
so they work through every proxy; same ``op(connection, *args)`` shape as the
rest, so pooling, retries and error translation are unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from pymemcache.exceptions import (
    MemcacheIllegalInputError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)

from layered_cache._connection import Connection, read_line, read_value
from layered_cache._keys import encode_key, encode_keys

__all__ = ["get_many_direct", "get_one", "set_many_direct", "set_one"]


def get_one(conn: Connection, key: str | bytes, default: Any) -> Any:
    """``get <key>``: the value, or ``default`` when missing."""
    encoded = encode_key(key)  # before anything is sent
    sock = conn.connected_socket()
    sock.sendall(b"get " + encoded + b"\r\n")
    buf, line = read_line(sock, b"")
    if line == b"END":
        return default
    if line[:6] != b"VALUE ":
        conn._raise_errors(line, b"get")
        raise MemcacheUnknownError(line[:32])
    fields = line.split()
    buf, data = read_value(sock, buf, int(fields[3]))
    buf, end = read_line(sock, buf)
    if end != b"END":
        raise MemcacheUnknownError(end[:32])
    return conn.serde.deserialize(key, data, int(fields[2]))


def set_one(
    conn: Connection, key: str | bytes, value: Any, expire: int, noreply: bool, flags: int | None
) -> bool:
    """``set <key> <flags> <expire> <size>``: True when stored."""
    encoded = encode_key(key)
    if not isinstance(expire, int):
        raise MemcacheIllegalInputError(f"expire must be integer, got bad value: {expire!r}")
    data, data_flags = conn.serde.serialize(encoded, value)
    if flags is not None:
        data_flags = flags
    if type(data) is not bytes:
        # pymemcache serdes may return str (e.g. the digits of an int).
        data = str(data).encode("ascii")
    sock = conn.connected_socket()
    sock.sendall(
        b"set %s %d %d %d%s\r\n%s\r\n"
        % (encoded, data_flags, expire, len(data), b" noreply" if noreply else b"", data)
    )
    if noreply:
        return True
    _, line = read_line(sock, b"")
    if line == b"STORED":
        return True
    if line == b"NOT_STORED":
        return False
    conn._raise_errors(line, b"set")
    raise MemcacheUnknownError(line[:32])


_RECV_SIZE = 65536
_VALUE_LINE = re.compile(rb"VALUE (\S+) (\d+) (\d+)\r\n")


def get_many_direct(conn: Connection, keys: list[Any]) -> dict[Any, Any]:
    """``get <key> <key> ...``: ``{key: value}`` for the keys found, in one round trip.

    The reply is parsed in place: one regex match per value header, the
    value's bytes sliced out by size; the buffer only grows when a value is
    still arriving.
    """
    encoded = encode_keys(keys)  # every key, before anything is sent
    originals = dict(zip(encoded, keys, strict=True))
    sock = conn.connected_socket()
    sock.sendall(b"get " + b" ".join(encoded) + b"\r\n")
    deserialize = conn.serde.deserialize
    header = _VALUE_LINE.match
    recv = sock.recv
    buf = b""
    pos = 0
    found: dict[Any, Any] = {}
    while True:
        needed = _RECV_SIZE
        match = header(buf, pos)
        if match is not None:
            start = match.end()
            end = start + int(match.group(3))
            if len(buf) >= end + 2:
                original = originals[match.group(1)]
                found[original] = deserialize(original, buf[start:end], int(match.group(2)))
                pos = end + 2
                continue
            needed = max(needed, end + 2 - len(buf))
        elif buf.startswith(b"END\r\n", pos):
            return found
        else:
            line_end = buf.find(b"\r\n", pos)
            if line_end >= 0:  # a whole line that is neither a value nor END
                line = buf[pos:line_end]
                conn._raise_errors(line, b"get")
                raise MemcacheUnknownError(line[:32])
        chunk = recv(needed)
        if not chunk:
            raise MemcacheUnexpectedCloseError()
        buf = buf[pos:] + chunk
        pos = 0


def set_many_direct(
    conn: Connection, items: list[tuple[bytes, bytes, int]], expire: int, noreply: bool
) -> list[bytes]:
    """``set`` per ``(key, data, flags)`` item, pipelined; return the keys not stored.

    The items arrive validated and serialized (the batch checked every one
    before anything was sent), so this only speaks the protocol.
    """
    suffix = b" noreply\r\n" if noreply else b"\r\n"
    sock = conn.connected_socket()
    sock.sendall(
        b"".join(
            b"set %s %d %d %d%s%s\r\n" % (key, flags, expire, len(data), suffix, data)
            for key, data, flags in items
        )
    )
    if noreply:
        return []
    refused: list[bytes] = []
    buf = b""
    for key, _, _ in items:
        buf, line = read_line(sock, buf)
        if line == b"STORED":
            continue
        if line != b"NOT_STORED":
            conn._raise_errors(line, b"set")
            raise MemcacheUnknownError(line[:32])
        refused.append(key)
    return refused
