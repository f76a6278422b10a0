"""Where the servers and credentials come from: the settings, then one environment family.

The environment's own rules (which family is read, whose servers its credentials
go to) are :mod:`layered_cache._environment`'s; here they meet ``LOCATION``,
``OPTIONS["username"]``/``["password"]`` and ``USERNAME``/``PASSWORD``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
from django.views.decorators.debug import sensitive_variables

from layered_cache._addresses import hash_name, parse_servers
from layered_cache._environment import Environment
from layered_cache.django.options._errors import (
    E_CREDENTIALS,
    E_SERVERS,
    E_UNKNOWN_OPTION,
    CacheConfigurationError,
    is_empty,
)
from layered_cache.django.options._strategies import Choice
from layered_cache.errors import ConfigurationError
from layered_cache.transport import format_address

__all__ = [
    "CREDENTIALS",
    "Credentials",
    "Servers",
    "find_credentials",
    "find_servers",
    "give_credentials",
    "settings_credentials",
]

#: The credentials, as ``OPTIONS`` keys (and, upper-case, ``CACHES`` keys).
CREDENTIALS: Final = ("username", "password")

_SEPARATORS: Final = re.compile(r"[,;\s]+")


# -- servers ----------------------------------------------------------------------------


@attrs.frozen
class Servers:
    """The cache's servers and where they were found.

    Attributes:
        servers: normalized ``host:port`` strings, in the order given.
        locations: the servers as written.
        source: ``"LOCATION"`` or the environment variable they came from.
    """

    servers: tuple[str, ...]
    locations: tuple[str, ...]
    source: str


def find_servers(location: object, env: Environment, environ: Mapping[str, str]) -> Servers:
    """``LOCATION``, else the environment family's servers; neither is an error."""
    if not is_empty(location):
        return _server_list(location, "LOCATION")
    if env.servers:
        return _server_list(env.servers, env.variable("SERVERS"))
    raise CacheConfigurationError(
        "no memcached server: set LOCATION (e.g. '127.0.0.1:11211'), or "
        "MEMCACHE_SERVERS or MEMCACHIER_SERVERS in the environment"
        f"{env.unread_servers_note(environ)}",
        check_id=E_SERVERS,
    )


def _server_list(location: object, source: str) -> Servers:
    """The servers of LOCATION or a variable, refusing malformed and repeated ones."""
    if isinstance(location, str):
        items: list[object] = [location]
    elif isinstance(location, tuple) and len(location) == 2 and isinstance(location[1], int):
        items = [location]
    elif isinstance(location, Iterable):
        items = list(location)
    else:
        raise CacheConfigurationError(
            f"{source} must be 'host:port', a comma separated list of them, or a list; "
            f"not {type(location).__name__}",
            check_id=E_SERVERS,
        )
    try:
        addresses = parse_servers([item for item in items if item != ""])  # type: ignore[misc]
    except ConfigurationError as exc:
        raise CacheConfigurationError(f"{source}: {exc}", check_id=E_SERVERS) from exc
    seen: set[str] = set()
    for address in addresses:
        name = hash_name(address)
        if name in seen:
            raise CacheConfigurationError(
                f"{source}: server {format_address(address)} is listed twice",
                check_id=E_SERVERS,
            )
        seen.add(name)
    written = [
        part
        for item in items
        for part in (_SEPARATORS.split(item) if isinstance(item, str) else [_written(item)])
        if part
    ]
    return Servers(tuple(format_address(address) for address in addresses), tuple(written), source)


def _written(item: object) -> str:
    if isinstance(item, tuple) and len(item) == 2:
        return format_address((str(item[0]), int(item[1])))
    return str(item)


# -- credentials ------------------------------------------------------------------------


@attrs.frozen
class Credentials:
    """The username and password found, each with where it was found.

    Attributes:
        found: ``{"username": (value, source), ...}``, environment ones first.
        from_settings: the names set in the settings (not the environment).
        unused_environment: why credentials in the environment were not used,
            or ``""``.
    """

    found: Mapping[str, tuple[Any, str]] = attrs.field(repr=False)
    from_settings: frozenset[str]
    unused_environment: str = ""


@sensitive_variables()
def settings_credentials(
    options: dict[str, Any], params: Mapping[str, Any]
) -> dict[str, tuple[Any, str]]:
    """Take the credentials out of ``options`` (or ``params``): ``{name: (value, source)}``."""
    found = {}
    for name in CREDENTIALS:
        value, source = _setting_credential(options, params, name)
        if source:
            found[name] = (value, source)
    return found


@sensitive_variables()
def _setting_credential(
    options: dict[str, Any], params: Mapping[str, Any], name: str
) -> tuple[Any, str]:
    """``OPTIONS[name]`` or ``params[NAME]``; both set is an error."""
    in_options = options.pop(name, None)
    in_params = params.get(name.upper())
    if not is_empty(in_options) and not is_empty(in_params):
        raise CacheConfigurationError(
            f'the {name} is given twice, as OPTIONS["{name}"] and as {name.upper()}; keep one',
            check_id=E_UNKNOWN_OPTION,
        )
    if not is_empty(in_options):
        return in_options, f'OPTIONS["{name}"]'
    if not is_empty(in_params):
        return in_params, name.upper()
    return None, ""


@sensitive_variables()
def find_credentials(
    settings: Mapping[str, tuple[Any, str]],
    env: Environment,
    *,
    servers_from: str,
    environment_credentials: bool | None,
    auth_named: bool,
) -> Credentials:
    """The settings' credentials, and what the same environment family adds.

    The environment's credentials only go to the environment's own servers,
    unless the settings ask for them: by naming an ``auth`` (and leaving its
    credentials to the environment) or with ``environment_credentials``.

    Args:
        settings: what :func:`settings_credentials` found.
        env: the environment family in use.
        servers_from: where the servers came from (:attr:`Servers.source`).
        environment_credentials: ``OPTIONS["environment_credentials"]``, or None.
        auth_named: ``OPTIONS["auth"]`` is set.
    """
    from_env = {
        name: (value, env.variable(name.upper()))
        for name, value in zip(CREDENTIALS, (env.username, env.password), strict=True)
        if value and name not in settings
    }
    asked = environment_credentials or (environment_credentials is None and auth_named)
    unused_environment = ""
    if servers_from == "LOCATION" and not asked:
        if from_env and environment_credentials is None:
            unused_environment = Environment(
                env.family,
                username=env.username if "username" in from_env else "",
                password=env.password if "password" in from_env else "",
            ).credentials_refused(
                "LOCATION",
                'name the auth that uses them (e.g. "auth": "memcachier") or set '
                'OPTIONS["environment_credentials"] = True.',
            )
        from_env = {}
    return Credentials({**from_env, **settings}, frozenset(settings), unused_environment)


@sensitive_variables()
def give_credentials(auth: Choice, credentials: Credentials, env: Environment) -> dict[str, str]:
    """Pass the credentials to the chosen authenticator, if it takes them.

    Returns:
        Where each credential it was given came from, e.g. ``{"password": "PASSWORD"}``.

    Raises:
        CacheConfigurationError: a credential from the settings that the
            authenticator does not take or that is given twice, or a username
            without a password (or the other way round).
    """
    sources: dict[str, str] = {}
    for name, (value, source) in credentials.found.items():
        from_settings = name in credentials.from_settings
        if not auth.takes(name):
            if from_settings:
                raise CacheConfigurationError(
                    f"{source} is set, but {auth.describe()} does not take a {name} "
                    f"(it takes {auth.arguments_text()}). Remove it, or choose an auth that "
                    'uses it, e.g. "auth": "memcachier"',
                    check_id=E_UNKNOWN_OPTION,
                )
            continue  # the environment only fills what the chosen auth uses
        if name in auth.kwargs:
            if from_settings:
                raise CacheConfigurationError(
                    f'the {name} is given twice: as {source} and inside OPTIONS["auth"]; keep one',
                    check_id=E_UNKNOWN_OPTION,
                )
            continue
        auth.kwargs[name] = value
        sources[name] = source
    if auth.takes("username") and auth.takes("password"):
        _refuse_incomplete(auth, sources, env, credentials.unused_environment)
    return sources


def _refuse_incomplete(
    auth: Choice, sources: Mapping[str, str], env: Environment, unused_environment: str
) -> None:
    """A username needs a password and the other way round; a required pair needs both."""
    has_user = "username" in auth.kwargs
    has_password = "password" in auth.kwargs
    if has_user != has_password:
        present, absent = ("username", "password") if has_user else ("password", "username")
        where = sources.get(present, f'OPTIONS["auth"]["{present}"]')
        raise CacheConfigurationError(
            f"a {present} is set ({where}) but no {absent}: "
            f"{_credential_help(absent, env, unused_environment)}",
            check_id=E_CREDENTIALS,
        )
    if not has_user and {"username", "password"} <= auth.required:
        raise CacheConfigurationError(
            f"{auth.describe()} needs a username and a password: set "
            'OPTIONS["username"] and OPTIONS["password"] (or USERNAME and PASSWORD), '
            "or MEMCACHE_USERNAME and MEMCACHE_PASSWORD (or MEMCACHIER_USERNAME and "
            "MEMCACHIER_PASSWORD) in the environment"
            f"{'. ' + unused_environment if unused_environment else ''}",
            check_id=E_CREDENTIALS,
        )


def _credential_help(name: str, env: Environment, unused_environment: str) -> str:
    """Where a missing credential may go; only the environment family in use, if any."""
    variables = env.variable(name.upper()).replace(" or ", " / ")
    where = f'set OPTIONS["{name}"] (or {name.upper()}), or {variables} in the environment'
    return f"{where}. {unused_environment}" if unused_environment else where
