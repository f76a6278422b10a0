"""``manage.py check`` reports what cache creation would raise, without raising or connecting."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.apps import apps
from django.core.cache import caches
from django.core.checks import Error, Tags, registry, run_checks
from django.core.checks import Warning as CheckWarning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings
from django_helpers import BACKEND

from layered_cache.django import CacheConfigurationError
from layered_cache.django.checks import check_cache, check_caches
from layered_cache.transport import InsecureTLSWarning

SECRET = "hunter2-SECRET-value"
LOCATION = "127.0.0.1:11211"

BAD: dict[str, tuple[str, dict[str, Any]]] = {
    "unknown alias": ("layered_cache.E001", {"OPTIONS": {"transport": "tsl"}}),
    "bad dotted path": ("layered_cache.E001", {"OPTIONS": {"serializer": "nope.Serializer"}}),
    "missing TLS file": (
        "layered_cache.E003",
        {"OPTIONS": {"transport": "tls", "ca_file": "/no/such/ca.pem"}},
    ),
    "username without password": ("layered_cache.E004", {"USERNAME": "app"}),
    "password without username": ("layered_cache.E004", {"OPTIONS": {"password": SECRET}}),
    "argument the strategy does not take": (
        "layered_cache.E002",
        {"OPTIONS": {"auth": "none", "username": "app", "password": SECRET}},
    ),
    "unknown option": ("layered_cache.E002", {"OPTIONS": {"ca_file": "/etc/ca.pem"}}),
    "bad client option": ("layered_cache.E006", {"OPTIONS": {"timeout": 0}}),
    "no server": ("layered_cache.E005", {"LOCATION": ""}),
}


def entry(**params: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": LOCATION, **params}


def creation_error(params: dict[str, Any]) -> CacheConfigurationError:
    with (
        override_settings(CACHES={"default": params}),
        pytest.raises(CacheConfigurationError) as caught,
    ):
        caches["default"]
    return caught.value


def test_the_app_registers_the_check() -> None:
    assert apps.is_installed("layered_cache.django")
    assert apps.get_app_config("layered_cache").name == "layered_cache.django"
    assert check_caches in registry.registry.get_checks()
    assert Tags.caches in check_caches.tags  # type: ignore[attr-defined]


def test_a_good_configuration_has_no_messages() -> None:
    with override_settings(CACHES={"default": entry(OPTIONS={"serializer": "json"})}):
        assert run_checks(tags=[Tags.caches]) == []


@pytest.mark.parametrize("case", list(BAD))
def test_each_misconfiguration_is_reported_as_cache_creation_raises_it(case: str) -> None:
    check_id, params = BAD[case]
    params = entry(**params)
    error = creation_error(params)
    assert error.check_id == check_id
    with override_settings(CACHES={"default": params}):
        messages = run_checks(tags=[Tags.caches])
    assert messages == [Error(str(error), obj="CACHES['default']", id=check_id)]
    assert SECRET not in str(messages)


def test_every_bad_alias_is_reported() -> None:
    setting = {
        "default": entry(),
        "typo": entry(OPTIONS={"transport": "tsl"}),
        "other_backend": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "no_password": entry(USERNAME="app"),
    }
    with override_settings(CACHES=setting):
        messages = run_checks(tags=[Tags.caches])
    assert [(m.obj, m.id) for m in messages] == [
        ("CACHES['typo']", "layered_cache.E001"),
        ("CACHES['no_password']", "layered_cache.E004"),
    ]


def test_subclasses_of_the_backend_are_checked() -> None:
    params = {**entry(OPTIONS={"transport": "tsl"}), "BACKEND": "djproject.backends.MyCache"}
    with override_settings(CACHES={"default": params}):
        messages = run_checks(tags=[Tags.caches])
    assert [m.id for m in messages] == ["layered_cache.E001"]
    # An unimportable BACKEND is Django's to report.
    unimportable = {**params, "BACKEND": "nope.Cache"}
    with override_settings(CACHES={"default": unimportable}):
        assert check_caches() == []


def test_the_environment_is_read_like_the_backend_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with override_settings(CACHES={"default": {"BACKEND": BACKEND}}):
        assert [m.id for m in run_checks(tags=[Tags.caches])] == ["layered_cache.E005"]
        monkeypatch.setenv("MEMCACHIER_SERVERS", "mc.example:11211")
        monkeypatch.setenv("MEMCACHIER_USERNAME", "app")
        assert [m.id for m in run_checks(tags=[Tags.caches])] == ["layered_cache.E004"]
        monkeypatch.setenv("MEMCACHIER_PASSWORD", SECRET)
        assert run_checks(tags=[Tags.caches]) == []


def test_insecure_tls_is_a_warning(tls_material: Any) -> None:
    params = entry(OPTIONS={"transport": "tls", "ca_file": tls_material.ca_file, "verify": False})
    messages = check_cache("default", params)
    assert len(messages) == 1
    assert isinstance(messages[0], CheckWarning)
    assert messages[0].id == "layered_cache.W001"
    assert "verify=False accepts any certificate" in messages[0].msg
    # Creating the cache warns as Python code does.
    with override_settings(CACHES={"default": params}), pytest.warns(InsecureTLSWarning):
        caches["default"]


def test_checks_never_connect() -> None:
    # An address nothing listens on: parsing must not notice.
    assert check_cache("default", entry(LOCATION="127.0.0.1:1")) == []


def test_a_cache_djangos_checks_created_raises_when_used() -> None:
    """Django's caches.W003 check creates every cache; ours must not crash it."""
    with override_settings(CACHES={"default": entry(USERNAME="app")}):
        messages = run_checks(tags=[Tags.caches])
        assert [m.id for m in messages] == ["layered_cache.E004"]
        cache = caches["default"]  # the one Django's check created
        with pytest.raises(CacheConfigurationError, match="no password") as caught:
            cache.get("key")
        assert caught.value.check_id == "layered_cache.E004"
        with pytest.raises(CacheConfigurationError):
            cache.config  # noqa: B018
        cache.close()


def test_manage_py_check() -> None:
    out = io.StringIO()
    with override_settings(CACHES={"default": entry()}):
        call_command("check", stdout=out)
    assert "System check identified no issues" in out.getvalue()
    params = entry(
        OPTIONS={"transport": "tls", "ca_file": "/no/such/ca.pem"}, USERNAME="app", PASSWORD=SECRET
    )
    with (
        override_settings(CACHES={"default": params}),
        pytest.raises(SystemCheckError) as caught,
    ):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    report = str(caught.value)
    assert "CACHES['default']: (layered_cache.E003)" in report
    assert "no such file: '/no/such/ca.pem'" in report
    assert SECRET not in report


def test_environment_credentials_kept_from_location_servers_are_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMCACHIER_USERNAME", "app")
    monkeypatch.setenv("MEMCACHIER_PASSWORD", SECRET)
    with override_settings(CACHES={"default": entry()}):
        messages = run_checks(tags=[Tags.caches])
        assert [(type(m), m.id) for m in messages] == [(CheckWarning, "layered_cache.W002")]
        text = messages[0].msg
        assert "MEMCACHIER_USERNAME and MEMCACHIER_PASSWORD are set but not used" in text
        assert 'OPTIONS["environment_credentials"] = True' in text
        assert SECRET not in text
        # The backend itself does not authenticate: no handshake for LOCATION's server.
        assert caches["default"].config.auth.__class__.__name__ == "NoAuth"
        out = io.StringIO()
        call_command("check", stdout=out, stderr=out)
        assert "CACHES['default']: (layered_cache.W002)" in out.getvalue()
    for choice in (True, False):
        options = {"environment_credentials": choice}
        with override_settings(CACHES={"default": entry(OPTIONS=options)}):
            assert run_checks(tags=[Tags.caches]) == []
    # Servers from the same environment family: the credentials are theirs.
    monkeypatch.setenv("MEMCACHIER_SERVERS", "mc.example:11211")
    with override_settings(CACHES={"default": {"BACKEND": BACKEND}}):
        assert run_checks(tags=[Tags.caches]) == []


def test_exported_credentials_never_reach_a_local_memcached(
    monkeypatch: pytest.MonkeyPatch, fresh_memcached: Any
) -> None:
    """The real thing: a developer's shell with production credentials, a local memcached."""
    monkeypatch.setenv("MEMCACHIER_USERNAME", "prod-user")
    monkeypatch.setenv("MEMCACHIER_PASSWORD", SECRET)
    with override_settings(CACHES={"default": entry(LOCATION=fresh_memcached.address)}):
        cache = caches["default"]
        cache.set("k", "v")
        assert cache.get("k") == "v"
        cache.close()
    # No MemCachier handshake ran: memcached holds only the value, not the password.
    assert fresh_memcached.command(b"get prod-user\r\n") == b"END\r\n"
    assert fresh_memcached.stats()["curr_items"] == "1"
