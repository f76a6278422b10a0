"""``manage.py check`` warns when sessions or the cache middleware use a cache that cannot hold
what they store (``layered_cache.W003``, ``layered_cache.W004``), and says nothing otherwise.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.checks import Tags, run_checks
from django.core.checks import Warning as CheckWarning
from django.core.management import call_command
from django.test.utils import override_settings
from django_helpers import BACKEND

from layered_cache.django.checks import check_cache_features
from layered_cache.serialization import JSONSerializer

LOCATION = "127.0.0.1:11211"
CACHE_ENGINE = "django.contrib.sessions.backends.cache"
CACHED_DB_ENGINE = "django.contrib.sessions.backends.cached_db"
DB_ENGINE = "django.contrib.sessions.backends.db"
PER_SITE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]


def ours(serializer: Any = "pickle", **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "LOCATION": LOCATION,
        "OPTIONS": {"serializer": serializer, **options},
    }


def feature_warnings(**settings: Any) -> list[tuple[str, str]]:
    with override_settings(**settings):
        messages = check_cache_features()
        assert all(message in run_checks(tags=[Tags.caches]) for message in messages)
    assert all(isinstance(message, CheckWarning) for message in messages)
    return [(str(message.obj), str(message.id)) for message in messages]


def test_json_cannot_back_the_cache_middleware() -> None:
    caches = {"default": ours(), "pages": ours("json")}
    with override_settings(CACHES=caches, MIDDLEWARE=PER_SITE, CACHE_MIDDLEWARE_ALIAS="pages"):
        [message] = check_cache_features()
    assert message.id == "layered_cache.W004"
    assert message.obj == "CACHES['pages']"
    assert message.msg == (
        "Django's cache middleware caches pages in this cache (CACHE_MIDDLEWARE_ALIAS), "
        "but its serializer (JSONSerializer) cannot store HttpResponse objects: it raised "
        "SerializationError. Every request that stores one would fail."
    )
    assert message.hint is not None
    assert '"serializer": "pickle" or "signed_pickle"' in message.hint


@pytest.mark.parametrize(
    "middleware",
    [
        PER_SITE,
        ["django.middleware.cache.UpdateCacheMiddleware"],
        ["django.middleware.cache.FetchFromCacheMiddleware"],
        ["django.middleware.cache.CacheMiddleware"],
        ["djproject.middleware.MyCacheMiddleware"],  # a subclass
    ],
)
def test_every_cache_middleware_counts(middleware: list[str]) -> None:
    assert feature_warnings(CACHES={"default": ours("json")}, MIDDLEWARE=middleware) == [
        ("CACHES['default']", "layered_cache.W004")
    ]


@pytest.mark.parametrize(
    "serializer",
    [
        "pickle",
        "signed_pickle",
        {"class": "layered_cache.serialization.CompressedSerializer"},
        "djproject.strategies.OwnPickleSerializer",  # judged by what it does
    ],
)
def test_serializers_that_store_responses_are_fine(serializer: Any) -> None:
    caches = {"default": ours(serializer)}
    assert feature_warnings(CACHES=caches, MIDDLEWARE=PER_SITE) == []


def test_compressed_json_is_still_json() -> None:
    serializer = {
        "class": "layered_cache.serialization.CompressedSerializer",
        "serializer": JSONSerializer(),
    }
    assert feature_warnings(CACHES={"default": ours(serializer)}, MIDDLEWARE=PER_SITE) == [
        ("CACHES['default']", "layered_cache.W004")
    ]


def test_nothing_is_said_when_the_feature_is_not_used() -> None:
    caches = {"default": ours("json")}
    # No cache middleware, sessions in the database: JSON is fine everywhere.
    assert feature_warnings(CACHES=caches, MIDDLEWARE=[], SESSION_ENGINE=DB_ENGINE) == []
    # The middleware uses another cache.
    caches = {"default": ours("json"), "pages": ours()}
    assert (
        feature_warnings(CACHES=caches, MIDDLEWARE=PER_SITE, CACHE_MIDDLEWARE_ALIAS="pages") == []
    )
    # The middleware's cache is not ours, or not in CACHES at all.
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert feature_warnings(CACHES=caches, MIDDLEWARE=PER_SITE) == []
    assert (
        feature_warnings(
            CACHES={"default": ours("json")}, MIDDLEWARE=PER_SITE, CACHE_MIDDLEWARE_ALIAS="nope"
        )
        == []
    )


def test_a_wrong_entry_is_left_to_the_error() -> None:
    caches = {"default": ours("json", transport="ssl")}
    with override_settings(CACHES=caches, MIDDLEWARE=PER_SITE):
        assert check_cache_features() == []
        assert [m.id for m in run_checks(tags=[Tags.caches])] == ["layered_cache.E001"]


@pytest.mark.parametrize("engine", [CACHE_ENGINE, CACHED_DB_ENGINE])
def test_json_holds_sessions_as_djangos_session_serializer_allows_them(engine: str) -> None:
    caches = {"default": ours("json")}
    assert feature_warnings(CACHES=caches, SESSION_ENGINE=engine) == []


@pytest.mark.parametrize("engine", [CACHE_ENGINE, CACHED_DB_ENGINE])
def test_json_cannot_hold_what_another_session_serializer_allows(engine: str) -> None:
    caches = {"default": ours(), "sessions": ours("json")}
    settings = {
        "CACHES": caches,
        "SESSION_ENGINE": engine,
        "SESSION_CACHE_ALIAS": "sessions",
        "SESSION_SERIALIZER": "djproject.sessions.PickleSerializer",
    }
    with override_settings(**settings):
        [message] = check_cache_features()
    assert message.id == "layered_cache.W003"
    assert message.obj == "CACHES['sessions']"
    assert message.msg.startswith(
        f"SESSION_ENGINE {engine!r} keeps sessions in this cache (SESSION_CACHE_ALIAS), "
        "but its serializer (JSONSerializer) cannot store the values SESSION_SERIALIZER "
        "'djproject.sessions.PickleSerializer' allows in a session (such as a datetime)"
    )
    caches["sessions"] = ours("signed_pickle")
    assert feature_warnings(**settings) == []


@pytest.mark.parametrize(
    ("serializer", "reason"),
    [
        ("djproject.strategies.BytesOnlySerializer", "it raised TypeError"),
        ("djproject.strategies.LevelSerializer", "it read it back as bytes"),
    ],
)
def test_a_serializer_that_cannot_hold_a_dict_fails_for_sessions(
    serializer: str, reason: str
) -> None:
    with override_settings(CACHES={"default": ours(serializer)}, SESSION_ENGINE=CACHE_ENGINE):
        [message] = check_cache_features()
    assert message.id == "layered_cache.W003"
    assert f"cannot store session data (a dict): {reason}." in message.msg


def test_both_warnings_in_manage_py_check() -> None:
    settings = {
        "CACHES": {"default": ours("json")},
        "MIDDLEWARE": PER_SITE,
        "SESSION_ENGINE": CACHE_ENGINE,
        "SESSION_SERIALIZER": "djproject.sessions.PickleSerializer",
    }
    out, err = io.StringIO(), io.StringIO()
    with override_settings(**settings):
        call_command("check", stdout=out, stderr=err)  # warnings do not fail the command
    report = err.getvalue()
    assert "CACHES['default']: (layered_cache.W003)" in report
    assert "CACHES['default']: (layered_cache.W004)" in report
    assert 'HINT: Use "serializer": "pickle" or "signed_pickle"' in report
