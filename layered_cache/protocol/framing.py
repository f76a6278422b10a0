"""Where a pipelined request may be cut: writes of whole commands, for TLS connections.

A TLS connection carries bytes in records of at most :data:`TLS_RECORD_SIZE`
bytes. memcached's TLS mode before 1.6.39 can stall on a pipeline (a
``set_many``, a ``delete_many``) whose records end in the middle of a
command: it reads a value straight into its item, leaves the rest of that
record decrypted inside OpenSSL, and then waits for the socket to become
readable again, which it never does once the client has sent everything.
Every reply stays unsent until the client's timeout.

memcached reads a whole record whenever its read buffer is empty, so the
stall cannot happen when every record starts and ends at a command boundary:
each write is then made of whole commands and at most one record long, or is
one command alone (a value longer than a record, which memcached reads into
the item to its exact end). :func:`write_commands` writes a request so.
Plain connections never need this: they are written in one piece.

The cut only decides where writes end; every byte is still written, in order.
A request this module cannot read (it builds none) is written whole from the
point it stops understanding it, no worse than without the cut.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from layered_cache.protocol.commands import command_ends

__all__ = ["TLS_RECORD_SIZE", "command_writes", "write_commands"]

#: The most plaintext one TLS record carries (2**14 bytes, TLS 1.2 and 1.3).
TLS_RECORD_SIZE: Final = 16384


def command_writes(request: bytes, limit: int = TLS_RECORD_SIZE) -> list[memoryview]:
    """``request`` cut into writes of whole commands, each at most ``limit`` bytes.

    A command longer than ``limit`` is a write of its own. The writes are views
    of ``request``, in order, and cover all of it.

    Example:
        >>> [bytes(w) for w in command_writes(b"delete a\\r\\ndelete b\\r\\n", limit=12)]
        [b'delete a\\r\\n', b'delete b\\r\\n']
    """
    view = memoryview(request)
    size = len(request)
    if size <= limit:
        return [view]
    writes = []
    start = 0  # where the write being gathered begins
    last = 0  # where its last whole command ends
    for end in command_ends(request):
        if end - start > limit and last > start:
            writes.append(view[start:last])  # this command does not fit: close the write
            start = last
        last = end
        if end - start >= limit:
            writes.append(view[start:end])
            start = end
    if start < size:
        writes.append(view[start:])
    return writes


def write_commands(write: Callable[[Any], object], request: bytes) -> None:
    """Hand ``request`` to ``write`` (a ``sendall``, a transport's ``write``) command-aligned.

    Each call of ``write`` is one of :func:`command_writes`; a request of one
    record or less is a single call, as it would be without the cut.
    """
    if len(request) <= TLS_RECORD_SIZE:
        write(request)
        return
    for piece in command_writes(request):
        write(piece)
