"""Client-side distribution: keys land on the server Django's ``PyMemcacheCache`` picks.

Placement is observed, not computed: each test writes through one client, then asks every
memcached directly (one plain single-server pymemcache client per node) which keys it
holds.  Same LOCATION list, same servers for every key, so ``PyMemcacheCache`` and
``layered_cache`` can share a fleet and read each other's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymemcache.client.hash import HashClient

from layered_cache import CacheConnectionError, Client, ServerUnavailableError
from tests.scale.helpers import (
    AT_ONCE,
    CALL_TIMEOUT,
    REFERENCE_TIMEOUT,
    holders,
    outcome,
    owners,
    poll,
    within,
)
from tests.servers import MemcachedProcess

ASCII_KEYS = [f"user:{index}:profile" for index in range(400)] + [
    f"k{index}" for index in range(100)
]
UNICODE_KEYS = [f"ключ:{index}" for index in range(40)] + [
    "clé",
    "été:1",
    "键",
    "キー:2",
    "emoji:🙂",
    "ünïcödé",
]
KEYS = ASCII_KEYS + UNICODE_KEYS


def _flush(servers: list[MemcachedProcess]) -> None:
    for server in servers:
        server.flush()


@pytest.fixture
def django_pair() -> Iterator[Callable[[Any], tuple[Any, Any]]]:
    """``make(LOCATION)`` -> (Django's PyMemcacheCache, our MemcacheCache), closed at the end."""
    from django.core.cache.backends.memcached import PyMemcacheCache

    from layered_cache.django import MemcacheCache

    made: list[tuple[Any, Any]] = []

    def make(location: Any) -> tuple[Any, Any]:
        theirs = PyMemcacheCache(
            location,
            {"OPTIONS": {"timeout": REFERENCE_TIMEOUT, "connect_timeout": REFERENCE_TIMEOUT}},
        )
        ours = MemcacheCache(location, {"OPTIONS": {"timeout": CALL_TIMEOUT}})
        made.append((theirs, ours))
        return theirs, ours

    yield make
    for theirs, ours in made:
        theirs.close()
        ours.client.close()


@pytest.mark.parametrize("size", [2, 3, 5])
def test_django_backends_place_every_key_on_the_same_server(
    fleet: list[MemcachedProcess], size: int, django_pair: Callable[[Any], tuple[Any, Any]]
) -> None:
    servers = fleet[:size]
    theirs, ours = django_pair([server.address for server in servers])
    stored_keys = [theirs.make_key(key) for key in KEYS]
    assert stored_keys == [ours.make_key(key) for key in KEYS]

    with within(20):
        assert theirs.set_many({key: ("django", key) for key in KEYS}) == []
        django_placement = owners(servers, stored_keys)
        # Ours reads everything Django wrote...
        assert ours.get_many(KEYS) == {key: ("django", key) for key in KEYS}

        _flush(servers)
        assert ours.set_many({key: ("ours", key) for key in KEYS}) == []
        our_placement = owners(servers, stored_keys)
        # ...and Django reads everything ours wrote.
        assert theirs.get_many(KEYS) == {key: ("ours", key) for key in KEYS}

    assert our_placement == django_placement
    # Every server carries a share (rendezvous hashing spreads evenly; 1/(2N) is lenient).
    shares = [list(our_placement.values()).count(server.address) for server in servers]
    assert min(shares) >= len(KEYS) / (2 * size), shares


@pytest.mark.parametrize("size", [2, 3, 5])
def test_client_places_keys_like_pymemcache_hashclient(
    fleet: list[MemcachedProcess], size: int
) -> None:
    servers = fleet[:size]
    location = [server.address for server in servers]
    # default_noreply=False: with pymemcache's default the writes are not waited for,
    # and the check below could read the servers before they stored anything.
    reference = HashClient(
        location,
        allow_unicode_keys=True,
        connect_timeout=REFERENCE_TIMEOUT,
        timeout=REFERENCE_TIMEOUT,
        default_noreply=False,
    )
    try:
        assert reference.set_many(dict.fromkeys(KEYS, b"hashclient")) == []
        expected = owners(servers, KEYS)
    finally:
        reference.close()
    _flush(servers)
    with Client(location, timeout=CALL_TIMEOUT, connect_timeout=CALL_TIMEOUT) as client:
        assert client.set_many(dict.fromkeys(KEYS, "ours")) == []
        observed = owners(servers, KEYS)
        assert {key: client.server_for(key) for key in KEYS} == observed
    assert observed == expected


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(lambda addresses: addresses, id="list"),
        pytest.param(";".join, id="semicolons"),
        pytest.param(",".join, id="commas"),
    ],
)
def test_location_spellings_django_accepts_give_the_same_placement(
    fleet: list[MemcachedProcess],
    spell: Callable[[list[str]], Any],
    django_pair: Callable[[Any], tuple[Any, Any]],
) -> None:
    servers = fleet[:3]
    addresses = [server.address for server in servers]
    theirs, ours = django_pair(spell(addresses))
    keys = ASCII_KEYS[:200]
    assert theirs.set_many(dict.fromkeys(keys, 1)) == []
    django_placement = owners(servers, [theirs.make_key(key) for key in keys])
    _flush(servers)
    assert ours.set_many(dict.fromkeys(keys, 1)) == []
    assert owners(servers, [ours.make_key(key) for key in keys]) == django_placement


def test_tuples_and_host_port_strings_are_the_same_servers(fleet: list[MemcachedProcess]) -> None:
    servers = fleet[:3]
    with (
        Client([server.address for server in servers]) as by_string,
        Client([(server.host, server.port) for server in servers]) as by_tuple,
    ):
        assert by_string.servers == by_tuple.servers
        assert [by_string.server_for(key) for key in KEYS] == [
            by_tuple.server_for(key) for key in KEYS
        ]


def test_placement_depends_on_the_server_names_not_their_order() -> None:
    # No server is contacted: building a client makes no connection.
    names = ["127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003"]
    with (
        Client(names) as given,
        Client(list(reversed(names))) as reversed_order,
        Client([name.replace("127.0.0.1", "localhost") for name in names]) as renamed,
    ):
        placement = [given.server_for(key) for key in KEYS]
        assert [reversed_order.server_for(key) for key in KEYS] == placement
        # The same servers under other names: a different placement for many keys.
        renamed_placement = [
            renamed.server_for(key).replace("localhost", "127.0.0.1") for key in KEYS
        ]
        moved = sum(a != b for a, b in zip(placement, renamed_placement, strict=True))
        assert moved > len(KEYS) / 3


def test_bytes_keys_are_placed_like_hashclient_which_differs_from_their_str_spelling(
    fleet: list[MemcachedProcess],
) -> None:
    # pymemcache's rendezvous hash formats the key with f"{node}-{key}", so b"k" hashes as
    # "b'k'": the bytes spelling of a key may live on another server than its str spelling.
    # Django only uses str keys; we keep HashClient's behaviour for bytes keys too.
    servers = fleet[:3]
    location = [server.address for server in servers]
    keys = [key.encode() for key in ASCII_KEYS[:200]]
    reference = HashClient(
        location,
        connect_timeout=REFERENCE_TIMEOUT,
        timeout=REFERENCE_TIMEOUT,
        default_noreply=False,
    )
    try:
        assert reference.set_many(dict.fromkeys(keys, b"x")) == []
        expected = owners(servers, [key.decode() for key in keys])
    finally:
        reference.close()
    _flush(servers)
    with Client(location, timeout=CALL_TIMEOUT) as client:
        assert client.set_many(dict.fromkeys(keys, b"x")) == []
        assert owners(servers, [key.decode() for key in keys]) == expected
        moved = [key for key in keys if client.server_for(key) != client.server_for(key.decode())]
        assert moved  # about 2/3 of them with three servers
        assert client.get(moved[0].decode()) is None  # written as bytes, missed as str


def test_a_dead_node_keeps_its_keys_and_fails_fast_while_skipped(
    memcached_factory: Callable[..., MemcachedProcess],
) -> None:
    servers = [memcached_factory(name=f"ring-{index}") for index in range(3)]
    with Client(
        [server.address for server in servers],
        timeout=CALL_TIMEOUT,
        connect_timeout=CALL_TIMEOUT,
        retry_timeout=0.5,
        dead_timeout=0.5,
    ) as client:
        keys = ASCII_KEYS[:90]
        assert client.set_many(dict.fromkeys(keys, "v")) == []
        placement = owners(servers, keys)
        victim = servers[0]
        lost = [key for key in keys if placement[key] == victim.address]
        kept = [key for key in keys if placement[key] != victim.address]
        victim.kill()

        first, took = outcome(lambda: client.get(lost[0]))
        assert isinstance(first, CacheConnectionError), first
        assert took < AT_ONCE
        # While it is skipped: an immediate ServerUnavailableError, no re-hashing, no write
        # anywhere else, and every other key keeps working.
        with within(1):
            for key in lost[:10]:
                with pytest.raises(ServerUnavailableError, match=victim.address):
                    client.set(key, "elsewhere?")
        assert not any(holders(servers[1:], lost[:10]).values())
        assert client.get_many(kept) == dict.fromkeys(kept, "v")
        assert all(client.server_for(key) == victim.address for key in lost)

        # Back (empty, same port): once its retry time has come, its keys are served again.
        victim.start()
        poll(lambda: client.get(lost[0]), lambda result: result is None, timeout=3)
        assert client.set(lost[0], "back") is True
        assert holders(servers, [lost[0]])[lost[0]] == [victim.address]
