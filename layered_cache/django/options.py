"""Turning one ``CACHES`` entry into typed strategy objects and client options.

This is the only place that reads ``OPTIONS``, ``USERNAME``/``PASSWORD`` and the
environment. It produces a :class:`CacheConfig` whose transport, authenticator and
serializer are ordinary :mod:`layered_cache` strategy objects: strategies never see
Django or the raw ``OPTIONS`` dict.

``OPTIONS["transport"]``, ``OPTIONS["auth"]`` and ``OPTIONS["serializer"]`` each take
an alias (:data:`TRANSPORTS`, :data:`AUTHENTICATORS`, :data:`SERIALIZERS`), a dotted
path to a class, factory or instance, a ready instance, or a dict
``{"class": <alias, path or class>, **arguments}``. The other keys of ``OPTIONS``
are, in this order: the client's own options (:data:`CLIENT_OPTIONS`), the
backend's (:data:`BACKEND_OPTIONS`), the credentials (``username``,
``password``), and otherwise an argument of exactly one chosen strategy, passed
to it when it is built (``ca_file`` to ``"tls"``, ``sort_keys`` to ``"json"``,
...). A key that fits none of these, or more than one strategy, is an error.
With no ``auth`` named, credentials (from anywhere) mean ``"memcachier"``.

Where servers and credentials come from, first match wins (settings, then
``MEMCACHE_*``, then ``MEMCACHIER_*``):

- servers: ``LOCATION``, then ``MEMCACHE_SERVERS``, then ``MEMCACHIER_SERVERS``;
- username: ``OPTIONS["username"]`` or ``USERNAME``, then ``MEMCACHE_USERNAME``,
  then ``MEMCACHIER_USERNAME``;
- password: ``OPTIONS["password"]`` or ``PASSWORD``, then ``MEMCACHE_PASSWORD``,
  then ``MEMCACHIER_PASSWORD``.

The environment is read as one family (see :mod:`layered_cache._environment`):
``MEMCACHE_*`` when any of ``MEMCACHE_SERVERS``, ``MEMCACHE_USERNAME`` or
``MEMCACHE_PASSWORD`` is set (and not empty), otherwise ``MEMCACHIER_*``. The two
families are never mixed, and credentials from the environment only go to servers
from the same environment: with ``LOCATION`` set, ``MEMCACHIER_USERNAME`` and
``MEMCACHIER_PASSWORD`` are not used (and ``manage.py check`` says so) unless the
settings ask for them, by naming an ``auth`` or with
``OPTIONS["environment_credentials"] = True``. Empty strings count as unset.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Set
from types import MappingProxyType
from typing import Any, Final

import attrs
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from layered_cache._addresses import hash_name, parse_servers
from layered_cache._environment import Environment
from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth
from layered_cache.errors import ConfigurationError
from layered_cache.serialization import JSONSerializer, PickleSerializer, SignedPickleSerializer
from layered_cache.sync.client import Client
from layered_cache.transport import Keepalive, TCPTransport, TLSTransport, format_address

__all__ = [
    "AUTHENTICATORS",
    "BACKEND_OPTIONS",
    "CLIENT_OPTIONS",
    "SERIALIZERS",
    "TRANSPORTS",
    "CacheConfig",
    "CacheConfigurationError",
    "parse_cache_config",
]

#: ``OPTIONS["transport"]`` aliases.
TRANSPORTS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {"tcp": TCPTransport, "tls": TLSTransport}
)
#: ``OPTIONS["auth"]`` aliases.
AUTHENTICATORS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {"none": NoAuth, "memcachier": MemCachierAuth, "ascii": AsciiAuth}
)
#: ``OPTIONS["serializer"]`` aliases. ``"signed_pickle"`` signs with Django's
#: ``SECRET_KEY`` (and accepts ``SECRET_KEY_FALLBACKS``) unless given a ``key``.
SERIALIZERS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {"pickle": PickleSerializer, "json": JSONSerializer, "signed_pickle": SignedPickleSerializer}
)

#: OPTIONS passed to :class:`layered_cache.Client` unchanged: every keyword
#: argument of the client except the strategies (``connect_timeout``, ``timeout``,
#: ``retry_attempts``, ``retry_timeout``, ``dead_timeout``, ``max_pool_size``,
#: ``pool_idle_timeout``, ``ignore_exceptions``, ...).
CLIENT_OPTIONS: Final = tuple(
    name
    for name, parameter in inspect.signature(Client).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY and name not in ("transport", "auth", "serializer")
)
#: OPTIONS the Django backend itself reads.
BACKEND_OPTIONS: Final = ("close_connections", "environment_credentials")

# Check ids, shared by the exceptions raised at cache creation and the system checks.
E_STRATEGY = "layered_cache.E001"
E_UNKNOWN_OPTION = "layered_cache.E002"
E_STRATEGY_ARGUMENTS = "layered_cache.E003"
E_CREDENTIALS = "layered_cache.E004"
E_SERVERS = "layered_cache.E005"
E_VALUE = "layered_cache.E006"

_SEPARATORS: Final = re.compile(r"[,;\s]+")

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


class CacheConfigurationError(ConfigurationError, ImproperlyConfigured):
    """A ``CACHES`` entry for :class:`~layered_cache.django.MemcacheCache` is wrong.

    It is Django's :class:`~django.core.exceptions.ImproperlyConfigured` and
    :class:`layered_cache.ConfigurationError` at once. The message names the
    option and what it accepts; it never contains a password.

    Attributes:
        check_id: the id the system check reports for the same problem,
            e.g. ``"layered_cache.E001"``.
    """

    def __init__(self, message: str, *, check_id: str) -> None:
        super().__init__(message)
        self.check_id = check_id


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
        client_options: the :class:`~layered_cache.Client` keyword arguments
            given in ``OPTIONS`` (the client's defaults apply to the rest).
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
            Backends with equal keys share one client and its connections.
    """

    servers: tuple[str, ...]
    locations: tuple[str, ...]
    transport: Any
    auth: Any
    serializer: Any
    client_options: Mapping[str, Any] = attrs.field(factory=dict)
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
        try:
            return Client(
                list(self.servers),
                transport=self.transport,
                auth=self.auth,
                serializer=self.serializer,
                **self.client_options,
            )
        except ConfigurationError as exc:
            raise CacheConfigurationError(f"OPTIONS: {exc}", check_id=E_VALUE) from exc


# -- strategies -------------------------------------------------------------------------


@attrs.frozen
class _Family:
    option: str
    noun: str
    aliases: Mapping[str, Callable[..., Any]]
    methods: tuple[str, ...]
    default: str

    @property
    def a_noun(self) -> str:
        return f"{'an' if self.noun[0] in 'aeiou' else 'a'} {self.noun}"

    def allowed(self) -> str:
        names = ", ".join(repr(alias) for alias in self.aliases)
        return (
            f"{names}, a dotted path to {self.a_noun} class, {self.a_noun} instance, "
            f'or {{"class": <alias or path>, **arguments}}'
        )


_TRANSPORT = _Family("transport", "transport", TRANSPORTS, ("connect",), "tcp")
_AUTH = _Family("auth", "authenticator", AUTHENTICATORS, ("handshake",), "none")
_SERIALIZER = _Family(
    "serializer", "serializer", SERIALIZERS, ("serialize", "deserialize"), "pickle"
)
_FAMILIES: Final = (_TRANSPORT, _AUTH, _SERIALIZER)


@attrs.define
class _Choice:
    """A strategy as chosen in OPTIONS, not built yet."""

    family: _Family
    label: str
    factory: Callable[..., Any] | None = None
    instance: Any = None
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    accepted: frozenset[str] | None = frozenset()
    required: frozenset[str] = frozenset()

    def takes(self, name: str) -> bool:
        """Whether ``name`` is a keyword this strategy's class names explicitly."""
        return self.factory is not None and self.accepted is not None and name in self.accepted

    def describe(self) -> str:
        return f"{self.family.option} {self.label}"


def _has_methods(obj: object, methods: Iterable[str]) -> bool:
    return not isinstance(obj, type) and all(
        callable(getattr(obj, method, None)) for method in methods
    )


def _signature(factory: Callable[..., Any]) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The keyword arguments ``factory`` accepts (None: any) and those it requires."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None, frozenset()
    accepted: set[str] = set()
    required: set[str] = set()
    any_keyword = False
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            any_keyword = True
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            accepted.add(parameter.name)
            if parameter.default is parameter.empty:
                required.add(parameter.name)
    return (None if any_keyword else frozenset(accepted)), frozenset(required)


def _name_of(obj: object) -> str:
    kind = obj if isinstance(obj, type) else type(obj)
    name = getattr(obj, "__qualname__", None) if callable(obj) else None
    return name or kind.__qualname__


def _import(family: _Family, path: str) -> object:
    try:
        return import_string(path)
    except ImportError as exc:
        raise CacheConfigurationError(
            f'OPTIONS["{family.option}"]: cannot import {path!r} ({exc}). Use {family.allowed()}',
            check_id=E_STRATEGY,
        ) from exc


# Other words for an alias, offered as "did you mean ...?" (never accepted silently).
_SYNONYMS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"transport": {"ssl": "tls", "plain": "tcp"}}
)


def _lookup(family: _Family, name: str) -> tuple[object, str]:
    """Resolve an alias or a dotted path to an object, and a label for messages."""
    text = name.strip()
    if "." in text:
        return _import(family, text), repr(text)
    factory = family.aliases.get(text.lower())
    if factory is None:
        synonym = _SYNONYMS.get(family.option, {}).get(text.lower())
        close = [synonym] if synonym else []
        close = close or difflib.get_close_matches(text.lower(), list(family.aliases), n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise CacheConfigurationError(
            f'OPTIONS["{family.option}"]: unknown {family.noun} {text!r}{guess}. '
            f"Use {family.allowed()}",
            check_id=E_STRATEGY,
        )
    return factory, f"{text.lower()!r} ({_name_of(factory)})"


@sensitive_variables()
def _choose(family: _Family, spec: object) -> _Choice:
    """Classify ``OPTIONS[family.option]`` without building anything."""
    kwargs: dict[str, Any] = {}
    if spec is None or spec == "":
        target, label = _lookup(family, family.default)
    elif isinstance(spec, str):
        target, label = _lookup(family, spec)
    elif isinstance(spec, Mapping):
        kwargs = dict(spec)
        if "class" not in kwargs:
            raise CacheConfigurationError(
                f'OPTIONS["{family.option}"]: a dict needs a "class" key naming the '
                f"{family.noun}. Use {family.allowed()}",
                check_id=E_STRATEGY,
            )
        cls = kwargs.pop("class")
        bad = [key for key in kwargs if not isinstance(key, str)]
        if bad:
            raise CacheConfigurationError(
                f'OPTIONS["{family.option}"]: argument names must be strings',
                check_id=E_STRATEGY,
            )
        if isinstance(cls, str):
            target, label = _lookup(family, cls)
        else:
            target, label = cls, _name_of(cls)
    else:
        target, label = spec, _name_of(spec)

    if _has_methods(target, family.methods):
        if kwargs:
            raise CacheConfigurationError(
                f'OPTIONS["{family.option}"]: {label} is already {family.a_noun} '
                f"instance; it cannot take the arguments {_names(kwargs)}",
                check_id=E_STRATEGY_ARGUMENTS,
            )
        return _Choice(family, label, instance=target, accepted=frozenset())
    if callable(target):
        accepted, required = _signature(target)
        return _Choice(
            family, label, factory=target, kwargs=kwargs, accepted=accepted, required=required
        )
    methods = " and ".join(f"{method}()" for method in family.methods)
    raise CacheConfigurationError(
        f'OPTIONS["{family.option}"]: {label} is not {family.a_noun}: it must be a class '
        f"or factory, or an object with {methods}. Use {family.allowed()}",
        check_id=E_STRATEGY,
    )


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names))


def _redact(text: str, secrets: Iterable[object]) -> tuple[str, bool]:
    found = False
    for secret in secrets:
        if isinstance(secret, str | bytes) and secret:
            # The repr first: it contains the str.
            for shown, mask in ((repr(secret), "'***'"), (str(secret), "***")):
                if shown in text:
                    text = text.replace(shown, mask)
                    found = True
    return text, found


@sensitive_variables()
def _secret_values(kwargs: Mapping[str, Any]) -> Iterable[object]:
    """The values of arguments that may be secrets, to keep out of messages."""
    for name, value in kwargs.items():
        lowered = name.lower()
        if any(word in lowered for word in ("pass", "secret", "token")):
            yield value
        elif lowered in ("key", "keys", "fallback_keys") or lowered.endswith("_key"):
            values = value if isinstance(value, list | tuple) else [value]
            # Short values (AsciiAuth's key "auth") are names, not secrets.
            yield from (item for item in values if isinstance(item, str | bytes) and len(item) >= 8)


@sensitive_variables()
def _django_signing_keys(choice: _Choice) -> dict[str, Any]:
    """``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` as a signing serializer's keys."""
    from django.conf import settings  # noqa: PLC0415 - read when a cache is created

    try:
        keys = {"key": settings.SECRET_KEY}
        if "fallback_keys" not in choice.kwargs:
            keys["fallback_keys"] = tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    except ImproperlyConfigured as exc:
        raise CacheConfigurationError(
            f"{choice.describe()} signs with SECRET_KEY, but {exc}; set SECRET_KEY or give "
            'the serializer a "key"',
            check_id=E_STRATEGY_ARGUMENTS,
        ) from None
    return keys


@sensitive_variables()
def _build(choice: _Choice, secrets: list[object]) -> Any:
    if choice.factory is None:
        return choice.instance
    missing = choice.required - choice.kwargs.keys()
    if missing:
        raise CacheConfigurationError(
            f"{choice.describe()} needs the option(s) {_names(missing)}",
            check_id=E_STRATEGY_ARGUMENTS,
        )
    try:
        built = choice.factory(**choice.kwargs)
    except Exception as exc:
        message, leaked = _redact(str(exc), secrets)
        error = CacheConfigurationError(
            f"{choice.describe()} refused its options: {message}",
            check_id=E_STRATEGY_ARGUMENTS,
        )
        if leaked:
            raise error from None
        raise error from exc
    if not _has_methods(built, choice.family.methods):
        methods = " and ".join(f"{method}()" for method in choice.family.methods)
        raise CacheConfigurationError(
            f'OPTIONS["{choice.family.option}"]: {choice.label} made a '
            f"{type(built).__qualname__}, which has no {methods}",
            check_id=E_STRATEGY,
        )
    return built


class _Identity:
    """Compares (and hashes) by identity, keeping its object alive."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


_PLAIN = (type(None), bool, int, float, str, bytes)


def _freeze(value: object) -> Hashable:
    """A hashable stand-in for an option value: by value for plain data, else by identity."""
    if isinstance(value, _PLAIN):
        return (type(value).__name__, value)
    if isinstance(value, os.PathLike):
        return ("path", os.fspath(value))
    if isinstance(value, Mapping):
        items = sorted(((repr(k), _freeze(v)) for k, v in value.items()), key=lambda kv: kv[0])
        return ("mapping", tuple(items))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_freeze(item) for item in value))
    if isinstance(value, Set):
        return ("set", frozenset(_freeze(item) for item in value))
    return _Identity(value)


def _choice_key(choice: _Choice) -> Hashable:
    if choice.factory is None:
        return ("instance", _Identity(choice.instance))
    return ("made", _Identity(choice.factory), _freeze(choice.kwargs))


# -- servers and credentials ------------------------------------------------------------


def _server_list(location: object, source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(normalized host:port strings, the servers as written)`` for LOCATION or a variable."""
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
    return tuple(format_address(address) for address in addresses), tuple(written)


def _written(item: object) -> str:
    if isinstance(item, tuple) and len(item) == 2:
        return format_address((str(item[0]), int(item[1])))
    return str(item)


def _is_empty(value: object) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, list | tuple):
        return all(item in ("", None) for item in value)
    return False


@sensitive_variables()
def _setting_credential(
    options: dict[str, Any], params: Mapping[str, Any], name: str
) -> tuple[Any, str]:
    """``OPTIONS[name]`` or ``params[NAME]``; both set is an error."""
    in_options = options.pop(name, None)
    in_params = params.get(name.upper())
    if not _is_empty(in_options) and not _is_empty(in_params):
        raise CacheConfigurationError(
            f'the {name} is given twice, as OPTIONS["{name}"] and as {name.upper()}; keep one',
            check_id=E_UNKNOWN_OPTION,
        )
    if not _is_empty(in_options):
        return in_options, f'OPTIONS["{name}"]'
    if not _is_empty(in_params):
        return in_params, name.upper()
    return None, ""


# -- the parser -------------------------------------------------------------------------


def _other_alias_takes(name: str) -> str | None:
    """A hint when a strategy that was not chosen takes ``name`` (ca_file -> "tls")."""
    for family in _FAMILIES:
        for alias, factory in family.aliases.items():
            accepted, _ = _signature(factory)
            if accepted and name in accepted:
                option = family.option
                return f'it is an option of {option} {alias!r}: add "{option}": "{alias}"'
    return None


def _unknown_option(name: str, choices: list[_Choice]) -> CacheConfigurationError:
    known = {*CLIENT_OPTIONS, *BACKEND_OPTIONS, "transport", "auth", "serializer"}
    known.update({"username", "password"})
    for choice in choices:
        if choice.accepted:
            known.update(choice.accepted)
    hint = _MIGRATION_HINTS.get(name) or _other_alias_takes(name)
    if hint is None:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
    takers = [f"{choice.describe()} takes {_takes(choice)}" for choice in choices]
    return CacheConfigurationError(
        f'OPTIONS["{name}"] is not an option of this cache'
        f"{f' ({hint})' if hint else ''}. "
        f"The backend takes {_names([*CLIENT_OPTIONS, *BACKEND_OPTIONS])}; "
        f"{'; '.join(takers)}",
        check_id=E_UNKNOWN_OPTION,
    )


def _takes(choice: _Choice) -> str:
    if choice.factory is None:
        return "no options (it is an instance)"
    if choice.accepted is None:
        return f'its arguments inside OPTIONS["{choice.family.option}"] only'
    return _names(choice.accepted) if choice.accepted else "no options"


def _credential_help(name: str, env: Environment, unused_environment: str) -> str:
    """Where a missing credential may go; only the environment family in use, if any."""
    variables = env.variable(name.upper()).replace(" or ", " / ")
    where = f'set OPTIONS["{name}"] (or {name.upper()}), or {variables} in the environment'
    return f"{where}. {unused_environment}" if unused_environment else where


@sensitive_variables()
def parse_cache_config(  # noqa: PLR0912, PLR0915 - one pass over the options, in order
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
    raw = params.get("OPTIONS") or {}
    if not isinstance(raw, Mapping):
        raise CacheConfigurationError(
            f"OPTIONS must be a dict, not {type(raw).__name__}", check_id=E_VALUE
        )
    options: dict[str, Any] = dict(raw)
    for name in options:
        if not isinstance(name, str):
            raise CacheConfigurationError(
                f"OPTIONS keys must be strings, not {type(name).__name__}",
                check_id=E_UNKNOWN_OPTION,
            )

    specs = {family.option: options.pop(family.option, None) for family in _FAMILIES}
    client_options: dict[str, Any] = {
        name: options.pop(name) for name in CLIENT_OPTIONS if name in options
    }
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
    username, username_source = _setting_credential(options, params, "username")
    password, password_source = _setting_credential(options, params, "password")
    settings_credentials = {
        name: (value, source)
        for name, value, source in (
            ("username", username, username_source),
            ("password", password, password_source),
        )
        if source
    }

    # Servers: LOCATION, then the environment family.
    env = Environment.read(environ)
    sources: dict[str, str] = {}
    if not _is_empty(location):
        servers, locations = _server_list(location, "LOCATION")
        sources["servers"] = "LOCATION"
    elif env.servers:
        source = env.variable("SERVERS")
        servers, locations = _server_list(env.servers, source)
        sources["servers"] = source
    else:
        raise CacheConfigurationError(
            "no memcached server: set LOCATION (e.g. '127.0.0.1:11211'), or "
            "MEMCACHE_SERVERS or MEMCACHIER_SERVERS in the environment"
            f"{env.unread_servers_note(environ)}",
            check_id=E_SERVERS,
        )

    # Credentials: the settings, then the same environment family, which is only
    # sent to its own servers unless the settings ask for it: by naming an auth
    # (and leaving its credentials to the environment) or environment_credentials.
    env_credentials = {
        name: (value, env.variable(name.upper()))
        for name, value in (("username", env.username), ("password", env.password))
        if value and name not in settings_credentials
    }
    asked = environment_credentials or (
        environment_credentials is None and not _is_empty(specs["auth"])
    )
    unused_environment = ""
    if sources["servers"] == "LOCATION" and not asked:
        if env_credentials and environment_credentials is None:
            unused_environment = Environment(
                env.family,
                username=env.username if "username" in env_credentials else "",
                password=env.password if "password" in env_credentials else "",
            ).credentials_refused(
                "LOCATION",
                'name the auth that uses them (e.g. "auth": "memcachier") or set '
                'OPTIONS["environment_credentials"] = True.',
            )
        env_credentials = {}
    credentials = {**env_credentials, **settings_credentials}

    choices = {family.option: _choose(family, specs[family.option]) for family in _FAMILIES}
    if _is_empty(specs["auth"]) and credentials:
        choices["auth"] = _choose(_AUTH, "memcachier")
    auth = choices["auth"]

    # Flat strategy arguments go to the one chosen strategy that names them.
    ordered = [choices[family.option] for family in _FAMILIES]
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
        extra = set(choice.kwargs) - choice.accepted if choice.accepted is not None else set()
        if extra:
            raise CacheConfigurationError(
                f'OPTIONS["{choice.family.option}"]: {choice.describe()} does not take '
                f"{_names(extra)}; it takes {_takes(choice)}",
                check_id=E_UNKNOWN_OPTION,
            )

    # Credentials go to the authenticator, if it takes them.
    for name, (value, source) in credentials.items():
        from_settings = name in settings_credentials
        if not auth.takes(name):
            if from_settings:
                raise CacheConfigurationError(
                    f"{source} is set, but {auth.describe()} does not take a {name} "
                    f"(it takes {_takes(auth)}). Remove it, or choose an auth that uses it, "
                    'e.g. "auth": "memcachier"',
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

    serializer = choices["serializer"]
    if serializer.factory is SignedPickleSerializer and "key" not in serializer.kwargs:
        serializer.kwargs.update(_django_signing_keys(serializer))

    if isinstance(choices["transport"].kwargs.get("keepalive"), Mapping):
        try:
            choices["transport"].kwargs["keepalive"] = Keepalive(
                **choices["transport"].kwargs["keepalive"]
            )
        except (TypeError, ValueError) as exc:
            raise CacheConfigurationError(
                f'OPTIONS["keepalive"]: {exc}; give idle, interval and count in seconds',
                check_id=E_STRATEGY_ARGUMENTS,
            ) from exc

    secrets = [value for choice in ordered for value in _secret_values(choice.kwargs)]
    built = {option: _build(choice, secrets) for option, choice in choices.items()}
    if unused_environment:
        unused_environment += " False keeps them unused without this warning."
    config = CacheConfig(
        servers=servers,
        locations=locations,
        transport=built["transport"],
        auth=built["auth"],
        serializer=built["serializer"],
        client_options=client_options,
        close_connections=close_connections,
        sources=sources,
        unused_environment=unused_environment,
        share_key=(
            servers,
            *(_choice_key(choice) for choice in ordered),
            _freeze(client_options),
            close_connections,
        ),
    )
    # Client options are checked by the client itself; building one does no I/O.
    config.make_client().close()
    return config
