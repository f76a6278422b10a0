"""The one reply parser: bytes in, complete replies out, for every command the clients send.

memcached's replies are not self-describing (``NOT_FOUND`` answers ``delete``,
``touch``, ``incr`` and ``cas`` alike; a ``get`` reply is any number of
``VALUE`` blocks and an ``END``), so the parser is told, in order, what each
reply should be (:meth:`ReplyParser.expect`, one call per request sent). It is
then fed whatever bytes arrive, split anywhere (:meth:`ReplyParser.feed`), and
asked for complete replies (:meth:`ReplyParser.next_reply`, which answers
``None`` while more bytes are needed). It never touches a socket, so the sync
and the asyncio engine drive the very same object.

Anything that does not fit what was expected raises :class:`ProtocolError`: a
line no command answers with, a malformed header, a value for a key nobody
asked for, a value not followed by CRLF, a line that never ends, bytes beyond
the last reply expected. The connection it came from can no longer be trusted; the engine
closes it. Error lines (``ERROR``, ``CLIENT_ERROR ...``, ``SERVER_ERROR ...``)
are replies, returned as :class:`ErrorReply` in the place of the expected one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Container
from typing import Any, Final, TypeAlias

__all__ = [
    "ErrorReply",
    "Expect",
    "Item",
    "MetaReply",
    "ProtocolError",
    "ReplyParser",
    "whole_reply",
]

#: ``(key, flags, data, cas)`` of one ``VALUE`` block; ``cas`` is None unless ``gets``.
Item: TypeAlias = tuple[bytes, int, bytes, "bytes | None"]

#: The longest line any reply may hold before its CRLF (a ``VALUE`` header with a
#: 250-byte key is under 300 bytes; ``stats`` lines are shorter still).
MAX_LINE: Final = 8192

#: The largest value any memcached can hold (its ``-I`` item size limit tops out at
#: 1 GiB): a header announcing more is garbage, not a reason to wait for (or buffer) it.
MAX_VALUE: Final = 1 << 30

# Bodies larger than this are gathered as a list of chunks and joined once,
# instead of growing one buffer chunk by chunk.
_GATHER_ABOVE: Final = 1 << 18

_VALUE = re.compile(rb"VALUE (\S{1,250}) (\d{1,10}) (\d{1,10})(?: (\d{1,20}))?\r\n")
_CONFIG = re.compile(rb"CONFIG (\S{1,250}) (\d{1,10}) (\d{1,10})\r\n")
_CONFIG_END: Final = b"END\r\n"
_ERROR_CODES: Final = frozenset({b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"})
_META_CODES: Final = frozenset({b"VA", b"HD", b"EN", b"NF", b"NS", b"EX"})


class ProtocolError(Exception):
    """The bytes received are not a reply to what was sent; the stream is out of step."""


class Expect:
    """What the next reply is; one per request, in the order the requests were sent.

    Each kind says what :meth:`ReplyParser.next_reply` returns for it (besides
    an :class:`ErrorReply`, which any kind but ``LINE`` may be).
    """

    #: Any one line, as bytes, for handshakes (their flow judges the line).
    LINE: Final = 0
    #: ``STORED``, ``NOT_STORED``, ``EXISTS`` or ``NOT_FOUND``, as bytes.
    STORE: Final = 1
    #: ``DELETED`` or ``NOT_FOUND``, as bytes.
    DELETE: Final = 2
    #: ``TOUCHED`` or ``NOT_FOUND``, as bytes.
    TOUCH: Final = 3
    #: The new value of a counter as an int, or ``b"NOT_FOUND"``.
    ARITHMETIC: Final = 4
    #: The version string after ``VERSION``, as bytes.
    VERSION: Final = 5
    #: ``OK`` (``flush_all``), as bytes.
    OK: Final = 6
    #: ``VALUE`` blocks up to ``END``: a list of ``(key, flags, data, cas)`` tuples.
    VALUES: Final = 7
    #: ``STAT <name> <value>`` lines up to ``END``: a dict of bytes to bytes.
    STATS: Final = 8
    #: One meta reply (``VA``, ``HD``, ``EN``, ``NF``, ``NS``, ``EX``): a :class:`MetaReply`.
    META: Final = 9
    #: Meta replies up to ``MN`` (quiet commands then ``mn``): a list of :class:`MetaReply`.
    META_BATCH: Final = 10
    #: ``CONFIG <key> <flags> <bytes>``, its body, ``END`` (a configuration endpoint's
    #: ``config get``): the body as bytes; a bare ``END`` (no such key) is ``b""``.
    CONFIG: Final = 11


_ONE_LINE: Final[dict[int, frozenset[bytes]]] = {
    Expect.STORE: frozenset({b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND"}),
    Expect.DELETE: frozenset({b"DELETED", b"NOT_FOUND"}),
    Expect.TOUCH: frozenset({b"TOUCHED", b"NOT_FOUND"}),
    Expect.OK: frozenset({b"OK"}),
}


#: What each set of one-line replies answers, for error messages.
_ANSWERING: Final[dict[frozenset[bytes], str]] = {
    _ONE_LINE[Expect.STORE]: "a storage command",
    _ONE_LINE[Expect.DELETE]: "delete",
    _ONE_LINE[Expect.TOUCH]: "touch",
    _ONE_LINE[Expect.OK]: "flush_all",
}


class ErrorReply:
    """An error line in place of a reply: ``ERROR``, ``CLIENT_ERROR ...``, ``SERVER_ERROR ...``.

    Attributes:
        code: ``b"ERROR"``, ``b"CLIENT_ERROR"`` or ``b"SERVER_ERROR"``.
        message: the text after the code (``b""`` for ``ERROR``).
    """

    __slots__ = ("code", "message")

    def __init__(self, code: bytes, message: bytes) -> None:
        self.code = code
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"ErrorReply({self.code!r}, {self.message!r})"


class MetaReply:
    """One meta reply: its code, its return flags, and its value for ``VA`` replies.

    Return flags are single letters, some followed by a token (``c123``,
    ``t30``, ``f1``, ``k<key>``), some alone (``W`` won, ``Z`` a win was already
    handed out, ``X`` stale).
    """

    __slots__ = ("code", "flags", "value")

    def __init__(self, code: bytes, flags: dict[str, bytes], value: bytes | None = None) -> None:
        self.code = code
        self.flags = flags
        self.value = value

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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetaReply) and (self.code, self.flags, self.value) == (
            other.code,
            other.flags,
            other.value,
        )

    def __hash__(self) -> int:  # pragma: no cover - replies are not dictionary keys
        return hash((self.code, self.value))

    def __repr__(self) -> str:
        return f"MetaReply({self.code!r}, {self.flags!r}, {self.value!r})"


def _error_reply(line: bytes) -> ErrorReply | None:
    code, _, message = line.partition(b" ")
    if code in _ERROR_CODES:
        return ErrorReply(code, message)
    return None


def _unexpected(line: bytes, what: str) -> ProtocolError:
    return ProtocolError(f"unexpected reply {line[:40]!r} to {what}")


def _oversized(length: int) -> ProtocolError:
    return ProtocolError(f"a value of {length} bytes announced, over any memcached's limit")


def _meta_flags(tokens: list[bytes]) -> dict[str, bytes]:
    flags: dict[str, bytes] = {}
    for token in tokens:
        letter = token[:1]
        if not letter.isalpha():
            raise ProtocolError(f"malformed meta flag {token[:20]!r}")
        flags[letter.decode("ascii")] = token[1:]
    return flags


def _line_end(buf: bytes, pos: int) -> int:
    """Where the line starting at ``pos`` ends (its CR), or -1 while it is incomplete.

    Raises:
        ProtocolError: no line end within :data:`MAX_LINE` bytes (a stream out of step).
    """
    end = buf.find(b"\r\n", pos)
    if end < 0 and len(buf) - pos > MAX_LINE:
        raise ProtocolError(f"a reply line longer than {MAX_LINE} bytes")
    return end


def whole_reply(kind: int, keys: Container[bytes] | None, data: bytes) -> Any:
    """The reply of ``kind`` when ``data`` is exactly one complete, plain reply, else None.

    The common case of a single-key command, whose whole reply arrives in one
    read (a value or ``END``, ``STORED``, a counter...), read without feeding a
    :class:`ReplyParser`. Anything else (an error line, a partial or longer
    reply, a value for a key not asked for) answers None: the caller then
    feeds ``data`` to its parser, which reads it or raises as it always does.
    """
    if kind == _VALUES:
        if data == b"END\r\n":
            return []
        match = _VALUE.match(data)
        if match is None:
            return None
        key, flags, size, cas = match.groups()
        start = match.end()
        stop = start + int(size)
        if len(data) != stop + 7 or not data.endswith(b"\r\nEND\r\n"):
            return None
        if keys is not None and key not in keys:
            return None
        return [(key, int(flags), data[start:stop], cas)]
    if not data.endswith(b"\r\n"):
        return None
    line = data[:-2]
    allowed = _ONE_LINE.get(kind)
    if allowed is not None:
        return line if line in allowed else None
    if kind == _ARITHMETIC and line.isdigit() and len(line) <= 20:
        return int(line)
    return None


_VALUES: Final = Expect.VALUES
_ARITHMETIC: Final = Expect.ARITHMETIC


class _Need:
    """More bytes are needed before the next reply is complete."""

    __slots__ = ()


_NEED: Final = _Need()


class ReplyParser:
    """Incremental parser for one connection's reply stream (see the module docstring).

    Example:
        >>> parser = ReplyParser()
        >>> parser.expect(Expect.VALUES, {b"k"})
        >>> parser.feed(b"VALUE k 0 2\\r\\nhi")
        >>> parser.next_reply() is None
        True
        >>> parser.feed(b"\\r\\nEND\\r\\n")
        >>> parser.next_reply()
        [(b'k', 0, b'hi', None)]
    """

    __slots__ = ("_buf", "_chunks", "_expected", "_gathered", "_partial", "_pos", "_want")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._expected: deque[tuple[int, Any]] = deque()
        #: What a multi-part reply (VALUES, STATS, META_BATCH) has gathered so far.
        self._partial: Any = None
        #: Bytes still missing from a value body, when that is what is awaited.
        self._want = 0
        self._chunks: list[bytes] | None = None
        self._gathered = 0

    # -- driving ----------------------------------------------------------------------

    def expect(self, kind: int, keys: Container[bytes] | None = None) -> None:
        """Say that the next request sent is answered by a reply of ``kind``.

        Args:
            kind: an :class:`Expect` constant.
            keys: for ``VALUES``, the keys asked for; a value for any other key
                is a :class:`ProtocolError`. For ``META_BATCH`` of commands sent
                with the ``k`` flag, the same for the ``k`` each reply returns.
                None accepts any key.
        """
        # One-line kinds are read by one reader, told which lines are allowed.
        self._expected.append((kind, _ONE_LINE.get(kind, keys)))

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server (any amount, split anywhere)."""
        if self._chunks is not None:
            # A large value body: gather the chunks, join them once it is all here.
            self._chunks.append(data)
            self._gathered += len(data)
            if self._gathered < self._want:
                return
            data = b"".join(self._chunks)
            self._chunks = None
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = data  # everything before was consumed: no copy at all
            self._pos = 0
        elif pos:
            self._buf = self._buf[pos:] + data
            self._pos = 0
        else:
            self._buf += data

    def next_reply(self) -> Any:
        """Return the next complete reply, or None while more bytes are needed.

        Raises:
            ProtocolError: the bytes received do not fit the expected reply.
        """
        if not self._expected:
            if self._pos < len(self._buf):
                raise ProtocolError(
                    f"unexpected bytes {self._buf[self._pos : self._pos + 40]!r} "
                    "with no request outstanding"
                )
            return None
        kind, keys = self._expected[0]
        reply = _READERS[kind](self, keys)
        if reply is _NEED:
            return None
        self._expected.popleft()
        if not self._expected and self._pos < len(self._buf) and type(reply) is not ErrorReply:
            # (After an error reply the rest of a pipeline may follow; the engine
            # closes the connection on the error anyway.)
            # A server answers each request once: bytes beyond the last expected
            # reply mean the stream is out of step (checked here, where it is free).
            raise ProtocolError(
                f"{len(self._buf) - self._pos} unexpected bytes after the last reply "
                f"({self._buf[self._pos : self._pos + 40]!r})"
            )
        return reply

    @property
    def buffered(self) -> bool:
        """Whether received bytes wait to be parsed (if not, the next reply needs a read)."""
        return self._pos < len(self._buf) or self._chunks is not None

    @property
    def idle(self) -> bool:
        """Whether nothing is expected and nothing buffered (safe to send the next request)."""
        return not self._expected and self._pos >= len(self._buf)

    def wanted(self) -> int:
        """How many bytes to ask the socket for next (at least 64 KiB, or a whole value body)."""
        if self._chunks is not None:
            return max(65536, self._want - self._gathered)
        return max(65536, self._want)

    def check_idle(self) -> None:
        """Raise :class:`ProtocolError` if bytes arrived that no request asked for."""
        if not self.idle:
            raise ProtocolError(
                f"{len(self._buf) - self._pos} unexpected bytes after the last reply "
                f"({self._buf[self._pos : self._pos + 40]!r})"
            )

    # -- readers (one per Expect kind) ----------------------------------------------

    def _line(self) -> bytes | None:
        buf = self._buf
        pos = self._pos
        end = _line_end(buf, pos)
        if end < 0:
            return None
        self._pos = end + 2
        return buf[pos:end]

    def _read_line(self, _keys: object) -> Any:
        line = self._line()
        return _NEED if line is None else line

    def _read_one_line(self, allowed: frozenset[bytes]) -> Any:
        buf = self._buf
        pos = self._pos
        end = buf.find(b"\r\n", pos)
        if end < 0:
            _line_end(buf, pos)  # raises if the line can no longer be one
            return _NEED
        self._pos = end + 2
        line = buf[pos:end]
        if line in allowed:
            return line
        return _error_reply(line) or self._fail(_unexpected(line, _ANSWERING[allowed]))

    def _read_arithmetic(self, _keys: object) -> Any:
        line = self._line()
        if line is None:
            return _NEED
        if line.isdigit() and len(line) <= 20:
            return int(line)
        if line == b"NOT_FOUND":
            return line
        return _error_reply(line) or self._fail(_unexpected(line, "incr/decr"))

    def _read_version(self, _keys: object) -> Any:
        line = self._line()
        if line is None:
            return _NEED
        if line.startswith(b"VERSION "):
            return line[8:]
        return _error_reply(line) or self._fail(_unexpected(line, "version"))

    def _read_values(self, keys: Container[bytes] | None) -> Any:
        items: list[Item] = self._partial if self._partial is not None else []
        buf = self._buf
        pos = self._pos
        value_header = _VALUE.match
        append = items.append
        # ``pos`` moves past each complete value; it is stored back only when this
        # returns (a protocol error ends the parser's use anyway).
        size_now = len(buf)
        while True:
            # The common case: a whole VALUE header at pos (one regex match).
            match = value_header(buf, pos)
            if match is None:
                if buf.startswith(b"END\r\n", pos):
                    self._pos = pos + 5
                    self._partial = None
                    self._want = 0
                    return items
                self._pos = pos
                end = _line_end(buf, pos)
                if end < 0:
                    self._partial = items
                    return _NEED
                line = buf[pos:end]
                error = _error_reply(line)
                if error is None:
                    raise _unexpected(line, "a get")
                self._pos = end + 2
                self._partial = None
                return error
            key, flags, size, cas = match.groups()
            if keys is not None and key not in keys:
                raise ProtocolError("a value for a key that was not asked for")
            length = int(size)
            if length > MAX_VALUE:
                raise _oversized(length)
            start = match.end()
            stop = start + length
            if size_now < stop + 2:
                self._pos = pos
                self._partial = items
                self._await_body(stop + 2 - size_now)
                return _NEED
            if not buf.startswith(b"\r\n", stop):
                raise ProtocolError("a value longer than its header says")
            append((key, int(flags), buf[start:stop], cas))
            pos = stop + 2

    def _read_stats(self, _keys: object) -> Any:
        stats: dict[bytes, bytes] = self._partial if self._partial is not None else {}
        while True:
            line = self._line()
            if line is None:
                self._partial = stats
                return _NEED
            if line == b"END":
                self._partial = None
                return stats
            if line.startswith(b"STAT "):
                name, _, value = line[5:].partition(b" ")
                if name:
                    stats[name] = value
                    continue
            self._partial = None
            return _error_reply(line) or self._fail(_unexpected(line, "stats"))

    def _read_config(self, _keys: object) -> Any:
        buf = self._buf
        pos = self._pos
        match = _CONFIG.match(buf, pos)
        if match is None:
            end = _line_end(buf, pos)
            if end < 0:
                return _NEED
            line = buf[pos:end]
            self._pos = end + 2
            if line == b"END":
                return b""
            return _error_reply(line) or self._fail(_unexpected(line, "config get"))
        start = match.end()
        stop = start + int(match.group(3))
        # The body ends with LF, then CRLF and END. Whether the stated length
        # counts that last LF (or the CRLF) is read leniently: up to three
        # line-end bytes may come between the body and END.
        end = buf.find(_CONFIG_END, stop, stop + 3 + len(_CONFIG_END))
        if end < 0:
            if len(buf) < stop + 3 + len(_CONFIG_END):
                self._await_body(stop + len(_CONFIG_END) - len(buf))
                return _NEED
            raise ProtocolError("a configuration longer than its header says, or no END after it")
        if buf[stop:end].strip(b"\r\n"):
            raise ProtocolError("a configuration longer than its header says")
        self._pos = end + len(_CONFIG_END)
        self._want = 0
        return buf[start:stop]

    def _meta(self, batch: bool) -> Any:
        """One meta reply, an ``MN`` (only in a batch, as the marker ``b"MN"``), or an error."""
        buf = self._buf
        pos = self._pos
        end = _line_end(buf, pos)
        if end < 0:
            return _NEED
        line = buf[pos:end]
        parts = line.split(b" ")
        code = parts[0]
        if code == b"VA":
            if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) > 10:
                raise _unexpected(line, "a meta command")
            length = int(parts[1])
            if length > MAX_VALUE:
                raise _oversized(length)
            start = end + 2
            stop = start + length
            if len(buf) < stop + 2:
                self._await_body(stop + 2 - len(buf))
                return _NEED
            if buf[stop : stop + 2] != b"\r\n":
                raise ProtocolError("a value longer than its header says")
            self._pos = stop + 2
            self._want = 0
            return MetaReply(code, _meta_flags(parts[2:]), buf[start:stop])
        if code in _META_CODES:
            self._pos = end + 2
            return MetaReply(code, _meta_flags(parts[1:]))
        if batch and line == b"MN":
            self._pos = end + 2
            return b"MN"
        error = _error_reply(line)
        if error is None:
            raise _unexpected(line, "a meta command")
        self._pos = end + 2
        return error

    def _read_meta(self, _keys: object) -> Any:
        return self._meta(batch=False)

    def _read_meta_batch(self, keys: Container[bytes] | None) -> Any:
        replies: list[MetaReply] = self._partial if self._partial is not None else []
        while True:
            reply = self._meta(batch=True)
            if reply is _NEED:
                self._partial = replies
                return _NEED
            if reply == b"MN":
                self._partial = None
                return replies
            if isinstance(reply, ErrorReply):
                self._partial = None
                return reply
            if keys is not None and reply.flags.get("k") not in keys:
                # Quiet commands sent with ``k`` answer with their key: a reply
                # without one, or for another key, belongs to no request sent here.
                raise ProtocolError("a meta reply for a key that was not asked for")
            replies.append(reply)

    # -- helpers ----------------------------------------------------------------------

    def _await_body(self, missing: int) -> None:
        self._want = missing
        if missing > _GATHER_ABOVE and self._chunks is None:
            if self._pos:
                self._buf = self._buf[self._pos :]
                self._pos = 0
            self._chunks = [self._buf]
            self._gathered = len(self._buf)
            self._want = missing + len(self._buf)
            self._buf = b""

    def _fail(self, error: ProtocolError) -> Any:
        raise error


_READERS: Final[dict[int, Callable[[ReplyParser, Any], Any]]] = {
    Expect.LINE: ReplyParser._read_line,
    Expect.STORE: ReplyParser._read_one_line,
    Expect.DELETE: ReplyParser._read_one_line,
    Expect.TOUCH: ReplyParser._read_one_line,
    Expect.ARITHMETIC: ReplyParser._read_arithmetic,
    Expect.VERSION: ReplyParser._read_version,
    Expect.OK: ReplyParser._read_one_line,
    Expect.VALUES: ReplyParser._read_values,
    Expect.STATS: ReplyParser._read_stats,
    Expect.META: ReplyParser._read_meta,
    Expect.META_BATCH: ReplyParser._read_meta_batch,
    Expect.CONFIG: ReplyParser._read_config,
}
