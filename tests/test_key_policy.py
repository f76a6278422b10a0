"""Key policies: strict refuses, hash digests; valid keys stay byte-identical; no two keys meet.

The pure properties (hypothesis) cover the whole key layout of ``layered_cache._keys``:
plain keys, digest forms, namespaced keys and generation keys. The rest runs every
keyed method on real memcached with ``key_policy="hash"``, on both engines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layered_cache import Client, ConfigurationError, InvalidKeyError
from layered_cache._keys import (
    MARK,
    MAX_KEY_LENGTH,
    encode_key,
    generation_key,
    key_policy,
    key_problem,
    namespace_name,
    namespace_prefix,
)
from tests.servers import MemcachedProcess

HASH = key_policy("hash")
STRICT = key_policy("strict")
FORBIDDEN = re.compile(rb"[\x00-\x20\x7f]")

# Any key at all: text of any script (lone surrogates included), control characters,
# spaces, long keys, and raw bytes.
ANY_TEXT = st.text(min_size=0, max_size=300) | st.text(
    st.sampled_from(["a", " ", "\n", "é", "\x7f", "\x00", ":", "\ud800", "€"]), max_size=400
)
ANY_KEY = ANY_TEXT | st.binary(max_size=300)
NAMES = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FFF).filter(
        lambda ch: ch != "\x7f" and not ch.isspace() and not 0x80 <= ord(ch) < 0xA0
    ),
    min_size=1,
    max_size=30,
)
GENERATIONS = st.integers(min_value=1, max_value=2**62).map(lambda n: b"%d" % n)


def wire_valid(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_KEY_LENGTH and FORBIDDEN.search(raw) is None


def identity(key: str | bytes) -> bytes:
    """What tells two keys apart: str keys are their UTF-8 bytes (as on the wire)."""
    return key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key


def valid_literal(key: str | bytes) -> bool:
    return key_problem(key) is None and MARK not in identity(key)


# -- pure properties -------------------------------------------------------------------------


@given(ANY_KEY)
def test_hash_policy_always_gives_a_key_memcached_takes(key: str | bytes) -> None:
    assert wire_valid(HASH.encode(key))


@given(ANY_KEY)
def test_a_valid_key_is_sent_exactly_as_it_is(key: str | bytes) -> None:
    if key_problem(key) is None and MARK not in identity(key):
        assert HASH.encode(key) == encode_key(key) == STRICT.encode(key)
    else:
        assert HASH.encode(key) != identity(key)


@given(st.text(max_size=300))
def test_str_keys_valid_for_strict_are_never_hashed(key: str) -> None:
    # Django makes str keys: whatever strict accepts, hash sends byte for byte (interop).
    if key_problem(key) is None:
        assert HASH.encode(key) == key.encode()


@given(st.lists(ANY_KEY, min_size=2, max_size=6, unique_by=identity))
@settings(max_examples=300)
def test_different_keys_never_share_a_stored_key(keys: list[str | bytes]) -> None:
    encoded = [HASH.encode(key) for key in keys]
    assert len(set(encoded)) == len(keys)
    assert HASH.encode_many(keys) == encoded


@given(ANY_KEY)
def test_a_digest_form_can_never_be_a_literal_key(key: str | bytes) -> None:
    """A digest form holds MARK, which no valid literal key sent as-is does (and no str can)."""
    raw = HASH.encode(key)
    if raw != identity(key):
        assert raw.count(MARK) == 1
        readable, digest = raw.split(MARK)
        assert re.fullmatch(rb"[0-9a-f]{64}", digest)
        assert digest == hashlib.sha256(MARK + identity(key)).hexdigest().encode()
        # What a str key could be on the wire never contains MARK: no collision possible.
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert MARK not in readable
        readable.decode("utf-8")  # the readable start is text


def test_the_readable_start_tells_what_the_key_is() -> None:
    raw = HASH.encode("search:green tea/" + "x" * 300)
    assert raw.startswith(b"search:green_tea/xxx")
    assert len(raw) == MAX_KEY_LENGTH
    assert HASH.encode("naïve café " * 30).decode("utf-8", "replace").startswith("naïve_café_")


@given(
    NAMES,
    GENERATIONS,
    st.lists(st.tuples(st.sampled_from(["a", "bb"]), GENERATIONS, ANY_KEY), max_size=4),
    ANY_KEY,
)
@settings(max_examples=300)
def test_namespaced_keys_meet_no_other_key(
    name: str, generation: bytes, others: list[tuple[str, bytes, Any]], key: str | bytes
) -> None:
    """Across namespaces, generations, plain keys, digests and generation keys: all distinct."""
    made: dict[bytes, Any] = {}

    def place(raw: bytes, what: Any) -> None:
        assert wire_valid(raw)
        assert made.setdefault(raw, what) == what, (raw, what, made[raw])

    for ns, gen, k in [(name, generation, key), *others]:
        nb = namespace_name(ns)
        prefix, label = namespace_prefix(nb, gen)
        place(HASH.within(prefix, label).encode(k), ("ns", nb, gen, identity(k)))
        place(generation_key(nb), ("generation", nb))
        if valid_literal(k) and len(prefix) + len(identity(k)) <= MAX_KEY_LENGTH:
            assert STRICT.within(prefix, label).encode(k) == prefix + identity(k)
        place(HASH.encode(k), ("plain", identity(k)))
    # A plain key spelled like a namespaced key, as bytes, is digested, not met.
    nb = namespace_name(name)
    prefix, label = namespace_prefix(nb, generation)
    place(HASH.encode(prefix + b"k"), ("plain", prefix + b"k"))
    place(HASH.within(prefix, label).encode("k"), ("ns", nb, generation, b"k"))


def test_strict_refuses_what_hash_digests() -> None:
    for key in ["has space", "x" * 251, "crlf\r\n", "lone\ud800"]:
        with pytest.raises(InvalidKeyError):
            STRICT.encode(key)
        assert STRICT.problem(key) is not None
        assert HASH.problem(key) is None
        assert wire_valid(HASH.encode(key))


@pytest.mark.parametrize("policy", [STRICT, HASH], ids=["strict", "hash"])
def test_keys_that_are_not_text_are_refused_by_both(policy: Any) -> None:
    for key in [None, 1, bytearray(b"k"), ["a"]]:
        with pytest.raises(InvalidKeyError, match="str or bytes"):
            policy.encode(key)
        with pytest.raises(InvalidKeyError, match="str or bytes"):
            policy.encode_many(["ok", key])
        assert policy.problem(key) is not None


def test_strict_in_a_namespace_names_the_room_left() -> None:
    prefix, label = namespace_prefix(b"user:42", b"123")
    policy = STRICT.within(prefix, label)
    room = MAX_KEY_LENGTH - len(prefix)
    assert policy.encode("k" * room) == prefix + b"k" * room
    with pytest.raises(InvalidKeyError, match=f"at most {room}") as caught:
        policy.encode("k" * (room + 1))
    assert "kkkk" not in str(caught.value)
    assert policy.problem("k" * (room + 1)) is not None
    assert HASH.within(prefix, label).encode("k" * (room + 1)).startswith(b"user:42:123:kkk")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("has space", "whitespace"),
        ("x" * 101, "at most 100"),
        (b"bin\xffary", "0xff"),
        (7, "str or bytes"),
    ],
)
def test_bad_namespace_names(name: Any, problem: str) -> None:
    with pytest.raises(InvalidKeyError, match=problem) as caught:
        namespace_name(name)
    if isinstance(name, str) and len(name) > 3:
        assert name not in str(caught.value)


def test_unknown_policy_refused() -> None:
    with pytest.raises(ConfigurationError, match="key_policy must be 'strict' or 'hash'"):
        key_policy("md5")
    with pytest.raises(ConfigurationError, match="key_policy"):
        Client("127.0.0.1:1", key_policy="loose")


# -- on real memcached, both engines ----------------------------------------------------------

BAD = ["search:green tea", "x" * 300, "tab\there", "line\r\nflush_all", "é" * 200, b"raw \xff"]


def test_every_method_takes_any_key(memcached: MemcachedProcess, make: Callable[..., Any]) -> None:
    client = make(memcached.address, key_policy="hash")
    assert client.key_policy == "hash"
    for key in BAD:
        assert client.set(key, "v") is True
        assert client.get(key) == "v"
        value, token = client.gets(key)
        assert value == "v"
        assert client.cas(key, "w", token) is True
        assert client.replace(key, "x") is True
        assert client.append(key, "") is True
        assert client.touch(key, 60) is True
        assert client.delete(key) is True
        assert client.add(key, 1) is True
        assert client.incr(key, 2) == 3
        assert client.decr(key, 1) == 2
        assert client.delete(key) is True
        assert client.incr(key, 1, initial=10) == 10
        assert client.mark_stale(key) is True
    assert client.set_many(dict.fromkeys(BAD, 1)) == []
    assert client.get_many([*BAD, "absent key"]) == dict.fromkeys(BAD, 1)
    assert set(client.gets_many(BAD)) == set(BAD)
    assert client.delete_many(BAD) is True
    assert client.get_many(BAD) == {}


def test_get_or_set_is_herd_safe_with_hashed_keys(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address, key_policy="hash")
    calls = []
    key = "report for " + "a very long query " * 20
    for _ in range(3):
        assert client.get_or_set(key, lambda: calls.append(1) or "computed") == "computed"
    assert calls == [1]
    assert client.get(key) == "computed"


def test_hashed_keys_are_shared_by_both_engines_and_valid_keys_by_everyone(
    memcached: MemcachedProcess,
) -> None:
    from tests.engines import client_maker

    with client_maker("async")(memcached.address, key_policy="hash") as aclient:
        hashing = Client(memcached.address, key_policy="hash")
        strict = Client(memcached.address)
        hashing.set("green tea", 1)
        assert aclient.get("green tea") == 1
        aclient.set("ok:key", 2)
        assert strict.get("ok:key") == 2  # a valid key is the same key under either policy
        strict.set("other", 3)
        assert hashing.get("other") == 3
        assert aclient.get_many(["green tea", "other"]) == {"green tea": 1, "other": 3}


def test_strict_still_refuses_before_sending(
    memcached: MemcachedProcess, make: Callable[..., Any]
) -> None:
    client = make(memcached.address)
    assert client.key_policy == "strict"
    with pytest.raises(InvalidKeyError):
        client.set("green tea", 1)
    with pytest.raises(InvalidKeyError):
        client.get_many(["ok", "x" * 251])


@pytest.mark.parametrize("where", ["plain", "namespace"])
def test_classic_get_or_set_leases_follow_the_policy(
    memcached: MemcachedProcess, where: str
) -> None:
    """Without meta (older memcached, twemproxy) the lease key goes through the policy too."""
    with Client(memcached.address, key_policy="hash") as client:
        client._nodes[next(iter(client._nodes))].meta = False  # the add-based lease path
        target: Any = client if where == "plain" else client.namespace("user:1")
        key = "report for " + "a very long query " * 20
        calls: list[int] = []
        for _ in range(2):
            assert target.get_or_set(key, lambda: calls.append(1) or "v") == "v"
        assert calls == [1]
        assert target.get(key) == "v"
        assert target.get(key + ":lease") is None  # the lease was released
