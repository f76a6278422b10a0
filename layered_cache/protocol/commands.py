"""What a request says, read back: its commands, their keys, where each one ends.

The engines send requests as opaque bytes; observers that need to know which
keys a request carried, or whether it writes, read it back here instead of
every step carrying its keys (the hot path builds no extra tuple). A TLS
connection cuts a long pipeline where its commands end
(:mod:`layered_cache.protocol.framing`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["WRITE_COMMANDS", "command_ends", "request_commands"]

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


def command_ends(request: bytes) -> list[int]:
    """Where each command of a (possibly pipelined) request ends, past its data block.

    A command it cannot read (no line end, no length) runs to the end of ``request``.

    Example:
        >>> command_ends(b"set a 0 0 2\\r\\nhi\\r\\ndelete b\\r\\nmn\\r\\n")
        [17, 27, 31]
    """
    # One tight loop (a pipeline may hold thousands of commands): each line is found,
    # and only a command with a data block has its header split.
    find = request.find
    length_field = _LENGTH_FIELD.get
    size = len(request)
    ends: list[int] = []
    end = 0
    while end < size:
        line_end = find(b"\r\n", end)
        if line_end < 0:
            break
        name_end = find(b" ", end, line_end)
        field = length_field(request[end:name_end]) if name_end > end else None
        if field is None:
            end = line_end + 2
        else:
            try:
                length = int(request[name_end + 1 : line_end].split(b" ")[field - 1])
            except (IndexError, ValueError):
                break
            if length < 0:
                break
            end = line_end + 4 + length
        ends.append(min(end, size))
    if (ends[-1] if ends else 0) < size:
        ends.append(size)  # (what it cannot read, as one command)
    return ends


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
