"""The error every parsing step raises, its check ids, and the wording its messages share."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured

from layered_cache.errors import ConfigurationError

__all__ = [
    "E_CREDENTIALS",
    "E_SERVERS",
    "E_STRATEGY",
    "E_STRATEGY_ARGUMENTS",
    "E_UNKNOWN_OPTION",
    "E_VALUE",
    "CacheConfigurationError",
    "is_empty",
    "quoted_names",
]

# Check ids, shared by the exceptions raised at cache creation and the system checks.
E_STRATEGY = "layered_cache.E001"
E_UNKNOWN_OPTION = "layered_cache.E002"
E_STRATEGY_ARGUMENTS = "layered_cache.E003"
E_CREDENTIALS = "layered_cache.E004"
E_SERVERS = "layered_cache.E005"
E_VALUE = "layered_cache.E006"


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


def quoted_names(names: Iterable[str]) -> str:
    """``'a', 'b'``: option names for a message, sorted."""
    return ", ".join(repr(name) for name in sorted(names))


def is_empty(value: object) -> bool:
    """Whether a setting counts as not given: None, ``""``, or a list of only those."""
    if value is None or value == "":
        return True
    if isinstance(value, list | tuple):
        return all(item in ("", None) for item in value)
    return False
