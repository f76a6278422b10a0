"""The Client and the Django backend through twemproxy (nutcracker 0.5.0) over real memcached.

What twemproxy forwards works unchanged; what it refuses (``flush_all``, ``stats``, meta
commands ...) ends at once with an error, never a hang; a server dying behind it is seen
as ``twemproxy`` reports it, with and without ``auto_eject_hosts``.  The exact wire
behaviour is recorded in ``tests/twemproxy.py``; ``docs/scaling.rst`` explains it to users.

Every client here has a 1 s timeout and every call is bounded.  Tests marked ``xfail``
describe the behaviour we want from the core and do not have yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from layered_cache import (
    CacheTimeoutError,
    Client,
    LayeredCacheError,
    ServerResponseError,
    ServerUnavailableError,
    UpstreamUnavailableError,
)
from layered_cache.auth import AsciiAuth, MemCachierAuth
from tests.scale.helpers import (
    AT_ONCE,
    CALL_TIMEOUT,
    REFERENCE_TIMEOUT,
    holders,
    outcome,
    owners,
    poll,
    read_raw,
    within,
)
from tests.servers import MemcachedProcess
from tests.twemproxy import NutcrackerProcess


def proxied(proxy: NutcrackerProcess, **options: Any) -> Client:
    options.setdefault("timeout", CALL_TIMEOUT)
    options.setdefault("connect_timeout", CALL_TIMEOUT)
    return Client(proxy.address, **options)


def spread_keys(count: int, prefix: str = "key") -> list[str]:
    return [f"{prefix}:{index}" for index in range(count)]


def by_backend(placement: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key, address in placement.items():
        groups.setdefault(address, []).append(key)
    return groups


# -- what twemproxy forwards ------------------------------------------------------------------


def test_single_key_commands_work_through_twemproxy(nutcracker: NutcrackerProcess) -> None:
    with proxied(nutcracker) as client, within(6):
        assert client.set("doc", {"a": 1}) is True
        assert client.get("doc") == {"a": 1}
        assert client.get("absent") is None
        assert client.add("doc", "other") is False
        assert client.add("fresh", "first") is True
        assert client.replace("doc", {"a": 2}) is True
        assert client.replace("absent", 1) is False

        assert client.set("text", b"middle") is True
        assert client.append("text", b">") is True
        assert client.prepend("text", b"<") is True
        assert client.get("text") == b"<middle>"
        assert client.append("absent", b"x") is False

        value, token = client.gets("doc")
        assert value == {"a": 2}
        assert client.cas("doc", {"a": 3}, token) is True
        assert client.cas("doc", {"a": 4}, token) is False  # written since that token
        assert client.cas("absent", 1, token) is None
        assert client.get("doc") == {"a": 3}

        assert client.set("hits", 5) is True
        assert client.incr("hits", 3) == 8
        assert client.decr("hits", 10) == 0  # memcached stops at 0
        assert client.incr("absent", 1) is None

        assert client.touch("doc", 300) is True
        assert client.touch("absent", 300) is False
        assert client.delete("doc") is True
        assert client.delete("doc") is False

        assert client.set("quiet", 1, noreply=True) is True
        assert client.get("quiet") == 1


def test_multi_key_commands_are_split_over_every_backend(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    keys = spread_keys(300)
    with proxied(nutcracker) as client, within(10):
        assert client.set_many({key: key.upper() for key in keys}) == []
        placement = owners(nutcracker_backends, keys)
        # twemproxy, not the client, spread them: all three servers hold a fair share.
        assert {len(group) for group in by_backend(placement).values()} <= set(range(50, 151))
        assert len(by_backend(placement)) == 3

        assert client.get_many([*keys, "absent"]) == {key: key.upper() for key in keys}
        tokens = client.gets_many(keys[:20])
        assert sorted(tokens) == sorted(keys[:20])
        assert client.delete_many(keys[:150]) is True
        assert client.get_many(keys) == {key: key.upper() for key in keys[150:]}
    assert not any(holders(nutcracker_backends, keys[:150]).values())


def test_long_and_unicode_keys_pass_through(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    longest = "k" * 250
    unicode_keys = ["ключ", "clé:été", "键:1", "emoji:🙂"]
    with proxied(nutcracker) as client, within(6):
        assert client.set(longest, 1) is True
        assert client.get(longest) == 1
        assert client.set_many(dict.fromkeys(unicode_keys, "v")) == []
        assert client.get_many(unicode_keys) == dict.fromkeys(unicode_keys, "v")
    assert all(len(places) == 1 for places in holders(nutcracker_backends, unicode_keys).values())


def test_version_is_answered_by_a_server_behind_the_proxy(nutcracker: NutcrackerProcess) -> None:
    with proxied(nutcracker) as client, within(4):
        versions = client.version()
    assert list(versions) == [nutcracker.address]
    assert versions[nutcracker.address][0].isdigit()  # memcached's "1.6.18", not twemproxy's


def test_version_depends_on_one_fixed_server_of_the_pool(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    backends = [memcached_factory(name=f"version-{index}") for index in range(3)]
    proxy = nutcracker_factory(backends, timeout=1000)
    failed_with: list[str] = []
    with proxied(proxy) as client, within(6):
        for backend in backends:
            backend.kill()
            result, _ = outcome(client.version)
            if isinstance(result, UpstreamUnavailableError):
                assert "Connection refused" in str(result)
                failed_with.append(backend.name)
            else:
                assert result == {proxy.address: result[proxy.address]}, result
            backend.start()
    assert len(failed_with) == 1, failed_with  # twemproxy asks that server, always


def test_a_value_over_the_item_limit_is_refused_and_the_proxy_stays_usable(
    nutcracker: NutcrackerProcess,
) -> None:
    with proxied(nutcracker) as client, within(6):
        with pytest.raises(ServerResponseError, match="too large"):
            client.set("huge", b"x" * (1024 * 1024 + 1))
        assert client.set("small", 1) is True
        assert client.get("small") == 1


def test_features_built_on_the_meta_protocol_fall_back_to_classic_commands(
    nutcracker: NutcrackerProcess,
) -> None:
    # twemproxy closes the connection on meta commands (mn, mg, ms ...): the client must
    # notice once and use the classic commands, without marking the proxy down.
    with proxied(nutcracker) as client, within(6):
        assert client.incr("counter", 1, initial=10) == 10
        assert client.incr("counter", 1, initial=10) == 11
        assert client.get_or_set("lazy", lambda: "computed") == "computed"
        assert client.get_or_set("lazy", lambda: "again") == "computed"
        assert client.set_many({"a": 1, "b": 2}) == []
        assert client.get_many(["a", "b", "counter"]) == {"a": 1, "b": 2, "counter": 11}


# -- what twemproxy refuses -------------------------------------------------------------------

REFUSED = [
    pytest.param(b"flush_all\r\n", id="flush_all"),
    pytest.param(b"flush_all 0\r\n", id="flush_all-delay"),
    pytest.param(b"stats\r\n", id="stats"),
    pytest.param(b"stats items\r\n", id="stats-items"),
    pytest.param(b"verbosity 1\r\n", id="verbosity"),
    pytest.param(b"cache_memlimit 64\r\n", id="cache_memlimit"),
    pytest.param(b"gat 60 key\r\n", id="gat"),
    pytest.param(b"gats 60 key\r\n", id="gats"),
    pytest.param(b"mn\r\n", id="meta-noop"),
    pytest.param(b"mg key v\r\n", id="meta-get"),
    pytest.param(b"ms key 1\r\nx\r\n", id="meta-set"),
    pytest.param(b"md key\r\n", id="meta-delete"),
    pytest.param(b"delete key 0\r\n", id="delete-with-time"),
    pytest.param(b"get " + b"k" * 251 + b"\r\n", id="key-over-250-bytes"),
    pytest.param(b"set key 0 0 1\r\nxx\r\n", id="bad-data-length"),
    pytest.param(b"no_such_command\r\n", id="unknown-command"),
]


@pytest.mark.parametrize("request_bytes", REFUSED)
def test_twemproxy_closes_the_connection_on_what_it_does_not_support(
    nutcracker: NutcrackerProcess, request_bytes: bytes
) -> None:
    with within(1.5), pytest.raises(ConnectionError, match="closed by peer after b''"):
        nutcracker.command(request_bytes, timeout=CALL_TIMEOUT)


def test_a_refused_command_loses_the_replies_pipelined_before_it(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    with within(1.5), pytest.raises(ConnectionError, match="closed by peer after b''"):
        nutcracker.command(b"set piped 0 0 1\r\nx\r\nflush_all\r\n", timeout=CALL_TIMEOUT)
    # The set itself may or may not have been forwarded: its STORED never comes back.
    assert sum(map(len, holders(nutcracker_backends, ["piped"]).values())) <= 1


def test_flush_all_and_stats_through_twemproxy_fail_fast_and_flush_nothing(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    keys = spread_keys(30)
    with proxied(nutcracker, retry_timeout=0.2) as client:
        assert client.set_many(dict.fromkeys(keys, 1)) == []
        for command in (client.flush_all, client.stats):
            time.sleep(0.25)  # past the retry_timeout the previous failure started
            result, took = outcome(command)
            # Today: CacheConnectionError "closed the connection"; never a hang.
            assert isinstance(result, LayeredCacheError), result
            assert took < AT_ONCE
    assert all(holders(nutcracker_backends, keys).values())  # nothing was flushed


def test_flush_all_with_noreply_through_twemproxy_flushes_nothing(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    with proxied(nutcracker) as client, within(4):
        assert client.set("kept", 1) is True
        # noreply: the client does not wait for an answer, so it cannot see the hang-up...
        assert client.flush_all(noreply=True) is True
        # ...which only shows on the next call over that connection (retried on a new one).
        assert client.get("kept") == 1
    assert any(holders(nutcracker_backends, ["kept"]).values())


@pytest.mark.parametrize("command", ["flush_all", "stats"])
def test_unsupported_command_names_the_limitation_and_keeps_the_proxy_in_service(
    nutcracker: NutcrackerProcess, command: str
) -> None:
    with proxied(nutcracker) as client, within(4):
        assert client.set("kept", 1) is True
        with pytest.raises(ServerResponseError, match=rf"(?is){command}.*twemproxy"):
            getattr(client, command)()
        # The proxy answered everything else a moment ago and will again: not an outage.
        assert client.get("kept") == 1


# -- authentication: twemproxy has none, and a handshake is just a set ----------------------


def test_memcachier_handshake_through_twemproxy_stores_the_password_as_an_item(
    nutcracker: NutcrackerProcess, nutcracker_backends: list[MemcachedProcess]
) -> None:
    auth = MemCachierAuth("app-user", "app-secret")
    with proxied(nutcracker, auth=auth) as client, within(4):
        assert client.set("k", 1) is True  # the "handshake" succeeded...
    # ...because twemproxy forwarded it as `set app-user 0 0 10` to a backend.
    stored = [read_raw(backend, "app-user") for backend in nutcracker_backends]
    assert b"app-secret" in stored


def test_ascii_auth_through_twemproxy_authenticates_the_proxy_for_everyone(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    backend = memcached_factory(credentials=("alice", "right"), name="auth-backend")
    proxy = nutcracker_factory([backend])
    with proxied(proxy) as anonymous, within(6):
        with pytest.raises(ServerResponseError, match="unauthenticated"):
            anonymous.get("k")
        # One client authenticates twemproxy's shared connection to the server...
        with proxied(proxy, auth=AsciiAuth("alice", "right")) as alice:
            assert alice.set("k", "alice's") is True
        # ...and from then on anyone gets in, with any password or none.
        assert anonymous.get("k") == "alice's"
        with proxied(proxy, auth=AsciiAuth("alice", "wrong")) as intruder:
            assert intruder.get("k") == "alice's"


# -- a server behind the proxy dies -----------------------------------------------------------


def _three_behind_a_proxy(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
    **proxy_options: Any,
) -> tuple[NutcrackerProcess, list[MemcachedProcess]]:
    backends = [memcached_factory(name=f"behind-proxy-{index}") for index in range(3)]
    return nutcracker_factory(backends, **proxy_options), backends


def _victim(
    client: Client, backends: list[MemcachedProcess], count: int = 60
) -> tuple[MemcachedProcess, list[str], list[str]]:
    """Write ``count`` keys; return the busiest backend, its keys, and everyone else's."""
    keys = spread_keys(count)
    assert client.set_many({key: f"old:{key}" for key in keys}) == []
    groups = by_backend(owners(backends, keys))
    victim = max(backends, key=lambda backend: len(groups.get(backend.address, [])))
    mine = groups[victim.address]
    others = [key for key in keys if key not in set(mine)]
    return victim, mine, others


def test_without_auto_eject_a_dead_servers_keys_fail_at_once_and_others_work(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory, nutcracker_factory, auto_eject_hosts=False, timeout=1000
    )
    with proxied(proxy) as client:
        victim, lost, kept = _victim(client, backends)
        victim.kill()
        for key in lost[:5]:
            result, took = outcome(lambda key=key: client.get(key))
            assert isinstance(result, UpstreamUnavailableError), result
            assert "Connection refused" in str(result) or "Connection reset" in str(result)
            assert took < AT_ONCE  # no timeout was waited for
        # The proxy answered, so the client keeps using it for every other key.
        assert client.get_many(kept) == {key: f"old:{key}" for key in kept}
        # A multi-key get touching the dead server fails as a whole.
        with pytest.raises(UpstreamUnavailableError):
            client.get_many([*kept[:3], lost[0]])
        with pytest.raises(UpstreamUnavailableError):
            client.set(lost[0], "new")
        # Back (empty, same port): twemproxy reconnects by itself; nothing was re-hashed.
        victim.start()
        poll(lambda: client.get(lost[0]), lambda result: result is None, timeout=2)
        assert client.get(kept[0]) == f"old:{kept[0]}"


def test_without_auto_eject_a_stalled_server_costs_twemproxys_timeout(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory, nutcracker_factory, auto_eject_hosts=False, timeout=300
    )
    with proxied(proxy) as client:
        victim, lost, kept = _victim(client, backends)
        victim.pause()
        result, took = outcome(lambda: client.get(lost[0]))
        assert isinstance(result, UpstreamUnavailableError), result
        assert "timed out" in str(result)
        assert 0.25 < took < CALL_TIMEOUT  # twemproxy's 300 ms, not our 2 s
        assert client.get(kept[0]) == f"old:{kept[0]}"
        victim.resume()


def test_without_a_proxy_timeout_a_stalled_server_takes_the_whole_proxy_out(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory, nutcracker_factory, auto_eject_hosts=False, timeout=None
    )
    with proxied(proxy, timeout=0.5, retry_timeout=5) as client:
        victim, lost, kept = _victim(client, backends)
        victim.pause()
        result, took = outcome(lambda: client.get(lost[0]))
        assert isinstance(result, CacheTimeoutError), result
        assert took < 0.5 + AT_ONCE
        # Our client only sees one server -- the proxy -- and skips it: every key is out.
        with within(AT_ONCE), pytest.raises(ServerUnavailableError):
            client.get(kept[0])
        victim.resume()


def test_auto_eject_rehashes_a_dead_servers_keys_after_the_failure_limit(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory,
        nutcracker_factory,
        auto_eject_hosts=True,
        server_failure_limit=2,
        server_retry_timeout=800,
        timeout=1000,
    )
    with proxied(proxy) as client:
        victim, lost, kept = _victim(client, backends)
        survivors = [backend for backend in backends if backend is not victim]
        victim.kill()
        # A few errors (at most the failure limit), then misses: the keys moved elsewhere.
        seen = poll(lambda: client.get(lost[0]), lambda result: result is None, timeout=2)
        errors = [result for result, _ in seen[:-1]]
        assert len(errors) <= 2
        assert all(isinstance(error, UpstreamUnavailableError) for error in errors), errors
        assert all(took < AT_ONCE for _, took in seen)
        # nutcracker's stats port says so too (its counters refresh every 100 ms).
        poll(
            lambda: proxy.server_stats(victim)["server_ejected_at"],
            lambda ejected_at: isinstance(ejected_at, int) and ejected_at > 0,
            timeout=1,
        )

        # While ejected, its keys are written to and read from the survivors.
        assert client.set(lost[0], "new") is True
        assert client.get(lost[0]) == "new"
        assert holders(survivors, [lost[0]])[lost[0]]
        assert client.get_many(kept) == {key: f"old:{key}" for key in kept}

        # Back (empty, same port) after server_retry_timeout: its keys go home, and the
        # copy written meanwhile is orphaned on a survivor.
        victim.start()
        poll(lambda: client.get(lost[0]), lambda result: result is None, timeout=3)
        assert holders(survivors, [lost[0]])[lost[0]]


def test_auto_eject_serves_stale_values_when_a_stalled_server_comes_back(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory,
        nutcracker_factory,
        auto_eject_hosts=True,
        server_failure_limit=1,
        server_retry_timeout=500,
        timeout=200,
    )
    with proxied(proxy) as client:
        victim, lost, _ = _victim(client, backends)
        key = lost[0]
        victim.pause()  # a stall (GC pause, overloaded host), not a crash: the data stays
        seen = poll(lambda: client.get(key), lambda result: result is None, timeout=2)
        assert all(isinstance(result, UpstreamUnavailableError) for result, _ in seen[:-1]), seen
        assert client.set(key, "new") is True  # lands on a survivor
        assert client.get(key) == "new"
        victim.resume()
        # Once twemproxy retries the server, the key maps back to it: the old value returns.
        poll(lambda: client.get(key), lambda result: result == f"old:{key}", timeout=3)


def test_fail_silent_mode_treats_a_dead_server_behind_the_proxy_as_a_miss(
    memcached_factory: Callable[..., MemcachedProcess],
    nutcracker_factory: Callable[..., NutcrackerProcess],
) -> None:
    proxy, backends = _three_behind_a_proxy(
        memcached_factory, nutcracker_factory, auto_eject_hosts=False, timeout=1000
    )
    with proxied(proxy, ignore_exceptions=True) as client, within(4):
        victim, lost, kept = _victim(client, backends)
        victim.kill()
        assert client.get(lost[0]) is None
        assert client.ignored_errors == 1
        # ...and the proxy itself is not skipped: the other keys keep working.
        assert client.get(kept[0]) == f"old:{kept[0]}"


# -- the Django backend through twemproxy -----------------------------------------------------


@pytest.fixture
def django_caches(nutcracker: NutcrackerProcess) -> Iterator[tuple[Any, Any]]:
    from django.core.cache.backends.memcached import PyMemcacheCache

    from layered_cache.django import MemcacheCache

    ours = MemcacheCache(
        nutcracker.address,
        {"OPTIONS": {"timeout": CALL_TIMEOUT, "connect_timeout": CALL_TIMEOUT}},
    )
    theirs = PyMemcacheCache(nutcracker.address, {"OPTIONS": {"timeout": REFERENCE_TIMEOUT}})
    yield ours, theirs
    ours.client.close()
    theirs.close()


def test_django_backend_through_twemproxy(
    django_caches: Any, nutcracker_backends: list[MemcachedProcess]
) -> None:
    cache, django_own = django_caches
    keys = spread_keys(60, prefix="django")
    with within(6):
        cache.set("page", {"html": "<p>"}, timeout=60)
        assert cache.get("page") == {"html": "<p>"}
        assert cache.get("absent", "default") == "default"
        assert cache.add("page", "x") is False
        assert cache.add("new", "x") is True
        assert cache.has_key("new")
        assert cache.set_many({key: key for key in keys}) == []
        assert cache.get_many(keys) == {key: key for key in keys}
        cache.set("views", 1)
        assert cache.incr("views", 2) == 3
        assert cache.decr("views") == 2
        with pytest.raises(ValueError, match="not found"):
            cache.incr("absent")
        assert cache.touch("page", 120) is True
        assert cache.get_or_set("lazy", lambda: "made") == "made"
        assert cache.delete("page") is True
        cache.delete_many(keys[:30])
        assert cache.get_many(keys) == {key: key for key in keys[30:]}
        # Django's own PyMemcacheCache through the same proxy reads what ours wrote.
        assert django_own.get_many(keys) == {key: key for key in keys[30:]}
        django_own.set("theirs", [1, 2])
        assert cache.get("theirs") == [1, 2]
    stored = holders(nutcracker_backends, [cache.make_key(key) for key in keys[30:]])
    assert {place for places in stored.values() for place in places} == {
        backend.address for backend in nutcracker_backends
    }


def test_django_clear_through_twemproxy_fails_fast_and_clears_nothing(
    django_caches: Any,
) -> None:
    cache, django_own = django_caches
    cache.set("kept", 1)
    with within(1.5), pytest.raises(LayeredCacheError):
        cache.clear()
    # Django's PyMemcacheCache fails the same way (pymemcache's MemcacheUnexpectedCloseError).
    with within(1.5), pytest.raises(MemcacheUnexpectedCloseError):
        django_own.clear()
    assert django_own.get("kept") == 1


def test_django_clear_through_twemproxy_names_the_limitation_and_the_cache_stays_up(
    django_caches: Any,
) -> None:
    cache, _ = django_caches
    cache.set("kept", 1)
    with within(4):
        with pytest.raises(ServerResponseError, match=r"(?is)flush_all.*twemproxy"):
            cache.clear()
        assert cache.get("kept") == 1
