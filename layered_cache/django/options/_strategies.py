"""Choosing and building the strategies: ``OPTIONS["transport"]``, ``["auth"]``, ``["serializer"]``,
``["discovery"]``.

Each takes an alias (:data:`TRANSPORTS`, :data:`AUTHENTICATORS`,
:data:`SERIALIZERS`, :data:`DISCOVERIES`), a dotted path to a class, factory or instance, a ready
instance, or a dict ``{"class": <alias, path or class>, **arguments}``. A
strategy is first *chosen* (:class:`Choice`: what it is and which arguments it
takes, nothing built), then given its arguments by the parser, then built.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Set
from types import MappingProxyType
from typing import Any, Final

import attrs
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth
from layered_cache.discovery import ALIASES as DISCOVERY_ALIASES
from layered_cache.django.options._errors import (
    E_STRATEGY,
    E_STRATEGY_ARGUMENTS,
    E_UNKNOWN_OPTION,
    CacheConfigurationError,
    is_empty,
    quoted_names,
)
from layered_cache.serialization import JSONSerializer, PickleSerializer, SignedPickleSerializer
from layered_cache.transport import Keepalive, TCPTransport, TLSTransport

__all__ = [
    "AUTHENTICATORS",
    "DISCOVERIES",
    "SERIALIZERS",
    "STRATEGY_OPTIONS",
    "TRANSPORTS",
    "Choice",
    "alias_taking",
    "build_strategies",
    "choose_strategies",
    "complete_arguments",
    "freeze",
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

#: ``OPTIONS["discovery"]`` aliases; LOCATION is then the configuration endpoint
#: (``"elasticache"``, ``"memorystore"``) or the names to resolve (``"dns"``).
DISCOVERIES: Final[Mapping[str, Callable[..., Any]]] = DISCOVERY_ALIASES


@attrs.frozen
class _Family:
    """One kind of strategy: its ``OPTIONS`` key, aliases, contract and default."""

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
_DISCOVERY = _Family("discovery", "discovery strategy", DISCOVERIES, ("lookup",), "static")
_FAMILIES: Final = (_TRANSPORT, _AUTH, _SERIALIZER, _DISCOVERY)
#: The ``OPTIONS`` keys that name a strategy, in the order they are handled.
STRATEGY_OPTIONS: Final = tuple(family.option for family in _FAMILIES)


@attrs.define
class Choice:
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
        """``transport 'tls' (TLSTransport)``: the strategy, for messages."""
        return f"{self.family.option} {self.label}"

    def arguments_text(self) -> str:
        """The arguments it takes, for messages."""
        if self.factory is None:
            return "no options (it is an instance)"
        if self.accepted is None:
            return f'its arguments inside OPTIONS["{self.family.option}"] only'
        return quoted_names(self.accepted) if self.accepted else "no options"

    def check_arguments(self) -> None:
        """Refuse arguments its class does not name (before anything is built)."""
        extra = set(self.kwargs) - self.accepted if self.accepted is not None else set()
        if extra:
            raise CacheConfigurationError(
                f'OPTIONS["{self.family.option}"]: {self.describe()} does not take '
                f"{quoted_names(extra)}; it takes {self.arguments_text()}",
                check_id=E_UNKNOWN_OPTION,
            )

    def share_key(self) -> Hashable:
        """Equal for two choices that build interchangeable strategies (see :func:`freeze`)."""
        if self.factory is None:
            return ("instance", _Identity(self.instance))
        return ("made", _Identity(self.factory), freeze(self.kwargs))


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
def _choose(family: _Family, spec: object) -> Choice:
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
                f"instance; it cannot take the arguments {quoted_names(kwargs)}",
                check_id=E_STRATEGY_ARGUMENTS,
            )
        return Choice(family, label, instance=target, accepted=frozenset())
    if callable(target):
        accepted, required = _signature(target)
        return Choice(
            family, label, factory=target, kwargs=kwargs, accepted=accepted, required=required
        )
    methods = " and ".join(f"{method}()" for method in family.methods)
    raise CacheConfigurationError(
        f'OPTIONS["{family.option}"]: {label} is not {family.a_noun}: it must be a class '
        f"or factory, or an object with {methods}. Use {family.allowed()}",
        check_id=E_STRATEGY,
    )


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
def _django_signing_keys(choice: Choice) -> dict[str, Any]:
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
def _build(choice: Choice, secrets: list[object]) -> Any:
    if choice.factory is None:
        return choice.instance
    missing = choice.required - choice.kwargs.keys()
    if missing:
        raise CacheConfigurationError(
            f"{choice.describe()} needs the option(s) {quoted_names(missing)}",
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


def choose_strategies(specs: Mapping[str, object], *, credentials: bool) -> dict[str, Choice]:
    """Classify each ``OPTIONS[...]`` strategy spec; with credentials and no auth: MemCachier."""
    choices = {family.option: _choose(family, specs.get(family.option)) for family in _FAMILIES}
    if is_empty(specs.get(_AUTH.option)) and credentials:
        choices[_AUTH.option] = _choose(_AUTH, "memcachier")
    return choices


def alias_taking(name: str) -> str | None:
    """A hint when a strategy that was not chosen takes ``name`` (ca_file -> "tls")."""
    for family in _FAMILIES:
        for alias, factory in family.aliases.items():
            accepted, _ = _signature(factory)
            if accepted and name in accepted:
                option = family.option
                return f'it is an option of {option} {alias!r}: add "{option}": "{alias}"'
    return None


def complete_arguments(choices: Mapping[str, Choice]) -> None:
    """Fill in the arguments that come from elsewhere or need converting.

    A signing serializer without a ``key`` signs with Django's ``SECRET_KEY``;
    a ``keepalive`` dict becomes a :class:`~layered_cache.transport.Keepalive`.
    """
    serializer = choices[_SERIALIZER.option]
    if serializer.factory is SignedPickleSerializer and "key" not in serializer.kwargs:
        serializer.kwargs.update(_django_signing_keys(serializer))
    transport = choices[_TRANSPORT.option]
    if isinstance(transport.kwargs.get("keepalive"), Mapping):
        try:
            transport.kwargs["keepalive"] = Keepalive(**transport.kwargs["keepalive"])
        except (TypeError, ValueError) as exc:
            raise CacheConfigurationError(
                f'OPTIONS["keepalive"]: {exc}; give idle, interval and count in seconds',
                check_id=E_STRATEGY_ARGUMENTS,
            ) from exc


@sensitive_variables()
def build_strategies(choices: Mapping[str, Choice]) -> dict[str, Any]:
    """Build every chosen strategy; a refusal never repeats a secret argument."""
    secrets = [value for choice in choices.values() for value in _secret_values(choice.kwargs)]
    return {option: _build(choice, secrets) for option, choice in choices.items()}


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


def freeze(value: object) -> Hashable:
    """A hashable stand-in for an option value: by value for plain data, else by identity."""
    if isinstance(value, _PLAIN):
        return (type(value).__name__, value)
    if isinstance(value, os.PathLike):
        return ("path", os.fspath(value))
    if isinstance(value, Mapping):
        items = sorted(((repr(k), freeze(v)) for k, v in value.items()), key=lambda kv: kv[0])
        return ("mapping", tuple(items))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(freeze(item) for item in value))
    if isinstance(value, Set):
        return ("set", frozenset(freeze(item) for item in value))
    return _Identity(value)
