"""The test project's views, driven by Django's test client against real memcached.

Django calls ``cache.close()`` after every request (the ``request_finished`` signal); these
tests check what the backend does with its connections then, over TCP, TLS and the
MemCachier gateway, and that the seed's environment-only configuration still works.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client
from django.test.utils import override_settings
from django_helpers import BACKEND
from djproject import views

from layered_cache import AuthenticationError
from layered_cache.django import MemcacheCache, release_clients
from layered_cache.django import cache as cache_module
from layered_cache.transport import TCPTransport

REQUESTS = 5


def connection_counter(flavour: str, request: pytest.FixtureRequest) -> Callable[[], int]:
    """A function returning how many connections the backend has opened so far."""
    if flavour == "memcachier":
        gateway = request.getfixturevalue("memcachier")
        return lambda: int(gateway.handshakes)
    server = request.getfixturevalue("tls_memcached" if flavour == "tls" else "memcached")
    harness = 0

    def count() -> int:
        nonlocal harness
        harness += 1  # the stats connection itself counts
        return int(server.stats()["total_connections"]) - harness

    start = count()
    return lambda: count() - start


@pytest.fixture
def browser(backend_params: dict[str, Any]) -> Iterator[Client]:
    """Django's test client on the test project, with its cache on our backend."""
    with override_settings(CACHES={"default": backend_params}):
        yield Client()


def test_a_view_counting_visits(browser: Client) -> None:
    for number in range(1, REQUESTS + 1):
        response = browser.get("/visits/", {"name": f"visitor-{number}"})
        assert response.status_code == 200
        previous = None if number == 1 else f"visitor-{number - 1}"
        assert response.json() == {"visits": number, "previous": previous}


def test_get_or_set_memoizes_a_value(browser: Client) -> None:
    first = browser.get("/profile/7/").json()
    assert browser.get("/profile/7/").json() == first
    assert browser.get("/profile/8/").json()["render"] != first["render"]


def test_cache_page_serves_the_stored_response(browser: Client) -> None:
    first = browser.get("/page/")
    second = browser.get("/page/")
    assert first.content == second.content
    assert second.cookies["flavour"].value == "chocolate"
    assert "max-age=60" in second["Cache-Control"]


@pytest.mark.parametrize(("close_connections", "expected"), [(False, 1), (True, REQUESTS)])
def test_connections_survive_requests_unless_asked(
    flavour: str,
    backend_params: dict[str, Any],
    request: pytest.FixtureRequest,
    close_connections: bool,
    expected: int,
) -> None:
    options = {**backend_params.get("OPTIONS", {}), "close_connections": close_connections}
    with override_settings(CACHES={"default": {**backend_params, "OPTIONS": options}}):
        opened = connection_counter(flavour, request)
        browser = Client()
        for _ in range(REQUESTS):
            assert browser.get("/visits/").status_code == 200
        assert opened() == expected


def test_async_requests(browser: Client) -> None:
    async def visit() -> list[int]:
        client = AsyncClient()
        return [(await client.get("/visits/")).json()["visits"] for _ in range(3)]

    assert asyncio.run(visit()) == [1, 2, 3]


# -- configurations of the seed and of Heroku -------------------------------------------------


def test_the_seed_configuration_from_the_environment(
    memcachier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCACHE_SERVERS", memcachier.address)
    monkeypatch.setenv("MEMCACHE_USERNAME", memcachier.username)
    monkeypatch.setenv("MEMCACHE_PASSWORD", memcachier.password)
    seed = {
        "BACKEND": BACKEND,
        "OPTIONS": {"no_delay": True, "connect_timeout": 2, "timeout": 2},
    }
    with override_settings(CACHES={"default": seed}):
        browser = Client()
        assert [browser.get("/visits/").json()["visits"] for _ in range(3)] == [1, 2, 3]
    assert memcachier.handshakes == 1
    assert memcachier.failed_handshakes == 0


def test_heroku_memcachier_addon_environment(
    memcachier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCACHIER_SERVERS", memcachier.address)
    monkeypatch.setenv("MEMCACHIER_USERNAME", memcachier.username)
    monkeypatch.setenv("MEMCACHIER_PASSWORD", memcachier.password)
    with override_settings(CACHES={"default": {"BACKEND": BACKEND}}):
        assert Client().get("/visits/").json()["visits"] == 1
    assert memcachier.handshakes == 1


def test_location_in_settings_wins_over_the_environment(
    memcached: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCACHE_SERVERS", "127.0.0.1:1")  # nothing listens there
    with override_settings(CACHES={"default": {"BACKEND": BACKEND, "LOCATION": memcached.address}}):
        assert Client().get("/visits/").json()["visits"] == 1


def test_memcached_ascii_auth(ascii_auth_memcached: Any) -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": ascii_auth_memcached.address,
        "USERNAME": ascii_auth_memcached.username,
        "PASSWORD": ascii_auth_memcached.password,
        "OPTIONS": {"auth": "ascii"},
    }
    with override_settings(CACHES={"default": entry}):
        assert [Client().get("/visits/").json()["visits"] for _ in range(2)] == [1, 2]


def test_mutual_tls(mtls_memcached: Any, tls_material: Any) -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": mtls_memcached.address,
        "OPTIONS": {
            "transport": "tls",
            "ca_file": tls_material.ca_file,
            "cert_file": tls_material.client_cert_file,
            "key_file": tls_material.client_key_file,
        },
    }
    with override_settings(CACHES={"default": entry}):
        assert Client().get("/visits/").json()["visits"] == 1


def test_wrong_password_fails_the_request_without_showing_it(memcachier: Any) -> None:
    wrong = "wrong-SECRET-password"
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": memcachier.address,
        "USERNAME": memcachier.username,
        "PASSWORD": wrong,
    }
    with override_settings(CACHES={"default": entry}):
        with pytest.raises(AuthenticationError) as caught:
            Client().get("/visits/")
        assert wrong not in str(caught.value)
        assert memcachier.username in str(caught.value)
        assert wrong not in repr(caches["default"].client)  # type: ignore[attr-defined]


# -- one client per configuration, shared by every backend ---------------------------------------


def test_requests_in_their_own_tasks_share_connections(
    flavour: str, backend_params: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """Under ASGI every request runs in a new task, so Django creates a new backend each time."""
    with override_settings(CACHES={"default": backend_params}):
        opened = connection_counter(flavour, request)
        views.seen_backends.clear()

        async def one_request(client: AsyncClient) -> int:
            return int((await client.get("/visits/")).json()["visits"])

        async def serve() -> list[int]:
            client = AsyncClient()
            return [await asyncio.create_task(one_request(client)) for _ in range(REQUESTS)]

        assert asyncio.run(serve()) == list(range(1, REQUESTS + 1))
        backends = {id(backend) for backend in views.seen_backends}
        views.seen_backends.clear()
        assert len(backends) == REQUESTS  # Django made a backend per request...
        # ...and they all used the same connection.
        assert opened() == 1


def test_threads_share_one_client(backend_params: dict[str, Any]) -> None:
    with override_settings(CACHES={"default": backend_params}):
        mine = caches["default"]
        found: list[Any] = []
        thread = threading.Thread(target=lambda: found.append(caches["default"]))
        thread.start()
        thread.join()
        assert found[0] is not mine  # Django: a backend per thread
        assert found[0].client is mine.client  # type: ignore[attr-defined]


def test_which_configurations_share(tls_material: Any) -> None:
    def client_of(**options: Any) -> Any:
        return MemcacheCache("127.0.0.1:11211", {"OPTIONS": options}).client

    assert client_of() is client_of()
    tls = {"transport": "tls", "ca_file": tls_material.ca_file}
    assert client_of(**tls) is client_of(**tls)
    assert client_of(**tls) is not client_of()
    assert client_of(timeout=1) is not client_of(timeout=2)
    assert client_of(close_connections=True) is not client_of()
    context = tls_material.client_context()
    other = tls_material.client_context()
    by_context = {"class": "tls", "ssl_context": context}
    assert client_of(transport=by_context) is client_of(transport=by_context)
    assert client_of(transport=by_context) is not client_of(
        transport={"class": "tls", "ssl_context": other}
    )
    instance = TCPTransport()
    assert client_of(transport=instance) is client_of(transport=instance)
    assert client_of(transport=instance) is not client_of(transport=TCPTransport())


def test_release_clients(memcachier: Any) -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": memcachier.address,
        "USERNAME": memcachier.username,
        "PASSWORD": memcachier.password,
    }
    with override_settings(CACHES={"default": entry}):
        cache = caches["default"]
        cache.set("k", 1)
        old = cache.client  # type: ignore[attr-defined]
        release_clients()
        assert wait_for(lambda: memcachier.active_connections == 0)
        assert cache.get("k") == 1  # the old client reconnects
        assert MemcacheCache(memcachier.address, entry).client is not old
    assert memcachier.handshakes == 2


def test_a_released_client_is_closed_when_its_last_backend_goes(memcachier: Any) -> None:
    entry = {"USERNAME": memcachier.username, "PASSWORD": memcachier.password}
    cache = MemcacheCache(memcachier.address, entry)
    release_clients()
    cache.set("k", 1)  # reconnects, outside the registry now
    assert wait_for(lambda: memcachier.active_connections == 1)
    del cache
    gc.collect()
    assert wait_for(lambda: memcachier.active_connections == 0)


def test_least_recently_created_client_is_released_beyond_the_limit(
    memcached: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "MAX_SHARED_CLIENTS", 2)
    first = MemcacheCache(memcached.address, {"OPTIONS": {"timeout": 1}})
    first.set("k", 1)
    second = MemcacheCache(memcached.address, {"OPTIONS": {"timeout": 2}})
    third = MemcacheCache(memcached.address, {"OPTIONS": {"timeout": 3}})
    assert third.client is not first.client
    # The first client left the registry; its backend still works.
    assert first.get("k") == 1
    assert MemcacheCache(memcached.address, {"OPTIONS": {"timeout": 1}}).client is not (
        first.client
    )
    assert second.get("k") == 1


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
