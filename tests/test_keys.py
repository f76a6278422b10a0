"""Key validation: Django's memcached rule, enforced before anything reaches the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layered_cache import InvalidKeyError
from layered_cache._keys import encode_key, key_problem

BAD_KEYS = [
    "",
    "has space",
    "crlf\r\nflush_all",
    "nul\x00",
    "tab\t",
    "del\x7f",
    "x" * 251,
    "é" * 126,  # 252 bytes once encoded
    b"bytes with space",
    "lone\ud800surrogate",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_refused_with_a_reason(key: str | bytes) -> None:
    with pytest.raises(InvalidKeyError) as caught:
        encode_key(key)
    assert "invalid memcached key" in str(caught.value)
    assert key_problem(key) is not None
    assert key_problem(key) in str(caught.value)
    if len(key) > 3:  # the key itself is never shown (it may be a session id)
        assert repr(key)[1:-1] not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("key", [None, 1, ["a"]])
def test_non_string_keys_refused(key: object) -> None:
    with pytest.raises(InvalidKeyError, match="str or bytes"):
        encode_key(key)  # type: ignore[arg-type]


def test_good_keys() -> None:
    assert encode_key("x" * 250) == b"x" * 250
    assert encode_key("café:ü") == "café:ü".encode()
    assert encode_key(b"raw:key") == b"raw:key"


@given(st.text(min_size=1))
def test_any_text_is_accepted_exactly_when_the_rule_allows(key: str) -> None:
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        allowed = False
    else:
        allowed = len(encoded) <= 250 and all(32 < byte != 127 for byte in encoded)
    if allowed:
        assert encode_key(key) == key.encode("utf-8")
    else:
        with pytest.raises(InvalidKeyError):
            encode_key(key)
