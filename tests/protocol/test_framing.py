"""Cutting a pipelined request at command boundaries (for TLS records), byte by byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from layered_cache.protocol import requests
from layered_cache.protocol.commands import command_ends
from layered_cache.protocol.framing import TLS_RECORD_SIZE, command_writes, write_commands


def _meta_set(i: int, size: int) -> bytes:
    # Data that looks like commands and line ends must not be cut at.
    data = (b"\r\nms x 5 q\r\n" * (size // 12 + 1))[:size]
    return requests.meta_set(b"k%d" % i, data, b"T0 F0 q")


def _command(i: int, kind: int, size: int) -> bytes:
    if kind == 0:
        return _meta_set(i, size)
    if kind == 1:
        return requests.store(b"set", b"k%d" % i, 0, 0, b"v" * size, noreply=i % 2 == 0)
    if kind == 2:
        return requests.cas(b"k%d" % i, 3, 0, b"c" * size, 12345, noreply=False)
    if kind == 3:
        return requests.delete(b"k%d" % i, noreply=False)
    return requests.get([b"key-%d" % j for j in range(size // 8 + 1)])


def _check(commands: list[bytes], limit: int) -> None:
    request = b"".join(commands)
    writes = [bytes(w) for w in command_writes(request, limit)]
    assert b"".join(writes) == request
    ends = set()
    offset = 0
    for command in commands:
        offset += len(command)
        ends.add(offset)
    offset = 0
    for write in writes:
        offset += len(write)
        assert offset in ends  # every write ends where a command does
        if len(write) > limit:  # only a command longer than a record goes alone
            assert write in commands


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 40_000)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([64, 1000, TLS_RECORD_SIZE]),
)
def test_writes_are_whole_commands(shapes: list[tuple[int, int]], limit: int) -> None:
    _check([_command(i, kind, size) for i, (kind, size) in enumerate(shapes)], limit)


def test_writes_fill_records_and_big_commands_go_alone() -> None:
    small = [_meta_set(i, 3000) for i in range(80)] + [requests.META_NOOP]
    writes = command_writes(b"".join(small))
    assert all(len(w) <= TLS_RECORD_SIZE for w in writes)
    assert len(writes) == 16  # five commands a record, not one write each
    big = _meta_set(1, 100_000)
    writes = command_writes(small[0] + big + small[1])
    assert [bytes(w) for w in writes] == [small[0], big, small[1]]


def test_a_request_of_one_record_is_one_write() -> None:
    request = b"".join(_meta_set(i, 100) for i in range(10))
    sent: list[object] = []
    write_commands(sent.append, request)
    assert sent == [request]


def test_what_it_cannot_read_goes_whole_from_there() -> None:
    head = requests.delete(b"a", noreply=False) * 2000
    for tail in (b"ms k x q\r\n" + b"z" * 20_000, b"get " + b"k" * 20_000):
        writes = command_writes(head + tail)
        assert b"".join(bytes(w) for w in writes) == head + tail
        assert bytes(writes[-1]).endswith(tail)


def test_command_ends_never_go_back() -> None:
    for request in (b"ms k -30 q\r\nabc\r\nmn\r\n", b"set k 0 0\r\n", b"mn", b"", b"version\r\nmn"):
        ends = command_ends(request)
        assert ends == sorted(set(ends))
        assert ends[-1:] == ([len(request)] if request else [])
