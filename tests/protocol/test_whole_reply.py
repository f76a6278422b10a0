"""``whole_reply``: the one-read shortcut answers exactly what the parser would, or steps aside."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layered_cache.protocol import Expect, ProtocolError, ReplyParser, whole_reply


def _parsed(kind: int, keys: Any, data: bytes) -> Any:
    """What a fresh parser makes of ``data`` as the whole answer: the reply, or why not."""
    parser = ReplyParser()
    parser.expect(kind, keys)
    parser.feed(data)
    try:
        reply = parser.next_reply()
    except ProtocolError:
        return "protocol error"
    return "incomplete" if reply is None else reply


PLAIN = [
    (Expect.VALUES, {b"k"}, b"END\r\n", []),
    (Expect.VALUES, {b"k"}, b"VALUE k 5 3\r\nabc\r\nEND\r\n", [(b"k", 5, b"abc", None)]),
    (Expect.VALUES, {b"k"}, b"VALUE k 0 4\r\na\r\nb\r\nEND\r\n", [(b"k", 0, b"a\r\nb", None)]),
    (Expect.VALUES, None, b"VALUE k 1 0 77\r\n\r\nEND\r\n", [(b"k", 1, b"", b"77")]),
    (Expect.STORE, None, b"STORED\r\n", b"STORED"),
    (Expect.STORE, None, b"NOT_STORED\r\n", b"NOT_STORED"),
    (Expect.DELETE, None, b"NOT_FOUND\r\n", b"NOT_FOUND"),
    (Expect.TOUCH, None, b"TOUCHED\r\n", b"TOUCHED"),
    (Expect.ARITHMETIC, None, b"42\r\n", 42),
]


@pytest.mark.parametrize(("kind", "keys", "data", "reply"), PLAIN)
def test_plain_replies_are_read_as_the_parser_reads_them(
    kind: int, keys: Any, data: bytes, reply: Any
) -> None:
    assert whole_reply(kind, keys, data) == reply == _parsed(kind, keys, data)


@pytest.mark.parametrize(
    ("kind", "keys", "data"),
    [
        (Expect.VALUES, {b"k"}, b"VALUE other 0 1\r\nx\r\nEND\r\n"),  # not asked for
        (Expect.VALUES, {b"k"}, b"VALUE k 0 3\r\nab"),  # partial
        (Expect.VALUES, {b"k"}, b"VALUE k 0 1\r\nx\r\nEND\r\nEND\r\n"),  # more than one reply
        (Expect.VALUES, {b"k"}, b"VALUE k 0 2\r\nx\r\nEND\r\n"),  # shorter than its header
        (Expect.VALUES, None, b"VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n"),  # two values
        (Expect.STORE, None, b"SERVER_ERROR out of memory\r\n"),
        (Expect.STORE, None, b"STORED\r\nSTORED\r\n"),
        (Expect.STORE, None, b"STORED"),
        (Expect.DELETE, None, b"STORED\r\n"),
        (Expect.ARITHMETIC, None, b"CLIENT_ERROR bad\r\n"),
        (Expect.ARITHMETIC, None, b"NOT_FOUND\r\n"),
        (Expect.META, None, b"HD\r\n"),
    ],
)
def test_anything_else_is_left_to_the_parser(kind: int, keys: Any, data: bytes) -> None:
    assert whole_reply(kind, keys, data) is None


@given(
    kind=st.sampled_from(
        [Expect.VALUES, Expect.STORE, Expect.DELETE, Expect.TOUCH, Expect.ARITHMETIC]
    ),
    data=st.one_of(
        st.binary(max_size=60),
        st.sampled_from([row[2] for row in PLAIN]).flatmap(
            lambda d: st.tuples(st.integers(0, len(d)), st.binary(max_size=8)).map(
                lambda cut: d[: cut[0]] + cut[1]
            )
        ),
    ),
)
def test_never_a_reply_the_parser_would_not_give(kind: int, data: bytes) -> None:
    quick = whole_reply(kind, {b"k"}, data)
    if quick is not None:
        assert quick == _parsed(kind, {b"k"}, data)
