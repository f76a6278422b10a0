"""Request encoders: the exact bytes of every command, and arguments refused before sending."""

from __future__ import annotations

import pytest

from layered_cache.errors import InvalidArgumentError
from layered_cache.protocol import requests


@pytest.mark.parametrize(
    ("made", "wire"),
    [
        (requests.get([b"a"]), b"get a\r\n"),
        (requests.get([b"a", b"b"]), b"get a b\r\n"),
        (requests.gets([b"a", b"b"]), b"gets a b\r\n"),
        (requests.store(b"set", b"k", 1, 60, b"xy", False), b"set k 1 60 2\r\nxy\r\n"),
        (requests.store(b"add", b"k", 0, 0, b"", True), b"add k 0 0 0 noreply\r\n\r\n"),
        (requests.store(b"append", b"k", 0, 0, b"z", False), b"append k 0 0 1\r\nz\r\n"),
        (requests.cas(b"k", 2, 0, b"7", 42, False), b"cas k 2 0 1 42\r\n7\r\n"),
        (requests.cas(b"k", 2, 0, b"7", b"42", True), b"cas k 2 0 1 42 noreply\r\n7\r\n"),
        (requests.delete(b"k", False), b"delete k\r\n"),
        (requests.delete(b"k", True), b"delete k noreply\r\n"),
        (requests.arithmetic(b"incr", b"n", 5, False), b"incr n 5\r\n"),
        (
            requests.arithmetic(b"decr", b"n", 2**64 - 1, True),
            b"decr n 18446744073709551615 noreply\r\n",
        ),
        (requests.touch(b"k", -1, False), b"touch k -1\r\n"),
        (requests.stats(()), b"stats\r\n"),
        (requests.stats(("settings",)), b"stats settings\r\n"),
        (requests.flush_all(0, False), b"flush_all 0\r\n"),
        (requests.flush_all(10, True), b"flush_all 10 noreply\r\n"),
        (requests.VERSION, b"version\r\n"),
        (requests.META_NOOP, b"mn\r\n"),
        (requests.meta_get(b"k", b"v f k q"), b"mg k v f k q\r\n"),
        (requests.meta_set(b"k", b"ab", b"T0 F1"), b"ms k 2 T0 F1\r\nab\r\n"),
        (requests.meta_delete(b"k", b""), b"md k\r\n"),
        (requests.meta_delete(b"k", b"I T30"), b"md k I T30\r\n"),
        (requests.meta_arithmetic(b"n", b"D3 v MD"), b"ma n D3 v MD\r\n"),
    ],
)
def test_exact_bytes(made: bytes, wire: bytes) -> None:
    assert made == wire


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda: requests.check_expire("60"), "expire must be an integer"),
        (lambda: requests.check_expire(1.5), "expire must be an integer"),
        (lambda: requests.check_expire(True), "expire must be an integer"),
        (lambda: requests.check_flags(-1), "flags must be an integer from 0"),
        (lambda: requests.check_flags(2**32), "flags must be an integer from 0"),
        (lambda: requests.arithmetic(b"incr", b"n", -1, False), "value must be a non-negative"),
        (lambda: requests.arithmetic(b"incr", b"n", "1", False), "value must be a non-negative"),
        (lambda: requests.arithmetic(b"incr", b"n", 2**64, False), "value must be a non-negative"),
        (lambda: requests.cas(b"k", 0, 0, b"", "12a", False), "cas must be the token"),
        (lambda: requests.cas(b"k", 0, 0, b"", -3, False), "cas must be the token"),
        (lambda: requests.cas(b"k", 0, 0, b"", b"1 2", False), "cas must be the token"),
        (lambda: requests.touch(b"k", None, False), "expire must be an integer"),
        (lambda: requests.stats(("items\r\nflush_all",)), "stats arguments are single words"),
        (lambda: requests.flush_all(-1, False), "delay must be a non-negative"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_built(call: object, problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem):
        call()  # type: ignore[operator]
