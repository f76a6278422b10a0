"""OPTIONS, credentials and the environment parsed into strategy objects (no server needed)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings
from django.views.debug import ExceptionReporter
from django.views.decorators.debug import sensitive_variables
from djproject import strategies

from layered_cache import ConfigurationError
from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth
from layered_cache.django import CacheConfig, CacheConfigurationError, parse_cache_config
from layered_cache.django.options import ASYNC_CLIENT_OPTIONS, CLIENT_OPTIONS
from layered_cache.serialization import JSONSerializer, PickleSerializer, SignedPickleSerializer
from layered_cache.transport import Keepalive, TCPTransport, TLSTransport

SECRET = "hunter2-SECRET-value"
LOCATION = "127.0.0.1:11211"


def parse(
    options: dict[str, Any] | None = None,
    *,
    location: Any = LOCATION,
    environ: dict[str, str] | None = None,
    **params: Any,
) -> CacheConfig:
    if options is not None:
        params["OPTIONS"] = options
    return parse_cache_config(location, params, environ=environ or {})


def refused(
    check_id: str,
    options: dict[str, Any] | None = None,
    *,
    location: Any = LOCATION,
    environ: dict[str, str] | None = None,
    **params: Any,
) -> str:
    """Parse, expect CacheConfigurationError with ``check_id``; return the message."""
    with pytest.raises(CacheConfigurationError) as caught:
        parse(options, location=location, environ=environ, **params)
    assert caught.value.check_id == check_id, str(caught.value)
    message = str(caught.value)
    assert SECRET not in message
    assert SECRET not in repr(caught.value)
    return message


# -- defaults and aliases -------------------------------------------------------------------


def test_defaults() -> None:
    config = parse()
    assert config.servers == (LOCATION,)
    assert config.transport == TCPTransport()
    assert config.auth == NoAuth()
    assert config.serializer == PickleSerializer()
    assert config.client_options == {}
    assert config.close_connections is False
    assert config.sources == {"servers": "LOCATION"}


@pytest.mark.parametrize(
    ("option", "alias", "expected"),
    [
        ("transport", "tcp", TCPTransport),
        ("transport", "TLS", TLSTransport),
        ("auth", "none", NoAuth),
        ("serializer", "pickle", PickleSerializer),
        ("serializer", "json", JSONSerializer),
    ],
)
def test_aliases(option: str, alias: str, expected: type) -> None:
    assert type(getattr(parse({option: alias}), option)) is expected


@pytest.mark.parametrize("alias", ["memcachier", "ascii"])
def test_auth_aliases(alias: str) -> None:
    auth = parse({"auth": alias, "username": "app", "password": SECRET}).auth
    assert type(auth) is {"memcachier": MemCachierAuth, "ascii": AsciiAuth}[alias]
    assert (auth.username, auth.password) == ("app", SECRET)
    assert SECRET not in repr(auth)


def test_dotted_paths_to_classes_instances_and_factories() -> None:
    config = parse(
        {
            "transport": "djproject.strategies.TRANSPORT",
            "auth": "layered_cache.auth.AsciiAuth",
            "serializer": "pymemcache.serde.pickle_serde",
            "username": "app",
            "password": SECRET,
        }
    )
    assert config.transport is strategies.TRANSPORT
    assert type(config.auth) is AsciiAuth
    assert config.serializer.__class__.__name__ == "PickleSerde"
    factory = parse({"transport": "djproject.strategies.make_transport", "no_delay": False})
    assert factory.transport == TCPTransport(no_delay=False)


def test_instances() -> None:
    transport = TLSTransport(server_hostname="cache.internal")
    auth = MemCachierAuth("app", SECRET)
    serializer = JSONSerializer(sort_keys=True)
    config = parse({"transport": transport, "auth": auth, "serializer": serializer})
    assert (config.transport, config.auth, config.serializer) == (transport, auth, serializer)
    assert config.transport is transport


def test_dict_form(tls_material: Any) -> None:
    config = parse(
        {
            "transport": {"class": "tls", "ca_file": tls_material.ca_file, "no_delay": False},
            "auth": {"class": AsciiAuth, "username": "app", "password": SECRET, "key": "k"},
            "serializer": {"class": "layered_cache.serialization.PickleSerializer", "protocol": 4},
        }
    )
    assert config.transport.ca_file == tls_material.ca_file
    assert config.transport.no_delay is False
    assert config.auth == AsciiAuth("app", SECRET, key="k")
    assert config.serializer == PickleSerializer(protocol=4)


def test_flat_strategy_arguments(tls_material: Any) -> None:
    config = parse(
        {
            "transport": "tls",
            "ca_file": tls_material.ca_file,
            "cert_file": tls_material.client_cert_file,
            "key_file": tls_material.client_key_file,
            "server_hostname": "localhost",
            "keepalive": {"idle": 30, "interval": 5},
            "no_delay": False,
            "auth": "ascii",
            "username": "app",
            "password": SECRET,
            "key": "login",
            "serializer": "json",
            "sort_keys": True,
        }
    )
    transport = config.transport
    assert (transport.ca_file, transport.cert_file, transport.key_file) == (
        tls_material.ca_file,
        tls_material.client_cert_file,
        tls_material.client_key_file,
    )
    assert transport.server_hostname == "localhost"
    assert transport.keepalive == Keepalive(idle=30, interval=5)
    assert transport.no_delay is False
    assert config.auth == AsciiAuth("app", SECRET, key="login")
    assert config.serializer == JSONSerializer(sort_keys=True)
    assert parse({"keepalive": True}).transport.keepalive == Keepalive()
    assert parse({"protocol": 2}).serializer == PickleSerializer(protocol=2)


def test_the_seed_flat_options_unchanged() -> None:
    config = parse({"no_delay": True, "connect_timeout": 2, "timeout": 2})
    assert config.transport == TCPTransport(no_delay=True)
    assert config.client_options == {"connect_timeout": 2, "timeout": 2}
    client = config.make_client()
    assert (client.connect_timeout, client.timeout) == (2.0, 2.0)


def test_client_options_pass_through() -> None:
    options = {
        "connect_timeout": None,
        "timeout": 0.5,
        "retry_attempts": 3,
        "retry_timeout": 0.25,
        "dead_timeout": 30,
        "max_pool_size": 8,
        "pool_idle_timeout": 120,
        "ignore_exceptions": True,
    }
    config = parse(options, location="a:1,b:2")
    assert config.client_options == options
    client = config.make_client()
    assert (client.connect_timeout, client.timeout) == (None, 0.5)
    node = next(iter(client._nodes.values()))
    assert node.health.policy.retry_attempts == 3
    assert node.health.policy.retry_timeout == 0.25
    assert node.health.policy.dead_timeout == 30
    assert node.pool.max_idle == 8
    assert node.pool.idle_timeout == 120
    assert client.ignore_exceptions is True


def test_every_client_keyword_is_an_option() -> None:
    assert set(CLIENT_OPTIONS) >= {
        "connect_timeout",
        "timeout",
        "retry_attempts",
        "retry_timeout",
        "dead_timeout",
        "max_pool_size",
        "pool_idle_timeout",
        "ignore_exceptions",
    }
    assert not {"transport", "auth", "serializer", "servers"} & set(CLIENT_OPTIONS)


def test_the_async_client_gets_the_same_configuration() -> None:
    options = {
        "transport": "tls",
        "serializer": "json",
        "timeout": 0.5,
        "max_pool_size": 8,
        "max_connections": 4,
        "pool_timeout": 0.25,
        "ignore_exceptions": True,
    }
    config = parse(options, location="a:1,b:2")
    assert config.client_options == {
        "timeout": 0.5,
        "max_pool_size": 8,
        "max_connections": 4,
        "pool_timeout": 0.25,
        "ignore_exceptions": True,
    }
    assert config.async_client_options == {}
    sync, aio = config.make_client(), config.make_async_client()
    assert aio.servers == sync.servers == ["a:1", "b:2"]
    assert (aio.transport, aio.auth, aio.serializer) == (sync.transport, sync.auth, sync.serializer)
    assert (aio.timeout, aio.ignore_exceptions) == (0.5, True)
    # max_pool_size is the sync client's; both take max_connections and pool_timeout.
    assert (aio.max_connections, aio.pool_timeout) == (4, 0.25)
    assert (sync.max_connections, sync.pool_timeout) == (4, 0.25)
    assert all(aio.server_for(key) == sync.server_for(key) for key in map(str, range(50)))
    sync.close()


def test_pool_options_go_to_both_clients() -> None:
    assert {"max_connections", "pool_timeout"} <= set(CLIENT_OPTIONS)
    assert not set(ASYNC_CLIENT_OPTIONS) & set(CLIENT_OPTIONS)


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_connections", 0), ("pool_timeout", -1), ("timeout", "soon"), ("max_pool_size", 0)],
)
def test_bad_client_options_are_refused_when_parsed(name: str, value: Any) -> None:
    message = refused("layered_cache.E006", {name: value})
    assert message.startswith(f"OPTIONS: {name} must be")


def test_different_async_options_do_not_share_clients() -> None:
    assert parse({"max_connections": 4}).share_key != parse({"max_connections": 5}).share_key
    assert parse({"max_connections": 4}).share_key == parse({"max_connections": 4}).share_key


def test_close_connections() -> None:
    assert parse({"close_connections": True}).close_connections is True
    message = refused("layered_cache.E006", {"close_connections": "yes"})
    assert 'OPTIONS["close_connections"] must be True or False' in message


def test_custom_strategy_arguments_flat_and_in_a_dict() -> None:
    config = parse({"transport": "djproject.strategies.LevelTransport", "level": 3})
    assert (config.transport.level, config.transport.label) == (3, "")
    config = parse({"auth": {"class": "djproject.strategies.KwargsAuth", "anything": 1}})
    assert config.auth.options == {"anything": 1}


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"USERNAME": "app", "PASSWORD": SECRET},
        {"OPTIONS": {"username": "app", "password": SECRET}},
        {"USERNAME": "app", "OPTIONS": {"password": SECRET}},
    ],
    ids=["params", "options", "mixed"],
)
def test_credentials_without_auth_mean_memcachier(params: dict[str, Any]) -> None:
    config = parse_cache_config(LOCATION, params, environ={})
    assert config.auth == MemCachierAuth("app", SECRET)


def test_credentials_given_twice_are_refused() -> None:
    message = refused("layered_cache.E002", {"username": "a", "password": SECRET}, USERNAME="b")
    assert 'OPTIONS["username"]' in message
    assert "USERNAME" in message
    message = refused(
        "layered_cache.E002",
        {"auth": {"class": "memcachier", "username": "a", "password": SECRET}},
        USERNAME="a",
        PASSWORD=SECRET,
    )
    assert "given twice" in message


@pytest.mark.parametrize(
    ("params", "present", "absent"),
    [
        ({"OPTIONS": {"username": "app"}}, 'OPTIONS["username"]', "password"),
        ({"USERNAME": "app"}, "USERNAME", "password"),
        ({"PASSWORD": SECRET}, "PASSWORD", "username"),
        ({"OPTIONS": {"auth": "ascii", "password": SECRET}}, 'OPTIONS["password"]', "username"),
    ],
)
def test_incomplete_credentials(params: dict[str, Any], present: str, absent: str) -> None:
    message = refused("layered_cache.E004", **params)
    assert f"({present}) but no {absent}" in message


def test_auth_that_needs_credentials_without_them() -> None:
    message = refused("layered_cache.E004", {"auth": "memcachier"})
    assert "needs a username and a password" in message
    assert "MEMCACHIER_USERNAME" in message


def test_credentials_for_an_auth_that_takes_none() -> None:
    message = refused("layered_cache.E002", {"auth": "none"}, USERNAME="app", PASSWORD=SECRET)
    assert "USERNAME is set, but auth 'none' (NoAuth) does not take a username" in message
    refused(
        "layered_cache.E002",
        {"auth": MemCachierAuth("x", "y"), "username": "app", "password": SECRET},
    )


def test_credentials_in_environment_are_ignored_by_an_auth_that_takes_none() -> None:
    environ = {"MEMCACHIER_USERNAME": "app", "MEMCACHIER_PASSWORD": SECRET}
    assert parse({"auth": "none"}, environ=environ).auth == NoAuth()
    auth = AsciiAuth("other", "pw")
    assert parse({"auth": auth}, environ=environ).auth is auth
    dict_auth = {"class": "memcachier", "username": "mine", "password": "pw"}
    assert parse({"auth": dict_auth}, environ=environ).auth == MemCachierAuth("mine", "pw")


# -- the environment and its precedence ---------------------------------------------------------


MEMCACHE_ENV = {"MEMCACHE_SERVERS": "mc1:1", "MEMCACHE_USERNAME": "u1", "MEMCACHE_PASSWORD": "p1"}
MEMCACHIER_ENV = {
    "MEMCACHIER_SERVERS": "mc2:2",
    "MEMCACHIER_USERNAME": "u2",
    "MEMCACHIER_PASSWORD": "p2",
}


def test_the_seed_configuration_everything_from_the_environment() -> None:
    config = parse(
        {"no_delay": True, "connect_timeout": 2, "timeout": 2}, location="", environ=MEMCACHE_ENV
    )
    assert config.servers == ("mc1:1",)
    assert config.auth == MemCachierAuth("u1", "p1")
    assert config.sources == {
        "servers": "MEMCACHE_SERVERS",
        "username": "MEMCACHE_USERNAME",
        "password": "MEMCACHE_PASSWORD",
    }


def test_heroku_memcachier_environment() -> None:
    config = parse(location="", environ=MEMCACHIER_ENV)
    assert config.servers == ("mc2:2",)
    assert config.auth == MemCachierAuth("u2", "p2")


def test_memcache_family_wins_over_memcachier_family() -> None:
    config = parse(location="", environ={**MEMCACHIER_ENV, **MEMCACHE_ENV})
    assert config.servers == ("mc1:1",)
    assert config.auth == MemCachierAuth("u1", "p1")


def test_families_are_never_mixed() -> None:
    environ = {"MEMCACHE_SERVERS": "mc1:1", **MEMCACHIER_ENV}
    config = parse(location="", environ=environ)
    assert config.servers == ("mc1:1",)
    assert config.auth == NoAuth()  # MEMCACHIER_* credentials are not sent to mc1
    environ = {"MEMCACHE_USERNAME": "u1", "MEMCACHE_PASSWORD": "p1", "MEMCACHIER_SERVERS": "x:1"}
    message = refused("layered_cache.E005", location="", environ=environ)
    assert "MEMCACHIER_SERVERS is not read because MEMCACHE_* variables are set" in message


def test_settings_win_over_the_environment_field_by_field() -> None:
    environ = {**MEMCACHE_ENV, **MEMCACHIER_ENV}
    assert parse(environ=environ).servers == (LOCATION,)
    # Servers from the environment, a username in settings, the password from the environment.
    config = parse(location="", environ=MEMCACHE_ENV, USERNAME="mine")
    assert config.auth == MemCachierAuth("mine", "p1")
    assert config.sources["username"] == "USERNAME"
    assert config.sources["password"] == "MEMCACHE_PASSWORD"
    # Settings credentials win.
    assert parse({"username": "a", "password": "b"}, environ=environ).auth == MemCachierAuth(
        "a", "b"
    )


HEROKU_CREDENTIALS = {"MEMCACHIER_USERNAME": "u2", "MEMCACHIER_PASSWORD": SECRET}


def test_environment_credentials_are_not_sent_to_servers_from_location() -> None:
    # A developer's shell exports the production credentials; LOCATION names a local
    # memcached, which would simply store the password as a value.
    config = parse(environ=HEROKU_CREDENTIALS)
    assert (config.servers, config.auth) == ((LOCATION,), NoAuth())
    assert "username" not in config.sources
    assert "password" not in config.sources
    note = config.unused_environment
    assert note.startswith("MEMCACHIER_USERNAME and MEMCACHIER_PASSWORD are set but not used")
    assert "the servers come from LOCATION, not MEMCACHIER_SERVERS" in note
    assert 'OPTIONS["environment_credentials"] = True' in note
    assert SECRET not in note
    assert "u2" not in note
    # Only the variables that would have been used are named.
    config = parse(environ=HEROKU_CREDENTIALS, USERNAME="mine", PASSWORD="pw")
    assert (config.auth, config.unused_environment) == (MemCachierAuth("mine", "pw"), "")
    assert parse(environ={"MEMCACHE_SERVERS": "mc1:1"}).unused_environment == ""


def test_environment_credentials_with_location_when_asked_for() -> None:
    config = parse({"environment_credentials": True}, environ=HEROKU_CREDENTIALS)
    assert (config.servers, config.auth) == ((LOCATION,), MemCachierAuth("u2", SECRET))
    assert config.sources["password"] == "MEMCACHIER_PASSWORD"
    assert config.unused_environment == ""
    # False: not used, and no warning either.
    config = parse({"environment_credentials": False}, environ=HEROKU_CREDENTIALS)
    assert (config.auth, config.unused_environment) == (NoAuth(), "")
    message = refused("layered_cache.E006", {"environment_credentials": "yes"})
    assert "environment_credentials\"] must be True or False, not 'yes'" in message


def test_naming_an_auth_asks_for_environment_credentials() -> None:
    # Servers in the settings, secrets in the environment, and an auth that needs them:
    # the settings ask for exactly this combination.
    config = parse({"auth": "memcachier"}, environ=HEROKU_CREDENTIALS)
    assert (config.auth, config.unused_environment) == (MemCachierAuth("u2", SECRET), "")
    config = parse({"auth": "ascii"}, environ={"MEMCACHE_USERNAME": "a", "MEMCACHE_PASSWORD": "b"})
    assert config.auth == AsciiAuth("a", "b")
    # ... unless they say otherwise.
    message = refused(
        "layered_cache.E004",
        {"auth": "memcachier", "environment_credentials": False},
        environ=HEROKU_CREDENTIALS,
    )
    assert "needs a username and a password" in message


def test_refused_environment_credentials_are_named_when_credentials_are_missing() -> None:
    message = refused(
        "layered_cache.E004", USERNAME="mine", environ={"MEMCACHIER_PASSWORD": SECRET}
    )
    assert "a username is set (USERNAME) but no password" in message
    assert "MEMCACHIER_PASSWORD is set but not used" in message
    assert SECRET not in message


@pytest.mark.parametrize("location", ["", [], [""], None, ()])
def test_empty_location_reads_the_environment(location: Any) -> None:
    assert parse(location=location, environ=MEMCACHE_ENV).servers == ("mc1:1",)


def test_empty_environment_values_count_as_unset() -> None:
    environ = {"MEMCACHE_SERVERS": " ", "MEMCACHE_USERNAME": "", **MEMCACHIER_ENV}
    assert parse(location="", environ=environ).servers == ("mc2:2",)


def test_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMCACHIER_SERVERS", "mc9:9, mc10:10")
    monkeypatch.setenv("MEMCACHIER_USERNAME", "u9")
    monkeypatch.setenv("MEMCACHIER_PASSWORD", "p9")
    config = parse_cache_config("", {})
    assert config.servers == ("mc9:9", "mc10:10")
    assert config.auth == MemCachierAuth("u9", "p9")


@pytest.mark.parametrize(
    ("location", "servers", "written"),
    [
        ("a:1,b:2", ("a:1", "b:2"), ("a:1", "b:2")),
        ("a:1; b:2", ("a:1", "b:2"), ("a:1", "b:2")),
        ("a:1 b", ("a:1", "b:11211"), ("a:1", "b")),
        (["a:1", "b:2,c"], ("a:1", "b:2", "c:11211"), ("a:1", "b:2", "c")),
        (("a", 1), ("a:1",), ("a:1",)),
        ([("::1", 5)], ("[::1]:5",), ("[::1]:5",)),
        ("unix:/run/mc.sock", ("/run/mc.sock",), ("unix:/run/mc.sock",)),
    ],
)
def test_server_lists(location: Any, servers: tuple[str, ...], written: tuple[str, ...]) -> None:
    config = parse(location=location)
    assert config.servers == servers
    assert config.locations == written


# -- misconfiguration ---------------------------------------------------------------------------


def test_errors_are_improperly_configured_and_configuration_errors() -> None:
    with pytest.raises(ImproperlyConfigured):
        parse({"transport": "tsl"})
    with pytest.raises(ConfigurationError):
        parse({"transport": "tsl"})
    with pytest.raises(ValueError, match="unknown transport"):
        parse({"transport": "tsl"})


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("transport", "tsl", "(did you mean 'tls'?). Use 'tcp', 'tls', a dotted path"),
        ("transport", "ssl", "(did you mean 'tls'?). Use 'tcp', 'tls', a dotted path"),
        ("transport", "SSL", "(did you mean 'tls'?). Use 'tcp', 'tls', a dotted path"),
        ("transport", "plain", "(did you mean 'tcp'?). Use 'tcp', 'tls', a dotted path"),
        ("auth", "memcacheir", "(did you mean 'memcachier'?). Use 'none', 'memcachier', 'ascii'"),
        ("serializer", "yaml", "Use 'pickle', 'json', 'signed_pickle', a dotted path"),
    ],
)
def test_unknown_alias(option: str, value: str, allowed: str) -> None:
    message = refused("layered_cache.E001", {option: value})
    assert message.startswith(f'OPTIONS["{option}"]: unknown ')
    assert allowed in message


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("no_such_module.Transport", "cannot import 'no_such_module.Transport'"),
        ("layered_cache.transport.NoSuchTransport", "cannot import"),
        ("djproject.strategies.NOT_A_STRATEGY", "is not a transport"),
        ("os.path", "is not a transport"),
        ("djproject.strategies.make_nothing", "made a object, which has no connect()"),
        (42, "int is not a transport"),
        ({"ca_file": "x"}, 'a dict needs a "class" key'),
    ],
)
def test_bad_strategy_specs(spec: Any, problem: str) -> None:
    message = refused("layered_cache.E001", {"transport": spec})
    assert message.startswith('OPTIONS["transport"]')
    assert problem in message
    assert "Use 'tcp', 'tls'" in message or "made a" in message


def test_missing_tls_files(tls_material: Any) -> None:
    message = refused("layered_cache.E003", {"transport": "tls", "ca_file": "/no/such/ca.pem"})
    assert "ca_file: no such file: '/no/such/ca.pem'" in message
    message = refused(
        "layered_cache.E003",
        {"transport": {"class": "tls", "cert_file": "/no/such/cert.pem"}},
    )
    assert "cert_file: no such file" in message
    message = refused("layered_cache.E003", {"transport": "tls", "key_file": tls_material.ca_file})
    assert "key_file needs cert_file" in message


def test_a_flat_option_no_chosen_strategy_takes() -> None:
    message = refused("layered_cache.E002", {"ca_file": "/etc/ca.pem"})
    assert message.startswith('OPTIONS["ca_file"] is not an option of this cache')
    assert """it is an option of transport 'tls': add "transport": "tls\"""" in message
    assert "transport 'tcp' (TCPTransport) takes 'keepalive', 'no_delay'" in message
    message = refused("layered_cache.E002", {"no_dely": True})
    assert "did you mean 'no_delay'?" in message
    message = refused("layered_cache.E002", {"sort_keys": True})
    assert 'add "serializer": "json"' in message


def test_an_argument_in_a_dict_the_strategy_does_not_take() -> None:
    message = refused("layered_cache.E002", {"transport": {"class": "tcp", "ca_file": "x"}})
    assert message == (
        "OPTIONS[\"transport\"]: transport 'tcp' (TCPTransport) does not take 'ca_file'; "
        "it takes 'keepalive', 'no_delay'"
    )


def test_arguments_for_an_instance() -> None:
    message = refused("layered_cache.E002", {"transport": TCPTransport(), "no_delay": False})
    assert "no options (it is an instance)" in message
    message = refused(
        "layered_cache.E003", {"transport": {"class": strategies.TRANSPORT, "no_delay": False}}
    )
    assert "already a transport instance" in message


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ("tls_context", '"transport": {"class": "tls", "ssl_context": <your context>}'),
        ("serde", '"serializer": <your serde>'),
        ("ignore_exc", ""),
        ("MAX_ENTRIES", "memcached evicts entries itself"),
    ],
)
def test_options_of_other_backends(option: str, hint: str) -> None:
    message = refused("layered_cache.E002", {option: 1})
    assert hint in message


def test_an_option_two_chosen_strategies_take() -> None:
    options = {
        "transport": "djproject.strategies.LevelTransport",
        "serializer": "djproject.strategies.LevelSerializer",
        "level": 2,
    }
    message = refused("layered_cache.E002", options)
    assert 'OPTIONS["level"] is ambiguous' in message
    options = {"transport": {"class": "tcp", "no_delay": True}, "no_delay": False}
    assert "given twice" in refused("layered_cache.E002", options)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"timeout": -1}, "timeout must be a positive number of seconds or None, not -1"),
        ({"connect_timeout": "2"}, "connect_timeout must be a positive number"),
        ({"retry_attempts": 0}, "retry_attempts must be a number >= 1"),
        ({"max_pool_size": 0}, "max_pool_size must be a number >= 1"),
        ({"dead_timeout": -5}, "dead_timeout must be a number >= 0"),
    ],
)
def test_bad_client_option_values(options: dict[str, Any], problem: str) -> None:
    assert problem in refused("layered_cache.E006", options)


def test_options_must_be_a_dict() -> None:
    assert "OPTIONS must be a dict" in refused("layered_cache.E006", location=LOCATION, OPTIONS=[1])


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("host:port", "malformed server"),
        ("a:1,a:1", "server a:1 is listed twice"),
        ("a:99999", "port must be 1-65535"),
        (42, "LOCATION must be 'host:port'"),
    ],
)
def test_bad_server_lists(location: Any, problem: str) -> None:
    assert problem in refused("layered_cache.E005", location=location)


def test_no_server_anywhere() -> None:
    message = refused("layered_cache.E005", location="")
    assert message == (
        "no memcached server: set LOCATION (e.g. '127.0.0.1:11211'), or MEMCACHE_SERVERS "
        "or MEMCACHIER_SERVERS in the environment"
    )


def test_strategy_errors_keep_their_cause() -> None:
    with pytest.raises(CacheConfigurationError) as caught:
        parse({"auth": "ascii", "username": "has space", "password": SECRET})
    assert caught.value.check_id == "layered_cache.E003"
    assert isinstance(caught.value.__cause__, ConfigurationError)
    assert "username 'has space' is not allowed" in str(caught.value)


# -- secrets -------------------------------------------------------------------------------------


def test_a_password_a_strategy_repeats_is_redacted_and_not_chained() -> None:
    options = {"auth": "djproject.strategies.EchoingAuth", "username": "app", "password": SECRET}
    with pytest.raises(CacheConfigurationError) as caught:
        parse(options)
    assert caught.value.check_id == "layered_cache.E003"
    assert "password '***' is too short" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


@sensitive_variables()
def error_report(params: dict[str, Any]) -> str:
    """The HTML error report Django would mail for the error ``params`` cause."""
    try:
        parse_cache_config(LOCATION, params, environ={})
    except CacheConfigurationError:
        return ExceptionReporter(None, *sys.exc_info()).get_traceback_html()
    raise AssertionError("no error")  # pragma: no cover


@pytest.mark.parametrize(
    "params",
    [
        {
            "OPTIONS": {
                "auth": {"class": "djproject.strategies.EchoingAuth", "password": SECRET},
                "username": "app",
            }
        },
        {"OPTIONS": {"username": "a", "password": SECRET}, "USERNAME": "b"},
        {"OPTIONS": {"auth": "none", "password": SECRET}},
        {"OPTIONS": {"password": SECRET, "serializer": "yaml"}},
        {"OPTIONS": {"auth": {"class": "memcachier", "password": SECRET, "bogus": 1}}},
    ],
)
def test_secrets_stay_out_of_error_reports(params: dict[str, Any]) -> None:
    """Django's error reports (500 e-mails) hide our frames' local variables."""
    report = error_report(params)
    assert "parse_cache_config" in report
    assert SECRET not in report


def test_config_repr_hides_the_password() -> None:
    config = parse(USERNAME="app", PASSWORD=SECRET)
    assert SECRET not in repr(config)


# -- signed pickle keyed by SECRET_KEY ------------------------------------------------------------


def test_signed_pickle_signs_with_the_secret_key() -> None:
    with override_settings(
        SECRET_KEY="a-secret-key-for-tests-only", SECRET_KEY_FALLBACKS=["old-key-1234567890"]
    ):
        serializer = parse({"serializer": "signed_pickle"}).serializer
    assert isinstance(serializer, SignedPickleSerializer)
    assert serializer == SignedPickleSerializer(
        key="a-secret-key-for-tests-only", fallback_keys=("old-key-1234567890",)
    )
    assert "a-secret-key" not in repr(serializer)


def test_signed_pickle_with_its_own_key() -> None:
    own = {"class": "signed_pickle", "key": SECRET * 2, "salt": "mine"}
    assert parse({"serializer": own}).serializer == SignedPickleSerializer(
        key=SECRET * 2, salt="mine"
    )


def test_signed_pickle_without_a_secret_key() -> None:
    with override_settings(SECRET_KEY=""):
        message = refused("layered_cache.E003", {"serializer": "signed_pickle"})
    assert "signs with SECRET_KEY, but The SECRET_KEY setting must not be empty" in message


def test_a_short_signing_key_is_refused_without_showing_it() -> None:
    message = refused(
        "layered_cache.E003", {"serializer": {"class": "signed_pickle", "key": "short-key"}}
    )
    assert "short-key" not in message


def test_incomplete_credentials_name_the_variable_of_the_family_in_use() -> None:
    message = refused("layered_cache.E004", environ={"MEMCACHE_SERVERS": "a:1"}, USERNAME="app")
    assert message.endswith("or MEMCACHE_PASSWORD in the environment")
    message = refused(
        "layered_cache.E004",
        location="",
        environ={"MEMCACHIER_SERVERS": "a:1", "MEMCACHIER_USERNAME": "app"},
    )
    assert "(MEMCACHIER_USERNAME) but no password" in message
    assert message.endswith("or MEMCACHIER_PASSWORD in the environment")
