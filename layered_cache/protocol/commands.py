"""What a request says, read back: its commands and their keys (for events, not for the wire).

The engines send requests as opaque bytes; observers that need to know which
keys a request carried, or whether it writes, read it back here instead of
every step carrying its keys (the hot path builds no extra tuple).
"""

from __future__ import annotations

from typing import Final

__all__ = ["WRITE_COMMANDS", "command_end", "request_commands"]

#: Commands that change what the server holds.
WRITE_COMMANDS: Final = frozenset(
    {
        b"set",
        b"add",
        b"replace",
        b"append",
        b"prepend",
        b"cas",
        b"delete",
        b"incr",
        b"decr",
        b"touch",
        b"ms",
        b"md",
        b"ma",
    }
)
# Commands followed by a data block, and where its length is in the header.
_LENGTH_FIELD: Final = {
    b"set": 4,
    b"add": 4,
    b"replace": 4,
    b"append": 4,
    b"prepend": 4,
    b"cas": 4,
    b"ms": 2,
}
_NO_KEY: Final = frozenset({b"mn", b"stats", b"version", b"flush_all", b"verbosity"})
_MULTI_KEY: Final = frozenset({b"get", b"gets"})


def command_end(request: bytes, start: int) -> int:
    """Where the command starting at ``start`` ends (past its data block, if it has one).

    A command it cannot read (no line end, no length) runs to the end of ``request``.

    Example:
        >>> command_end(b"set a 0 0 2\\r\\nhi\\r\\ndelete b\\r\\n", 0)
        17
    """
    size = len(request)
    line_end = request.find(b"\r\n", start)
    if line_end < 0:
        return size
    end = line_end + 2
    name_end = request.find(b" ", start, line_end)
    field = _LENGTH_FIELD.get(request[start:name_end]) if name_end > start else None
    if field is not None:
        header = request[start:line_end].split(b" ")
        length = header[field] if len(header) > field else b""
        if not length.isdigit():
            return size
        end += int(length) + 2
    return min(end, size)


def request_commands(request: bytes) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """``[(command, keys)]`` of each command in a (possibly pipelined) request.

    Example:
        >>> request_commands(b"set a 0 0 2\\r\\nhi\\r\\ndelete b\\r\\nmn\\r\\n")
        [(b'set', (b'a',)), (b'delete', (b'b',)), (b'mn', ())]
    """
    found: list[tuple[bytes, tuple[bytes, ...]]] = []
    start = 0
    size = len(request)
    while start < size:
        end = request.find(b"\r\n", start)
        if end < 0:
            end = size
        header = request[start:end].split(b" ")
        command = header[0]
        start = end + 2
        field = _LENGTH_FIELD.get(command)
        if field is not None and len(header) > field:
            start += int(header[field]) + 2
        if command in _NO_KEY:
            found.append((command, ()))
        elif command in _MULTI_KEY:
            found.append((command, tuple(header[1:])))
        else:
            found.append((command, tuple(header[1:2])))
    return found
