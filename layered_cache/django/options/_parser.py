"""The parser: one ``CACHES`` entry, in named steps, into a :class:`CacheConfig`."""

from __future__ import annotations

import difflib
import inspect
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

import attrs
from django.core.signals import setting_changed
from django.views.decorators.debug import sensitive_variables

from layered_cache import AsyncClient, Client
from layered_cache._environment import Environment, environment_values
from layered_cache.core.config import check_count, check_timeout, client_config
from layered_cache.django.options._errors import (
    E_UNKNOWN_OPTION,
    E_VALUE,
    CacheConfigurationError,
    is_empty,
    quoted_names,
)
from layered_cache.django.options._listeners import resolve_listener_options
from layered_cache.django.options._sources import (
    CREDENTIALS,
    find_credentials,
    find_servers,
    give_credentials,
    settings_credentials,
)
from layered_cache.django.options._strategies import (
    STRATEGY_OPTIONS,
    Choice,
    alias_taking,
    build_strategies,
    choose_strategies,
    complete_arguments,
    freeze,
)
from layered_cache.errors import ConfigurationError

__all__ = [
    "ASYNC_CLIENT_OPTIONS",
    "BACKEND_OPTIONS",
    "CLIENT_OPTIONS",
    "CacheConfig",
    "cached_cache_config",
    "parse_cache_config",
]


def _keyword_defaults(cls: type) -> dict[str, Any]:
    """A client's keyword arguments other than the strategies, with their defaults."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY and name not in STRATEGY_OPTIONS
    }


#: Either client class.
_C = TypeVar("_C", Client, AsyncClient)

_CLIENT_DEFAULTS: Final = _keyword_defaults(Client)
_ASYNC_DEFAULTS: Final = _keyword_defaults(AsyncClient)
# What the clients' shared checks (core.config.client_config) take.
_CONFIG_ARGUMENTS: Final = frozenset(inspect.signature(client_config).parameters)

#: OPTIONS passed to :class:`layered_cache.Client` unchanged: every keyword
#: argument of the client except the strategies (``connect_timeout``, ``timeout``,
#: ``retry_attempts``, ``retry_timeout``, ``dead_timeout``, ``max_pool_size``,
#: ``max_connections``, ``pool_timeout``, ``pool_idle_timeout``,
#: ``ignore_exceptions``, ...). The async methods' :class:`~layered_cache.AsyncClient`
#: gets them too, except ``max_pool_size`` (the sync client's alone).
CLIENT_OPTIONS: Final = tuple(_CLIENT_DEFAULTS)
#: OPTIONS only the async methods' :class:`~layered_cache.AsyncClient` takes
#: (none at present: both clients take ``max_connections`` and ``pool_timeout``).
ASYNC_CLIENT_OPTIONS: Final = tuple(name for name in _ASYNC_DEFAULTS if name not in CLIENT_OPTIONS)
#: OPTIONS the Django backend itself reads.
BACKEND_OPTIONS: Final = ("close_connections", "environment_credentials")

# Options people bring from Django's PyMemcacheCache (pymemcache's HashClient
# arguments) or from other backends, with what to write instead.
_MIGRATION_HINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "tls_context": 'use "transport": {"class": "tls", "ssl_context": <your context>}',
        "serde": 'use "serializer": <your serde> (any object with serialize() and deserialize())',
        "serializer_class": 'use "serializer": "pickle", "json" or a dotted path',
        "use_pooling": "connections are always pooled; remove it",
        "ignore_exc": 'use "ignore_exceptions": True (it covers writes too)',
        "socket_keepalive": 'use "keepalive": True or {"idle": ..., "interval": ..., "count": ...}',
        "key_prefix": "use the cache's KEY_PREFIX setting",
        "allow_unicode_keys": "unicode keys always work; remove it",
        "default_noreply": "writes always wait for the server's answer; remove it",
        "MAX_ENTRIES": "memcached evicts entries itself; remove it",
        "CULL_FREQUENCY": "memcached evicts entries itself; remove it",
    }
)


@attrs.frozen
class CacheConfig:
    """A ``CACHES`` entry, parsed: what :class:`~layered_cache.Client` is built from.

    Made by :func:`parse_cache_config`; every strategy is already built and
    validated, so :meth:`make_client` cannot fail.

    Attributes:
        servers: the servers, as ``host:port`` strings, in the order given.
        locations: the servers as written in ``LOCATION`` or the environment
            (what Django's memcached backends keep in ``_servers``).
        transport: the transport strategy object.
        auth: the authenticator strategy object.
        serializer: the serializer strategy object.
        discovery: the discovery strategy object (``StaticDiscovery()`` unless
            ``OPTIONS["discovery"]`` names another).
        client_options: the :class:`~layered_cache.Client` keyword arguments
            given in ``OPTIONS`` (the client's defaults apply to the rest).
        async_client_options: the keyword arguments given in ``OPTIONS`` that
            only the :class:`~layered_cache.AsyncClient` takes (none at present:
            both clients take ``max_connections`` and ``pool_timeout``).
        close_connections: ``close()`` disconnects (Django calls it after every
            request) instead of keeping the pooled connections.
        sources: where the servers and credentials came from, e.g.
            ``{"servers": "MEMCACHIER_SERVERS", "username": "USERNAME"}``.
        unused_environment: why credentials set in the environment were not
            used (they only go to the environment's own servers), or ``""``;
            ``manage.py check`` reports it as ``layered_cache.W002``.
        share_key: equal for two entries that would build the same client:
            the same servers, client options and strategies made from equal
            arguments (objects other than plain values compare by identity).
            Backends with equal keys share one client (and one
            :class:`~layered_cache.AsyncClient`) and their connections.
    """

    servers: tuple[str, ...]
    locations: tuple[str, ...]
    transport: Any
    auth: Any
    serializer: Any
    discovery: Any = None
    client_options: Mapping[str, Any] = attrs.field(factory=dict)
    async_client_options: Mapping[str, Any] = attrs.field(factory=dict)
    close_connections: bool = False
    sources: Mapping[str, str] = attrs.field(factory=dict)
    unused_environment: str = ""
    share_key: Hashable = attrs.field(default=None, eq=False, repr=False)

    def make_client(self) -> Client:
        """Build the :class:`~layered_cache.Client` this configuration describes.

        Raises:
            CacheConfigurationError: a client option is invalid (only when the
                configuration was not made by :func:`parse_cache_config`).
        """
        return self._build(Client, self.client_options)

    def make_async_client(self) -> AsyncClient:
        """Build the :class:`~layered_cache.AsyncClient` this configuration describes.

        The same servers, strategies and client options as :meth:`make_client`
        (so both place keys alike and read each other's values), plus
        :attr:`async_client_options`; ``max_pool_size`` is the sync client's
        alone.

        Raises:
            CacheConfigurationError: the transport cannot open asyncio
                connections (a custom transport without ``plan()``), or an
                option is invalid (only when the configuration was not made by
                :func:`parse_cache_config`).
        """
        shared = {k: v for k, v in self.client_options.items() if k in _ASYNC_DEFAULTS}
        return self._build(AsyncClient, {**shared, **self.async_client_options})

    def _build(self, client_class: Callable[..., _C], options: Mapping[str, Any]) -> _C:
        """Either client, from these servers, strategies and ``options``."""
        try:
            return client_class(
                list(self.servers),
                transport=self.transport,
                auth=self.auth,
                serializer=self.serializer,
                discovery=self.discovery,
                **options,
            )
        except ConfigurationError as exc:
            raise CacheConfigurationError(f"OPTIONS: {exc}", check_id=E_VALUE) from exc


@sensitive_variables()
def parse_cache_config(
    location: object,
    params: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
) -> CacheConfig:
    """Parse one ``CACHES`` entry (as Django hands it to a backend) into a :class:`CacheConfig`.

    Args:
        location: ``LOCATION``: ``"host:port"``, several separated by commas,
            semicolons or spaces, a list of them, or empty to read the environment.
        params: the rest of the entry (``OPTIONS``, ``USERNAME``, ``PASSWORD``,
            ``TIMEOUT``, ...).
        environ: where ``MEMCACHE_*`` / ``MEMCACHIER_*`` are read (default
            :data:`os.environ`).

    Returns:
        The parsed configuration, with every strategy built.

    Raises:
        CacheConfigurationError: the entry is wrong; the message names the
            option and what it accepts, and never contains a password.

    Example:
        >>> config = parse_cache_config(
        ...     "mc1.example.com:11211",
        ...     {"OPTIONS": {"serializer": "json", "username": "u", "password": "p"}},
        ...     environ={},
        ... )
        >>> config.auth
        MemCachierAuth(username='u')
        >>> config.serializer
        JSONSerializer(sort_keys=False)
    """
    environ = os.environ if environ is None else environ
    options = _options(params)
    specs = {option: options.pop(option, None) for option in STRATEGY_OPTIONS}
    client_options = {name: options.pop(name) for name in CLIENT_OPTIONS if name in options}
    async_options = {name: options.pop(name) for name in ASYNC_CLIENT_OPTIONS if name in options}
    close_connections, environment_credentials = _backend_flags(options)
    settings = settings_credentials(options, params)
    env = Environment.read(environ)
    servers = find_servers(location, env, environ)
    credentials = find_credentials(
        settings,
        env,
        servers_from=servers.source,
        environment_credentials=environment_credentials,
        auth_named=not is_empty(specs["auth"]),
    )
    choices = choose_strategies(specs, credentials=bool(credentials.found))
    _give_flat_options(options, choices)
    sources = {"servers": servers.source, **give_credentials(choices["auth"], credentials, env)}
    complete_arguments(choices)
    built = build_strategies(choices)
    unused_environment = credentials.unused_environment
    if unused_environment:
        unused_environment += " False keeps them unused without this warning."
    given_options = client_options
    client_options = resolve_listener_options(client_options)
    _check_client_options(servers.servers, built, client_options, async_options)
    return CacheConfig(
        servers=servers.servers,
        locations=servers.locations,
        transport=built["transport"],
        auth=built["auth"],
        serializer=built["serializer"],
        discovery=built["discovery"],
        client_options=client_options,
        async_client_options=async_options,
        close_connections=close_connections,
        sources=sources,
        unused_environment=unused_environment,
        share_key=_share_key(
            # As written: two entries naming the same listener class share a client.
            servers.servers,
            choices,
            {**given_options, **async_options},
            close_connections,
        ),
    )


def _check_client_options(
    servers: tuple[str, ...],
    built: Mapping[str, Any],
    client_options: Mapping[str, Any],
    async_options: Mapping[str, Any],
) -> None:
    """Refuse the client options the clients would refuse, without building a client.

    The same checks the clients' constructors run (:func:`client_config`), so
    :meth:`CacheConfig.make_client` and :meth:`CacheConfig.make_async_client`
    cannot fail later.
    """
    given = {**_CLIENT_DEFAULTS, **built, **client_options}
    # (max_connections and pool_timeout: both clients' own checks, run here as well)
    async_given = {**_ASYNC_DEFAULTS, **client_options, **async_options}
    try:
        client_config(list(servers), **{k: v for k, v in given.items() if k in _CONFIG_ARGUMENTS})
        check_count("max_connections", async_given["max_connections"], minimum=1)
        check_timeout("pool_timeout", async_given["pool_timeout"])
    except ConfigurationError as exc:
        raise CacheConfigurationError(f"OPTIONS: {exc}", check_id=E_VALUE) from exc


# -- parsed once per entry -----------------------------------------------------------------

#: Distinct ``CACHES`` entries whose parsed configuration :func:`cached_cache_config` keeps.
_MAX_CACHED = 64
_cached: OrderedDict[Hashable, CacheConfig] = OrderedDict()
_cached_lock = threading.Lock()


def cached_cache_config(location: object, params: Mapping[str, Any]) -> CacheConfig:
    """:func:`parse_cache_config` of an entry, parsed once: what the backend uses.

    Django makes a backend per thread and, under ASGI, per request; parsing
    its entry every time would cost far more than the backend itself. The
    result is kept for equal entries (plain values compared by value, other
    objects by identity, as :attr:`CacheConfig.share_key` compares them) read
    with the same ``MEMCACHE_*``/``MEMCACHIER_*`` environment; a change of
    settings (``override_settings``) forgets them all, since a strategy may
    read settings (``SECRET_KEY``). An entry that cannot be made into a key is
    parsed every time. Only successful parses are kept, and the warnings a
    parse emits are emitted by the first only.
    """
    key = _entry_key(location, params)
    if key is None:
        return parse_cache_config(location, params)
    config = _cached.get(key)
    if config is None:
        config = parse_cache_config(location, params)
        with _cached_lock:
            _cached[key] = config
            if len(_cached) > _MAX_CACHED:
                _cached.popitem(last=False)
    return config


def _entry_key(location: object, params: Mapping[str, Any]) -> Hashable | None:
    """What a parse depends on, hashable (None: it cannot be made)."""
    try:
        key = (freeze(location), freeze(params), environment_values())
        hash(key)
    except (TypeError, ValueError, RecursionError):
        return None
    return key


def _forget_cached(**kwargs: Any) -> None:
    with _cached_lock:
        _cached.clear()


setting_changed.connect(_forget_cached, weak=False, dispatch_uid="layered_cache.cached_config")


def _options(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``OPTIONS`` that the steps take their keys out of; it must be a dict."""
    raw = params.get("OPTIONS") or {}
    if not isinstance(raw, Mapping):
        raise CacheConfigurationError(
            f"OPTIONS must be a dict, not {type(raw).__name__}", check_id=E_VALUE
        )
    for name in raw:
        if not isinstance(name, str):
            raise CacheConfigurationError(
                f"OPTIONS keys must be strings, not {type(name).__name__}",
                check_id=E_UNKNOWN_OPTION,
            )
    return dict(raw)


def _backend_flags(options: dict[str, Any]) -> tuple[bool, bool | None]:
    """Take out ``close_connections`` and ``environment_credentials`` (None: not given)."""
    close_connections = options.pop("close_connections", False)
    environment_credentials = options.pop("environment_credentials", None)
    for name, flag in (
        ("close_connections", close_connections),
        ("environment_credentials", environment_credentials),
    ):
        if not isinstance(flag, bool | None):
            raise CacheConfigurationError(
                f'OPTIONS["{name}"] must be True or False, not {flag!r}', check_id=E_VALUE
            )
    return bool(close_connections), environment_credentials


def _give_flat_options(options: Mapping[str, Any], choices: Mapping[str, Choice]) -> None:
    """The keys left in ``OPTIONS`` go to the one chosen strategy that names each of them."""
    ordered = list(choices.values())
    for name, value in options.items():
        takers = [choice for choice in ordered if choice.takes(name)]
        if not takers:
            raise _unknown_option(name, ordered)
        if len(takers) > 1:
            raise CacheConfigurationError(
                f'OPTIONS["{name}"] is ambiguous: {" and ".join(c.describe() for c in takers)} '
                f'both take it; give it inside one of them, e.g. "{takers[0].family.option}": '
                f'{{"class": ..., "{name}": ...}}',
                check_id=E_UNKNOWN_OPTION,
            )
        choice = takers[0]
        if name in choice.kwargs:
            raise CacheConfigurationError(
                f'OPTIONS["{name}"] is given twice: flat in OPTIONS and inside '
                f'OPTIONS["{choice.family.option}"]; keep one',
                check_id=E_UNKNOWN_OPTION,
            )
        choice.kwargs[name] = value
    for choice in ordered:
        choice.check_arguments()


def _unknown_option(name: str, choices: list[Choice]) -> CacheConfigurationError:
    known = {
        *CLIENT_OPTIONS,
        *ASYNC_CLIENT_OPTIONS,
        *BACKEND_OPTIONS,
        *STRATEGY_OPTIONS,
        *CREDENTIALS,
    }
    for choice in choices:
        if choice.accepted:
            known.update(choice.accepted)
    hint = _MIGRATION_HINTS.get(name) or alias_taking(name)
    if hint is None:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
    takers = [f"{choice.describe()} takes {choice.arguments_text()}" for choice in choices]
    backend = quoted_names([*CLIENT_OPTIONS, *ASYNC_CLIENT_OPTIONS, *BACKEND_OPTIONS])
    return CacheConfigurationError(
        f'OPTIONS["{name}"] is not an option of this cache'
        f"{f' ({hint})' if hint else ''}. "
        f"The backend takes {backend}; "
        f"{'; '.join(takers)}",
        check_id=E_UNKNOWN_OPTION,
    )


def _share_key(
    servers: tuple[str, ...],
    choices: Mapping[str, Choice],
    client_options: Mapping[str, Any],
    close_connections: bool,
) -> Hashable:
    """Equal for entries that would build the same client (see :attr:`CacheConfig.share_key`)."""
    return (
        servers,
        *(choice.share_key() for choice in choices.values()),
        freeze(client_options),
        close_connections,
    )
