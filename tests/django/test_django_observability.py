"""Observability under Django: OPTIONS["listeners"], the debug toolbar's panels, Sentry's spans.

The toolbar is the real django-debug-toolbar, rendering through Django's test
client; Sentry is the real sentry-sdk, in a child process (its Django
integration patches Django for the whole process) with a transport that
keeps the envelopes in memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client as DjangoClient
from django.test.utils import override_settings
from django_helpers import BACKEND

from layered_cache.django import CacheConfigurationError, parse_cache_config
from layered_cache.observability import OperationEvent
from layered_cache.observability.prometheus import PrometheusListener
from tests.servers import MemcachedProcess

debug_toolbar = pytest.importorskip("debug_toolbar")

ROOT = Path(__file__).resolve().parents[2]
recorded: list[Any] = []


def record(event: Any) -> None:
    """A listener by dotted path (``tests.django.test_django_observability.record``)."""
    recorded.append(event)


def test_listeners_by_callable_instance_and_dotted_path(memcached: MemcachedProcess) -> None:
    recorded.clear()
    seen: list[Any] = []
    params = {
        "BACKEND": BACKEND,
        "LOCATION": memcached.address,
        "OPTIONS": {
            "listeners": [
                seen.append,
                f"{__name__}.record",
                "layered_cache.observability.LoggingListener",  # a class: instantiated
            ],
            "include_keys": True,
        },
    }
    with override_settings(CACHES={"default": params}):
        cache = caches["default"]
        cache.set("k", 1)
        assert cache.get("k") == 1
    ops = [e for e in seen if type(e) is OperationEvent]
    assert [(e.operation, e.hits) for e in ops] == [("set", 0), ("get", 1)]
    assert ops[0].key_names == (cache.make_key("k"),)
    assert [e.operation for e in recorded if type(e) is OperationEvent] == ["set", "get"]


def test_bad_listener_options_name_the_option() -> None:
    with pytest.raises(CacheConfigurationError, match=r"OPTIONS\['listeners'\]: cannot import"):
        parse_cache_config("127.0.0.1:1", {"OPTIONS": {"listeners": ["no.such.thing"]}}, environ={})
    with pytest.raises(CacheConfigurationError, match=r"OPTIONS\['listeners'\] must be a list"):
        parse_cache_config("127.0.0.1:1", {"OPTIONS": {"listeners": "x.y"}}, environ={})
    with pytest.raises(CacheConfigurationError, match=r"OPTIONS\['on_write_failure'\] takes"):
        parse_cache_config("127.0.0.1:1", {"OPTIONS": {"on_write_failure": 3}}, environ={})


def test_on_write_failure_from_options(fresh_memcached: MemcachedProcess) -> None:
    failed: list[Any] = []
    params = {
        "BACKEND": BACKEND,
        "LOCATION": fresh_memcached.address,
        "OPTIONS": {"ignore_exceptions": True, "on_write_failure": failed.append},
    }
    with override_settings(CACHES={"default": params}):
        cache = caches["default"]
        fresh_memcached.stop()
        cache.set("user:1", "v")
        assert [w.operation for w in failed][:1] == ["set"]
        assert failed[0].key_names == (cache.make_key("user:1"),)


def test_prometheus_listener_by_dotted_path_with_the_async_methods(
    memcached: MemcachedProcess,
) -> None:
    params = {
        "BACKEND": BACKEND,
        "LOCATION": memcached.address,
        "OPTIONS": {"listeners": ["layered_cache.observability.prometheus.PrometheusListener"]},
    }
    from asgiref.sync import async_to_sync
    from prometheus_client import REGISTRY

    labels = {"operation": "get", "server": memcached.address}
    before = REGISTRY.get_sample_value("layered_cache_misses_total", labels) or 0
    with override_settings(CACHES={"default": params}):
        cache = caches["default"]
        assert isinstance(cache.client._observer.listeners[0], PrometheusListener)
        cache.get("absent")
        async_to_sync(cache.aget)("absent")
    assert REGISTRY.get_sample_value("layered_cache_misses_total", labels) == before + 2


# -- django-debug-toolbar ------------------------------------------------------------------


@pytest.fixture
def toolbar_site(memcached: MemcachedProcess) -> Iterator[None]:
    memcached.flush()
    settings = {
        "DEBUG": True,
        "INSTALLED_APPS": [
            "django.contrib.staticfiles",
            "layered_cache.django",
            "djproject",
            "debug_toolbar",
        ],
        "MIDDLEWARE": ["debug_toolbar.middleware.DebugToolbarMiddleware"],
        "ROOT_URLCONF": "djproject.toolbar_urls",
        "STATIC_URL": "/static/",
        "TEMPLATES": [
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        "DEBUG_TOOLBAR_PANELS": [
            "debug_toolbar.panels.cache.CachePanel",
            "layered_cache.django.toolbar.panel.LayeredCachePanel",
        ],
        "DEBUG_TOOLBAR_CONFIG": {
            "SHOW_TOOLBAR_CALLBACK": lambda request: True,
            "RENDER_PANELS": False,  # panels are fetched from the toolbar's own view
            "IS_RUNNING_TESTS": False,
        },
        "CACHES": {
            "default": {
                "BACKEND": BACKEND,
                "LOCATION": memcached.address,
                "OPTIONS": {"listeners": ["layered_cache.django.toolbar.ToolbarListener"]},
            }
        },
    }
    apps = settings.pop("INSTALLED_APPS")
    toolbar = {name: settings.pop(name) for name in list(settings) if "TOOLBAR" in name}
    # Apps are loaded before the other settings of their override apply, so the settings
    # staticfiles needs come first; the toolbar's settings, which make it load its
    # models, come once it is installed.
    with (
        override_settings(**settings),
        override_settings(INSTALLED_APPS=apps),
        override_settings(**toolbar),
    ):
        yield


def _stored_panels(response: Any) -> Any:
    from debug_toolbar.toolbar import DebugToolbar

    request_id = re.search(r'data-request-id="([0-9a-f]+)"', response.content.decode())
    assert request_id, f"the toolbar was not rendered: {response.content[:500]!r}"
    return DebugToolbar.fetch(request_id.group(1))


def _panel_html(response: Any, client: Any) -> str:
    """The panel as the toolbar's page fetches it: through its render_panel view."""
    request_id = re.search(r'data-request-id="([0-9a-f]+)"', response.content.decode())
    assert request_id is not None
    rendered = client.get(
        "/__debug__/render_panel/",
        {"request_id": request_id.group(1), "panel_id": "LayeredCachePanel"},
    )
    assert rendered.status_code == 200
    return str(rendered.json()["content"])


def _rows(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table class="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body[1])]


def test_stock_cache_panel_one_entry_per_user_call_with_hits_and_misses(
    toolbar_site: None, memcached: MemcachedProcess
) -> None:
    response = DjangoClient().get("/sync/")
    assert response.status_code == 200
    toolbar = _stored_panels(response)
    stats = toolbar.get_panel_by_id("CachePanel").get_stats()
    assert [call["name"] for call in stats["calls"]] == [
        "set",
        "get",
        "get",
        "get_many",
        "get_or_set",
    ]
    # get: 1 hit, 1 miss; get_many: 1 hit, 2 misses; get_or_set: its (computed) value.
    assert (stats["hits"], stats["misses"]) == (3, 3)


def test_our_panel_shows_exchanges_servers_and_herd_events(
    toolbar_site: None, memcached: MemcachedProcess
) -> None:
    client = DjangoClient()
    response = client.get("/sync/")
    assert "layered_cache" in response.content.decode()  # in the toolbar's panel list
    html = _panel_html(response, client)
    operations = _rows(html, "layered-cache-operations")
    names = [row[0] for row in operations]
    assert names[:4] == ["set", "get", "get", "get_many"]
    assert set(names[4:]) == {"get_or_set"}
    get_many = operations[3]
    assert (get_many[1], get_many[2], get_many[4], get_many[5]) == (
        memcached.address,
        "3",
        "1",
        "2",
    )
    (server,) = _rows(html, "layered-cache-servers")
    assert server[0] == memcached.address
    assert int(server[1]) == len(operations)
    assert [row[0] for row in _rows(html, "layered-cache-herd")] == ["lease_won"]
    assert "greeting" not in "".join(map(str, operations))  # no key without include_keys


def test_our_panel_shows_async_calls(toolbar_site: None, memcached: MemcachedProcess) -> None:
    client = DjangoClient()
    response = client.get("/async/")
    assert response.status_code == 200
    html = _panel_html(response, client)
    names = [row[0] for row in _rows(html, "layered-cache-operations")]
    assert names[:2] == ["set", "get"]
    assert "get_or_set" in names
    assert [row[0] for row in _rows(html, "layered-cache-herd")] == ["lease_won"]


# -- Sentry ----------------------------------------------------------------------------------

_SENTRY = textwrap.dedent(
    """
    import json, os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    import django
    from django.conf import settings
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.transport import Transport

    envelopes = []

    class Memory(Transport):
        def capture_envelope(self, envelope):
            envelopes.append(envelope)

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=Memory,
        traces_sample_rate=1.0,
        integrations=[DjangoIntegration(cache_spans=True)],
        default_integrations=False,
    )
    django.setup()
    settings.CACHES = {"default": {"BACKEND": "layered_cache.django.MemcacheCache",
                                   "LOCATION": sys.argv[1]}}
    from django.core.cache import caches
    with sentry_sdk.start_transaction(name="cache calls"):
        cache = caches["default"]
        cache.set("a", 1)
        cache.get("a")
        cache.get("missing")
        cache.get_many(["a", "b"])
        cache.set_many({"c": 1, "d": 2})
    sentry_sdk.flush()
    spans = []
    for envelope in envelopes:
        for item in envelope.items:
            payload = item.payload.json
            if payload and payload.get("type") == "transaction":
                spans += [
                    {"op": s["op"], "hit": s.get("data", {}).get("cache.hit")}
                    for s in payload["spans"]
                ]
    print(json.dumps(spans))
    """
)


def test_sentry_cache_spans_one_per_sync_call(memcached: MemcachedProcess) -> None:
    pytest.importorskip("sentry_sdk")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "django")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _SENTRY, memcached.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spans = json.loads(done.stdout.strip().splitlines()[-1])
    cache_spans = [s for s in spans if s["op"].startswith("cache.")]
    assert [s["op"] for s in cache_spans] == [
        "cache.put",
        "cache.get",
        "cache.get",
        "cache.get",
        "cache.put",
    ]
    assert [s["hit"] for s in cache_spans[1:4]] == [True, False, True]
