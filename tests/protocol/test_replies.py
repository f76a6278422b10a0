"""The reply parser, byte by byte, with no server: every reply kind, every split, and garbage."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layered_cache.protocol import ErrorReply, Expect, MetaReply, ProtocolError, ReplyParser
from layered_cache.protocol.replies import MAX_LINE, MAX_VALUE

# (kind, keys, wire bytes, the reply it must give)
CASES: list[tuple[str, int, Any, bytes, Any]] = [
    ("line", Expect.LINE, None, b"STORED\r\n", b"STORED"),
    ("stored", Expect.STORE, None, b"STORED\r\n", b"STORED"),
    ("not stored", Expect.STORE, None, b"NOT_STORED\r\n", b"NOT_STORED"),
    ("exists", Expect.STORE, None, b"EXISTS\r\n", b"EXISTS"),
    ("cas not found", Expect.STORE, None, b"NOT_FOUND\r\n", b"NOT_FOUND"),
    ("deleted", Expect.DELETE, None, b"DELETED\r\n", b"DELETED"),
    ("delete miss", Expect.DELETE, None, b"NOT_FOUND\r\n", b"NOT_FOUND"),
    ("touched", Expect.TOUCH, None, b"TOUCHED\r\n", b"TOUCHED"),
    ("incr", Expect.ARITHMETIC, None, b"18446744073709551615\r\n", 2**64 - 1),
    ("incr miss", Expect.ARITHMETIC, None, b"NOT_FOUND\r\n", b"NOT_FOUND"),
    ("version", Expect.VERSION, None, b"VERSION 1.6.18\r\n", b"1.6.18"),
    ("flush", Expect.OK, None, b"OK\r\n", b"OK"),
    ("get miss", Expect.VALUES, {b"k"}, b"END\r\n", []),
    ("get hit", Expect.VALUES, {b"k"}, b"VALUE k 5 3\r\nabc\r\nEND\r\n", [(b"k", 5, b"abc", None)]),
    (
        "gets many",
        Expect.VALUES,
        {b"a", b"b"},
        b"VALUE a 0 0 7\r\n\r\nVALUE b 1 4 9\r\n\r\nEN\r\nEND\r\n",
        [(b"a", 0, b"", b"7"), (b"b", 1, b"\r\nEN", b"9")],
    ),
    (
        "stats",
        Expect.STATS,
        None,
        b"STAT pid 1\r\nSTAT version 1.6.18 extra\r\nEND\r\n",
        {b"pid": b"1", b"version": b"1.6.18 extra"},
    ),
    (
        "meta hit",
        Expect.META,
        None,
        b"VA 2 f1 c9 W\r\nhi\r\n",
        MetaReply(b"VA", {"f": b"1", "c": b"9", "W": b""}, b"hi"),
    ),
    ("meta header", Expect.META, None, b"HD\r\n", MetaReply(b"HD", {})),
    ("meta miss", Expect.META, None, b"EN\r\n", MetaReply(b"EN", {})),
    (
        "meta batch",
        Expect.META_BATCH,
        None,
        b"VA 1 kx f0\r\n1\r\nNS ky\r\nMN\r\n",
        [MetaReply(b"VA", {"k": b"x", "f": b"0"}, b"1"), MetaReply(b"NS", {"k": b"y"})],
    ),
    (
        "server error",
        Expect.STORE,
        None,
        b"SERVER_ERROR out of memory\r\n",
        ErrorReply(b"SERVER_ERROR", b"out of memory"),
    ),
    (
        "client error",
        Expect.VALUES,
        None,
        b"CLIENT_ERROR bad\r\n",
        ErrorReply(b"CLIENT_ERROR", b"bad"),
    ),
    ("unknown command", Expect.META, None, b"ERROR\r\n", ErrorReply(b"ERROR", b"")),
    ("batch error", Expect.META_BATCH, None, b"HD\r\nERROR\r\n", ErrorReply(b"ERROR", b"")),
]


def _parse_in_pieces(kind: int, keys: Any, wire: bytes, cuts: list[int]) -> list[Any]:
    parser = ReplyParser()
    parser.expect(kind, keys)
    replies = []
    previous = 0
    for cut in [*sorted(cuts), len(wire)]:
        parser.feed(wire[previous:cut])
        previous = cut
        reply = parser.next_reply()
        if reply is not None:
            replies.append(reply)
    return replies


@pytest.mark.parametrize(
    ("kind", "keys", "wire", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_reply_kind_split_at_every_byte(
    kind: int, keys: Any, wire: bytes, expected: Any
) -> None:
    for cut in range(len(wire) + 1):
        replies = _parse_in_pieces(kind, keys, wire, [cut])
        assert replies == [expected], f"split at byte {cut}"


@pytest.mark.parametrize(
    ("kind", "keys", "wire", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_one_byte_at_a_time(kind: int, keys: Any, wire: bytes, expected: Any) -> None:
    assert _parse_in_pieces(kind, keys, wire, list(range(len(wire)))) == [expected]


def test_pipelined_replies_come_out_in_order() -> None:
    parser = ReplyParser()
    for kind in (Expect.STORE, Expect.VALUES, Expect.DELETE, Expect.ARITHMETIC):
        parser.expect(kind)
    parser.feed(b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\nDELETED\r\n7\r\n")
    assert [parser.next_reply() for _ in range(4)] == [
        b"STORED",
        [(b"k", 0, b"x", None)],
        b"DELETED",
        7,
    ]
    assert parser.idle
    assert parser.next_reply() is None


@pytest.mark.parametrize(
    ("kind", "keys", "wire", "problem"),
    [
        (Expect.STORE, None, b"DELETED\r\n", "unexpected reply"),
        (Expect.ARITHMETIC, None, b"-1\r\n", "unexpected reply"),
        (Expect.ARITHMETIC, None, b"123456789012345678901\r\n", "unexpected reply"),
        (Expect.VALUES, {b"k"}, b"VALUE other 0 1\r\nx\r\nEND\r\n", "not asked for"),
        (Expect.VALUES, None, b"VALUE k x 1\r\nx\r\nEND\r\n", "unexpected reply"),
        (Expect.VALUES, None, b"VALUE k 0 1\r\nxy\r\nEND\r\n", "longer than its header"),
        (Expect.VALUES, None, b"VALUE k 0 1 2 3\r\nx\r\nEND\r\n", "unexpected reply"),
        (Expect.VALUES, None, b"STORED\r\n", "unexpected reply"),
        (Expect.META, None, b"MN\r\n", "unexpected reply"),
        (Expect.META, None, b"VA x\r\n", "unexpected reply"),
        (Expect.META, None, b"HD 1\r\n", "malformed meta flag"),
        (Expect.STATS, None, b"STAT\r\n", "unexpected reply"),
        (Expect.VERSION, None, b"1.6\r\n", "unexpected reply"),
        (Expect.OK, None, b"STORED\r\n", "unexpected reply"),
    ],
)
def test_what_does_not_fit_is_a_protocol_error(
    kind: int, keys: Any, wire: bytes, problem: str
) -> None:
    parser = ReplyParser()
    parser.expect(kind, keys)
    parser.feed(wire)
    with pytest.raises(ProtocolError, match=problem):
        parser.next_reply()


def test_a_line_that_never_ends_is_a_protocol_error() -> None:
    for kind in (Expect.STORE, Expect.VALUES, Expect.META, Expect.META_BATCH, Expect.STATS):
        parser = ReplyParser()
        parser.expect(kind)
        parser.feed(b"VALUE " + b"x" * MAX_LINE)
        with pytest.raises(ProtocolError, match="longer than"):
            parser.next_reply()


def test_bytes_nobody_asked_for_are_a_protocol_error() -> None:
    parser = ReplyParser()
    parser.expect(Expect.STORE)
    parser.feed(b"STORED\r\nSTORED\r\n")
    with pytest.raises(ProtocolError, match="unexpected bytes after the last reply"):
        parser.next_reply()
    parser = ReplyParser()
    parser.expect(Expect.STORE)
    parser.feed(b"STORED\r\n")
    assert parser.next_reply() == b"STORED"
    parser.feed(b"late")  # what arrives after the last reply, with nothing outstanding
    assert not parser.idle
    with pytest.raises(ProtocolError, match="unexpected bytes"):
        parser.check_idle()
    with pytest.raises(ProtocolError, match="no request outstanding"):
        parser.next_reply()


def test_large_values_are_gathered_and_joined_once() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    wire = b"VALUE big 0 %d\r\n" % len(body) + body + b"\r\nEND\r\n"
    parser = ReplyParser()
    parser.expect(Expect.VALUES, {b"big"})
    for start in range(0, len(wire), 65536):
        parser.feed(wire[start : start + 65536])
        reply = parser.next_reply()
        if reply is not None:
            break
        assert parser.wanted() >= 65536
    assert reply == [(b"big", 0, body, None)]
    assert parser.idle


# -- property-based: valid streams, split anywhere; garbage never yields a wrong value ------

keys_st = st.binary(min_size=1, max_size=12).map(lambda b: bytes(33 + (c % 94) for c in b))
items_st = st.lists(
    st.tuples(
        keys_st,
        st.integers(0, 2**32 - 1),
        st.binary(max_size=40),
        st.one_of(st.none(), st.integers(0, 2**63).map(lambda n: b"%d" % n)),
    ),
    max_size=6,
)


def _values_wire(items: list[tuple[bytes, int, bytes, bytes | None]]) -> bytes:
    out = b""
    for key, flags, data, cas in items:
        out += b"VALUE %s %d %d%s\r\n%s\r\n" % (
            key,
            flags,
            len(data),
            b" " + cas if cas else b"",
            data,
        )
    return out + b"END\r\n"


@settings(max_examples=300, deadline=None)
@given(items_st, st.lists(st.integers(0, 400), max_size=8))
def test_valid_value_streams_parse_the_same_however_they_are_split(
    items: list[tuple[bytes, int, bytes, bytes | None]], cuts: list[int]
) -> None:
    wire = _values_wire(items)
    keys = {item[0] for item in items}
    replies = _parse_in_pieces(Expect.VALUES, keys, wire, [c for c in cuts if c <= len(wire)])
    assert replies == [items]


@settings(max_examples=500, deadline=None)
@given(items_st, st.data())
def test_corrupted_streams_give_a_clean_error_or_well_formed_values(
    items: list[tuple[bytes, int, bytes, bytes | None]], data: st.DataObject
) -> None:
    """Random damage (flipped, inserted, dropped bytes) never yields a value outside the grammar."""
    wire = bytearray(_values_wire(items))
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, max(0, len(wire) - 1)))
        action = data.draw(st.sampled_from(["flip", "insert", "drop"]))
        if action == "flip" and wire:
            wire[where] = data.draw(st.integers(0, 255))
        elif action == "insert":
            wire[where:where] = data.draw(st.binary(min_size=1, max_size=3))
        elif wire:
            del wire[where]
    keys = {item[0] for item in items}
    parser = ReplyParser()
    parser.expect(Expect.VALUES, keys)
    parser.feed(bytes(wire))
    try:
        reply = parser.next_reply()
    except ProtocolError:
        return
    if reply is None or isinstance(reply, ErrorReply):
        return
    for key, flags, value, cas in reply:
        assert key in keys
        assert 0 <= flags < 10**10
        assert cas is None or cas.isdigit()
        assert isinstance(value, bytes)


ALL_KINDS = [
    Expect.STORE,
    Expect.DELETE,
    Expect.TOUCH,
    Expect.ARITHMETIC,
    Expect.VERSION,
    Expect.OK,
    Expect.VALUES,
    Expect.STATS,
    Expect.META,
    Expect.META_BATCH,
]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_KINDS), st.binary(max_size=200))
def test_random_bytes_never_crash_the_parser(kind: int, wire: bytes) -> None:
    parser = ReplyParser()
    parser.expect(kind, {b"k"})
    parser.feed(wire)
    try:
        reply = parser.next_reply()
    except ProtocolError:
        return
    if kind == Expect.VALUES and isinstance(reply, list):
        assert all(item[0] == b"k" for item in reply)
    if kind == Expect.ARITHMETIC and isinstance(reply, int):
        assert 0 <= reply < 10**20


# -- adversarial: well-formed replies that do not answer what was asked ---------------------
#
# The property every engine relies on: whatever bytes arrive, the parser either returns a
# reply to what was asked (a value only for a key that was asked for), asks for more bytes
# that a real reply could still need, or raises ProtocolError; every call returns at once.

ASKED = {b"k", b"j"}
other_keys_st = keys_st.filter(lambda key: key not in ASKED)
#: Bytes a misbehaving server or proxy could plausibly send: fragments of real replies.
fragments_st = st.sampled_from(
    [
        b"VALUE k 0 1\r\nx\r\n",
        b"VALUE other 0 1\r\ny\r\n",
        b"VALUE k 0 99999999999\r\n",
        b"VALUE k 0 1073741825\r\n",
        b"END\r\n",
        b"STORED\r\n",
        b"DELETED\r\n",
        b"NOT_FOUND\r\n",
        b"42\r\n",
        b"VA 1 kk\r\nx\r\n",
        b"VA 1 kother\r\ny\r\n",
        b"VA 2000000000\r\n",
        b"NS kother\r\n",
        b"NS\r\n",
        b"HD kj\r\n",
        b"MN\r\n",
        b"STAT pid 1\r\n",
        b"SERVER_ERROR busy\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
    ]
)
adversarial_st = st.lists(st.one_of(fragments_st, st.binary(max_size=20)), max_size=12).map(
    b"".join
)


def _drive(kind: int, wire: bytes, cuts: list[int]) -> tuple[list[Any], bool]:
    """Feed ``wire`` split at ``cuts`` and collect replies; True if a ProtocolError ended it.

    Every ``next_reply`` must return at once (no call may spin), and a parser that still
    waits asks for no more than a real reply could need.
    """
    parser = ReplyParser()
    parser.expect(kind, ASKED)
    replies: list[Any] = []
    previous = 0
    try:
        for cut in [*sorted(c for c in cuts if c <= len(wire)), len(wire)]:
            parser.feed(wire[previous:cut])
            previous = cut
            started = time.monotonic()
            reply = parser.next_reply()
            assert time.monotonic() - started < 1.0
            if reply is not None:
                replies.append(reply)
                if not parser.idle:  # one request: anything more is out of step
                    parser.expect(kind, ASKED)
    except ProtocolError:
        return replies, True
    assert parser.wanted() <= MAX_VALUE + 2 + (1 << 16)
    return replies, False


def _assert_only_asked_keys(kind: int, reply: Any) -> None:
    if kind == Expect.VALUES and isinstance(reply, list):
        assert all(item[0] in ASKED for item in reply), reply
    if kind == Expect.META_BATCH and isinstance(reply, list):
        assert all(meta.flags.get("k") in ASKED for meta in reply), reply


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(ALL_KINDS), adversarial_st, st.lists(st.integers(0, 300), max_size=6))
def test_adversarial_bytes_never_give_a_value_for_a_key_not_asked_for(
    kind: int, wire: bytes, cuts: list[int]
) -> None:
    replies, _ = _drive(kind, wire, cuts)
    for reply in replies:
        _assert_only_asked_keys(kind, reply)


@settings(max_examples=300, deadline=None)
@given(other_keys_st, st.binary(max_size=30), st.booleans())
def test_a_valid_value_for_another_key_is_always_refused(
    key: bytes, data: bytes, after_a_good_one: bool
) -> None:
    good = b"VALUE k 0 1\r\nx\r\n" if after_a_good_one else b""
    wire = good + b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(data), data)
    for cut in range(len(wire) + 1):
        replies, failed = _drive(Expect.VALUES, wire, [cut])
        assert failed, f"split at {cut}"
        assert replies == [], f"split at {cut}"


@settings(max_examples=300, deadline=None)
@given(items_st.filter(bool), st.data())
def test_a_truncated_reply_is_never_a_reply(
    items: list[tuple[bytes, int, bytes, bytes | None]], data: st.DataObject
) -> None:
    """Cut anywhere before its end, a valid reply yields nothing yet (it waits, bounded);
    the rest then completes it exactly."""
    wire = _values_wire(items)
    keys = {item[0] for item in items}
    cut = data.draw(st.integers(0, len(wire) - 1))
    parser = ReplyParser()
    parser.expect(Expect.VALUES, keys)
    parser.feed(wire[:cut])
    assert parser.next_reply() is None
    assert parser.wanted() <= len(wire) + (1 << 16)
    parser.feed(wire[cut:])
    assert parser.next_reply() == items
    assert parser.idle


@settings(max_examples=200, deadline=None)
@given(
    st.integers(MAX_VALUE + 1, 10**10 - 1),
    st.sampled_from([b"VALUE k 0 %d\r\n", b"VALUE k 0 %d 7\r\n", b"VA %d f0\r\n"]),
)
def test_a_length_over_any_memcached_limit_is_refused_before_any_wait(
    length: int, header: bytes
) -> None:
    kind = Expect.META if header.startswith(b"VA ") else Expect.VALUES
    parser = ReplyParser()
    parser.expect(kind, ASKED)
    parser.feed(header % length)
    with pytest.raises(ProtocolError, match="over any memcached's limit"):
        parser.next_reply()


def _collect(parser: ReplyParser, into: list[Any]) -> None:
    """Append every complete reply to ``into`` until the parser needs more bytes."""
    while (reply := parser.next_reply()) is not None:
        into.append(reply)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"k", b"j"]), min_size=1, max_size=4),
    other_keys_st,
    st.data(),
)
def test_interleaved_pipelined_replies_stay_in_order_or_fail(
    asked: list[bytes], stray: bytes, data: st.DataObject
) -> None:
    """Pipelined gets, one reply each; a value for another key slipped in anywhere (a
    reply meant for someone else) makes the stream fail, never shifts a value to a key."""
    replies = [b"VALUE %s 0 2\r\n%s\r\nEND\r\n" % (key, key * 2) for key in asked]
    where = data.draw(st.integers(0, len(replies)))
    stray_reply = b"VALUE %s 0 2\r\nzz\r\nEND\r\n" % stray
    wire = b"".join(replies[:where]) + stray_reply + b"".join(replies[where:])
    parser = ReplyParser()
    for key in asked:
        parser.expect(Expect.VALUES, {key})
    parser.feed(wire)
    got: list[Any] = []
    with pytest.raises(ProtocolError):
        _collect(parser, got)
    # A stray reply after the last one fails the call that would return the last reply
    # (bytes beyond the last expected reply: the stream is out of step).
    kept = min(where, len(asked) - 1)
    assert got == [[(key, 0, key * 2, None)] for key in asked[:kept]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"NS kk", b"NS kj", b"EX kk", b"NF kj"]), max_size=4), st.data())
def test_a_meta_batch_answers_only_for_keys_sent(lines: list[bytes], data: st.DataObject) -> None:
    stray = data.draw(st.sampled_from([None, b"NS kother", b"NS", b"HD kzz"]))
    body = list(lines)
    if stray is not None:
        body.insert(data.draw(st.integers(0, len(body))), stray)
    wire = b"".join(line + b"\r\n" for line in body) + b"MN\r\n"
    parser = ReplyParser()
    parser.expect(Expect.META_BATCH, ASKED)
    parser.feed(wire)
    if stray is None:
        assert [meta.flags["k"] for meta in parser.next_reply()] == [
            line.split(b" k")[1] for line in lines
        ]
    else:
        with pytest.raises(ProtocolError, match="not asked for"):
            parser.next_reply()
