"""The example project of the docs' Django guide (``examples/django_features``), served for real.

Each test copies nothing but uses one migrated copy of the project, starts it with
``manage.py runserver`` on a free loopback port against real memcached, and talks HTTP
to it as a browser would (cookies, CSRF token). The outage tests stop memcached under a
running server and check what the guide says happens to each session engine.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django_helpers import ENV_VARS

from tests.servers import MemcachedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_features"
CACHE = "django.contrib.sessions.backends.cache"
CACHED_DB = "django.contrib.sessions.backends.cached_db"


def _env(memcached: str, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ENV_VARS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(ROOT)
    env["MEMCACHE_SERVERS"] = memcached
    return {**env, **extra}


def _manage(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its database migrated, as its README says to start."""
    target = tmp_path_factory.mktemp("example") / "django_features"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    done = _manage(target, "migrate", "--no-input", env=_env("127.0.0.1:1"))
    assert done.returncode == 0, done.stderr
    return target


class Browser:
    """One visitor of the shop: keeps its cookies, sends the CSRF token with POSTs."""

    def __init__(self, base: str, process: subprocess.Popen[str] | None = None) -> None:
        self.base = base
        self.process = process
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, method: str, path: str) -> tuple[int, str]:
        headers = {}
        token = next((c.value for c in self.cookies if c.name == "csrftoken"), None)
        if method == "POST" and token:
            headers = {"X-CSRFToken": token, "Referer": self.base + "/"}
        url = self.base + path  # always http://127.0.0.1:<port>/...
        request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get(self, path: str) -> str:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def json(self, path: str, method: str = "GET") -> Any:
        status, body = self.request(method, path)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def serve(project: Path) -> Iterator[Callable[..., Browser]]:
    """``serve(memcached, settings=..., session_engine=...)`` -> a Browser on a running shop."""
    started: list[subprocess.Popen[str]] = []

    def start(
        memcached: MemcachedProcess,
        *,
        settings: str = "shop.settings",
        session_engine: str = CACHED_DB,
    ) -> Browser:
        port = free_port()
        env = _env(
            memcached.address, DJANGO_SETTINGS_MODULE=settings, SESSION_ENGINE=session_engine
        )
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the shop did not start:\n{process.communicate()[0]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                time.sleep(0.1)
            else:
                return Browser(f"http://127.0.0.1:{port}", process)
        pytest.fail("the shop did not listen within 30 s")

    yield start
    for process in started:
        if process.returncode is None:
            stop(process)


def stop(process: subprocess.Popen[str]) -> str:
    """Stop a shop; return what it logged."""
    process.terminate()
    try:
        return process.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def test_manage_py_check_is_clean(project: Path, memcached: MemcachedProcess) -> None:
    for settings in ("shop.settings", "shop.settings_per_site"):
        done = _manage(project, "check", "--settings", settings, env=_env(memcached.address))
        assert done.returncode == 0, done.stderr
        assert "System check identified no issues" in done.stdout


def test_a_template_fragment_is_computed_once(
    serve: Callable[..., Browser], memcached: MemcachedProcess
) -> None:
    browser = serve(memcached)
    first, second = browser.get("/"), browser.get("/")
    assert "Page rendered #1" in first
    assert "Page rendered #2" in second  # the page itself is rendered every time ...
    for page in (first, second):  # ... its {% cache %} sidebar once
        assert "Bestsellers: Green tea (computed #1)" in page


def test_cache_page_stores_the_response(
    serve: Callable[..., Browser], memcached: MemcachedProcess
) -> None:
    browser = serve(memcached)
    assert [browser.json("/prices/")["computed"] for _ in range(3)] == [1, 1, 1]
    # Another visitor gets the same stored response.
    assert Browser(browser.base).json("/prices/")["computed"] == 1


def test_the_per_site_cache_stores_pages_but_not_carts(
    serve: Callable[..., Browser], memcached: MemcachedProcess
) -> None:
    browser = serve(memcached, settings="shop.settings_per_site")
    first = browser.get("/")
    assert "Page rendered #1" in first
    assert browser.get("/") == first  # served from the cache, not rendered again
    browser.json("/cart/")  # the CSRF cookie
    assert browser.json("/cart/add/tea/", "POST") == {"items": ["tea"]}
    assert browser.json("/cart/") == {"items": ["tea"]}  # never_cache: always fresh


@pytest.mark.parametrize("engine", [CACHE, CACHED_DB])
def test_sessions(serve: Callable[..., Browser], memcached: MemcachedProcess, engine: str) -> None:
    alice, bob = (serve(memcached, session_engine=engine) for _ in range(2))
    for browser in (alice, bob):
        assert browser.json("/cart/") == {"items": []}
    alice.json("/cart/add/tea/", "POST")
    assert alice.json("/cart/add/pot/", "POST") == {"items": ["tea", "pot"]}
    assert alice.json("/cart/") == {"items": ["tea", "pot"]}
    assert bob.json("/cart/") == {"items": []}
    keys = int(memcached.stats()["curr_items"])
    assert keys >= 1  # the sessions are in memcached


def test_an_async_view(serve: Callable[..., Browser], memcached: MemcachedProcess) -> None:
    browser = serve(memcached)
    assert [browser.json("/visits/")["visits"] for _ in range(3)] == [1, 2, 3]


def test_an_outage_with_cached_db_sessions(
    serve: Callable[..., Browser], fresh_memcached: MemcachedProcess
) -> None:
    browser = serve(fresh_memcached, session_engine=CACHED_DB)
    browser.json("/cart/")
    assert browser.json("/cart/add/tea/", "POST") == {"items": ["tea"]}
    fresh_memcached.stop()
    # The session is read from the database; writes go there too.
    assert browser.json("/cart/") == {"items": ["tea"]}
    assert browser.json("/cart/add/cup/", "POST") == {"items": ["tea", "cup"]}
    assert "Page rendered" in browser.get("/")  # pages are computed instead of read
    fresh_memcached.start()
    assert browser.json("/cart/") == {"items": ["tea", "cup"]}


def test_an_outage_with_cache_sessions(
    serve: Callable[..., Browser], fresh_memcached: MemcachedProcess
) -> None:
    browser = serve(fresh_memcached, session_engine=CACHE)
    browser.json("/cart/")
    assert browser.json("/cart/add/tea/", "POST") == {"items": ["tea"]}
    fresh_memcached.stop()
    # The sessions were in memcached alone: the visitor's cart is gone ...
    assert browser.json("/cart/") == {"items": []}
    # ... and no new session can be stored while memcached is down.
    status, _ = browser.request("POST", "/cart/add/cup/")
    assert status == 500
    fresh_memcached.start()
    # Once the client tries the server again (dead_timeout), sessions work again.
    deadline = time.monotonic() + 15
    while browser.request("POST", "/cart/add/cup/")[0] != 200:
        assert time.monotonic() < deadline, "sessions did not come back"
        time.sleep(0.5)
    assert browser.json("/cart/")["items"][-1] == "cup"
    assert browser.process is not None
    assert "RuntimeError: Unable to create a new session key" in stop(browser.process)
