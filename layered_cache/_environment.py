"""Servers and credentials from the environment: the rules the Django backend and the CLI share.

Two families of variables, in order: ``MEMCACHE_*`` (memcachier-django-ascii's
names) and ``MEMCACHIER_*`` (Heroku's MemCachier add-on), each with ``_SERVERS``,
``_USERNAME`` and ``_PASSWORD``. Two rules keep credentials where they belong:

- The first family with any of its three variables set (and not empty) is the
  only one read: a ``MEMCACHIER_PASSWORD`` never reaches a ``MEMCACHE_SERVERS``
  server.
- A family's credentials go only to that family's servers. When the servers are
  named elsewhere (``LOCATION``, command-line arguments), credentials exported in
  a shell are not used unless the configuration asks for it explicitly: a
  developer's ``MEMCACHIER_PASSWORD`` sent in a MemCachier handshake to a local
  memcached would simply be *stored* there, readable by anyone with
  ``get <username>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["ENV_FAMILIES", "ENV_VARIABLES", "Environment", "environment_values"]

#: The variable families, in the order they are looked for.
ENV_FAMILIES: Final = ("MEMCACHE", "MEMCACHIER")
#: Every variable either family reads.
ENV_VARIABLES: Final = tuple(
    f"{family}_{field}" for family in ENV_FAMILIES for field in ("SERVERS", "USERNAME", "PASSWORD")
)


def environment_values() -> tuple[str | None, ...]:
    """The values of :data:`ENV_VARIABLES` in :data:`os.environ` now (None: unset).

    What a configuration read from the environment depends on: equal tuples,
    equal configurations.
    """
    get = os.environ.get
    return tuple([get(name) for name in ENV_VARIABLES])


@attrs.frozen
class Environment:
    """The one environment family in use; empty strings count as unset.

    Attributes:
        family: ``"MEMCACHE"``, ``"MEMCACHIER"``, or ``""`` when neither is set.
        servers: ``<family>_SERVERS``, stripped.
        username: ``<family>_USERNAME``, stripped.
        password: ``<family>_PASSWORD`` as it is (a space may belong to a password).
    """

    family: str = ""
    servers: str = ""
    username: str = ""
    password: str = attrs.field(default="", repr=False)

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Environment:
        """The first family of :data:`ENV_FAMILIES` with any value set in ``environ``."""
        for family in ENV_FAMILIES:
            found = cls(
                family,
                servers=environ.get(f"{family}_SERVERS", "").strip(),
                username=environ.get(f"{family}_USERNAME", "").strip(),
                password=environ.get(f"{family}_PASSWORD", ""),
            )
            if found.servers or found.username or found.password:
                return found
        return cls()

    def variable(self, field: str) -> str:
        """The variable ``field`` (``"SERVERS"``, ...) is read from, or the choices if unset."""
        if self.family:
            return f"{self.family}_{field}"
        return " or ".join(f"{family}_{field}" for family in ENV_FAMILIES)

    def credential_variables(self) -> list[str]:
        """The credential variables that are set, e.g. ``["MEMCACHIER_USERNAME", ...]``."""
        return [
            self.variable(field)
            for field, value in (("USERNAME", self.username), ("PASSWORD", self.password))
            if value
        ]

    def unread_servers_note(self, environ: Mapping[str, str]) -> str:
        """Why ``MEMCACHIER_SERVERS`` was not read although it is set, or ``""``."""
        if self.family == "MEMCACHE" and environ.get("MEMCACHIER_SERVERS", "").strip():
            return " (MEMCACHIER_SERVERS is not read because MEMCACHE_* variables are set)"
        return ""

    def credentials_refused(self, servers_from: str, how_to_allow: str) -> str:
        """Explain that this family's credentials are not sent to servers from ``servers_from``.

        Args:
            servers_from: where the servers came from, e.g. ``"LOCATION"``.
            how_to_allow: the explicit setting that sends them anyway.

        Returns:
            One sentence naming the variables (never their values), or ``""``
            when no credential variable is set.
        """
        names = self.credential_variables()
        if not names:
            return ""
        return (
            f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} set but not used: "
            f"the servers come from {servers_from}, not {self.variable('SERVERS')}, and "
            "credentials from the environment are only sent to the environment's own "
            "servers (a memcached without MemCachier's authentication would store the "
            f"password as a value). To send them to these servers, {how_to_allow}"
        )
