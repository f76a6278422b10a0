"""Property-based checks against a real server: valid keys round-trip, invalid keys never leave."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layered_cache import Client, InvalidKeyError
from layered_cache.serialization import (
    JSONSerializer,
    PickleSerializer,
    SignedPickleSerializer,
)
from tests.servers import MemcachedProcess

# Printable, non-space characters, any script: what the key rule allows.
KEY_CHARS = st.characters(blacklist_categories=("Cs",), min_codepoint=33).filter(
    lambda ch: ch != "\x7f" and not ch.isspace() and ord(ch) not in range(0x80, 0xA0)
)
VALID_KEYS = st.text(KEY_CHARS, min_size=1, max_size=60).filter(
    lambda key: len(key.encode()) <= 250 and all(b > 32 and b != 127 for b in key.encode())
)
INVALID_KEYS = st.one_of(
    st.text(min_size=1).map(lambda text: text + " "),
    st.text().map(lambda text: "\r\n" + text),
    st.text(min_size=251, max_size=300, alphabet="x"),
    st.just(""),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
PICKLE_VALUES = st.one_of(
    JSON_VALUES, st.binary(), st.tuples(st.integers(), st.text()), st.sets(st.integers())
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def clients(memcached_session: MemcachedProcess) -> Iterator[dict[str, Client]]:
    made = {
        "pickle": Client(memcached_session.address, serializer=PickleSerializer()),
        "json": Client(memcached_session.address, serializer=JSONSerializer()),
        "signed": Client(
            memcached_session.address, serializer=SignedPickleSerializer("property-test-key-123")
        ),
    }
    yield made
    for client in made.values():
        client.close()


@SETTINGS
@given(key=VALID_KEYS, value=PICKLE_VALUES)
def test_valid_keys_and_picklable_values_round_trip(
    clients: dict[str, Client], key: str, value: Any
) -> None:
    for name in ("pickle", "signed"):
        assert clients[name].set(key, value)
        assert clients[name].get(key) == value


@SETTINGS
@given(key=VALID_KEYS, value=JSON_VALUES)
def test_json_values_round_trip(clients: dict[str, Client], key: str, value: Any) -> None:
    assert clients["json"].set(key, value)
    assert clients["json"].get(key) == value


@SETTINGS
@given(key=INVALID_KEYS)
def test_invalid_keys_never_reach_the_server(
    clients: dict[str, Client], memcached_session: MemcachedProcess, key: str
) -> None:
    before = memcached_session.stats()["cmd_set"]
    with pytest.raises(InvalidKeyError):
        clients["pickle"].set(key, "value")
    with pytest.raises(InvalidKeyError):
        clients["pickle"].get_many(["fine", key])
    assert memcached_session.stats()["cmd_set"] == before
