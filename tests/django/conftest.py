"""Fixtures for the Django backend tests: Django set up with the test project, caches pointed
at the real servers of ``tests/conftest.py`` over TCP, TLS and behind the MemCachier gateway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django

django.setup()

from django.core.cache import caches  # noqa: E402
from django.core.cache.backends.base import BaseCache  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django_helpers import BACKEND, ENV_VARS, FLAVOURS, caches_setting  # noqa: E402
from djproject import views  # noqa: E402

from layered_cache.django import release_clients  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Each test starts with new clients: backends share one per configuration."""
    yield
    views.seen_backends.clear()
    release_clients()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees MEMCACHE_* / MEMCACHIER_* from the machine running it."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """The way to reach memcached: plain TCP, TLS, or through the MemCachier gateway."""
    return str(request.param)


def flavour_params(flavour: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A CACHES entry for our backend reaching a clean, running server the ``flavour`` way."""
    if flavour == "tcp":
        server = request.getfixturevalue("memcached")
        return {"BACKEND": BACKEND, "LOCATION": server.address}
    if flavour == "tls":
        server = request.getfixturevalue("tls_memcached")
        material = request.getfixturevalue("tls_material")
        return {
            "BACKEND": BACKEND,
            "LOCATION": server.address,
            "OPTIONS": {"transport": "tls", "ca_file": material.ca_file},
        }
    gateway = request.getfixturevalue("memcachier")
    return {
        "BACKEND": BACKEND,
        "LOCATION": gateway.address,
        "OPTIONS": {"username": gateway.username, "password": gateway.password},
    }


@pytest.fixture
def backend_params(flavour: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """:func:`flavour_params` for the ``flavour`` of this test."""
    return flavour_params(flavour, request)


@pytest.fixture
def every_flavour(request: pytest.FixtureRequest) -> Iterator[dict[str, BaseCache]]:
    """One cache per flavour, all at once: for tests that wait (they wait once for all)."""
    setting = {flavour: flavour_params(flavour, request) for flavour in FLAVOURS}
    setting["default"] = setting["tcp"]
    with override_settings(CACHES=setting):
        yield {flavour: caches[flavour] for flavour in FLAVOURS}


@pytest.fixture
def use_caches(backend_params: dict[str, Any]) -> Iterator[Any]:
    """``CACHES`` set to :func:`caches_setting` of ``backend_params``; yields ``caches``."""
    with override_settings(CACHES=caches_setting(backend_params)):
        yield caches


@pytest.fixture
def cache(use_caches: Any) -> BaseCache:
    """The default cache of :func:`use_caches`."""
    backend: BaseCache = use_caches["default"]
    return backend
