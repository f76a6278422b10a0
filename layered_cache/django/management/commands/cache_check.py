"""``manage.py cache_check [alias ...] [--json]``: check the servers of the configured caches.

For each ``CACHES`` entry (all of them, or the aliases given) whose ``BACKEND`` is
:class:`~layered_cache.django.MemcacheCache` or a subclass, every server is checked
on its own, as ``layered-cache check`` checks it
(:meth:`layered_cache.diagnostics.Probe.check`), with the transport, authenticator,
serializer and timeouts of that cache's configuration: connect, authenticate, ask
the version, then set, get and delete a value under a unique key. One line per
server::

    OK    default   127.0.0.1:11211  version 1.6.18  connect 0.41 ms  latency 0.12 ms
    FAIL  sessions  127.0.0.1:11212  refused: 127.0.0.1:11212 refused the connection
    SKIP  local     django.core.cache.backends.locmem.LocMemCache is not a layered_cache backend

With ``OPTIONS["discovery"]`` (LOCATION a configuration endpoint), the endpoint is
asked for the nodes first, as the client asks it, and the nodes it lists are checked::

    NODES default   mycluster.cfg...:11211  2 node(s) from mycluster.cfg...:11211 (version 12): ...
    OK    default   mycluster.0001...:11211  version 1.6.22  connect 0.52 ms  latency 0.20 ms

Caches of other backends are skipped with a note; a cache whose configuration is
wrong is reported (``FAIL  <alias>  config: ...``) without contacting anything.
Fail-silent mode (``ignore_exceptions``) does not hide failures here. Passwords
are never printed.

Exit status: 0 when every server passed, 1 when any server (or configuration)
failed, 2 for an unknown alias (nothing was contacted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import attrs
from django.core.cache import caches
from django.core.checks import Tags
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from layered_cache._addresses import parse_servers
from layered_cache.diagnostics import CheckResult, DiscoveryResult, Probe, quiet_library_log
from layered_cache.django.cache import MemcacheCache

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "Command"]

#: A server or a configuration failed the check.
EXIT_FAILED: Final = 1
#: An unknown alias: nothing was contacted.
EXIT_USAGE: Final = 2


@attrs.define
class _Cache:
    """One ``CACHES`` entry, as this command sees it."""

    alias: str
    backend: str
    servers: tuple[str, ...] = ()
    probe: Probe | None = None
    discovery: Any = None
    skipped: str | None = None
    error: str | None = None
    discovered: DiscoveryResult | None = None
    results: list[CheckResult] = attrs.field(factory=list)

    @property
    def ok(self) -> bool | None:
        if self.skipped is not None:
            return None
        discovered = self.discovered is None or self.discovered.ok
        return self.error is None and discovered and all(result.ok for result in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "ok": self.ok,
            "skipped": self.skipped,
            "error": self.error,
            "discovery": None if self.discovered is None else self.discovered.to_json(),
            "servers": [result.to_json() for result in self.results],
        }


def _backend_name(backend: object) -> str:
    if isinstance(backend, type):
        return f"{backend.__module__}.{backend.__qualname__}"
    return str(backend)


def _inspect(alias: str, params: dict[str, Any]) -> _Cache:
    """Find out whether ``alias`` is a layered_cache cache, and parse its configuration."""
    backend = params.get("BACKEND", "")
    name = _backend_name(backend)
    try:
        cls = import_string(backend) if isinstance(backend, str) else backend
    except ImportError as exc:
        return _Cache(alias, name, skipped=f"{name} cannot be imported ({exc})")
    if not (isinstance(cls, type) and issubclass(cls, MemcacheCache)):
        return _Cache(alias, name, skipped=f"{name} is not a layered_cache backend")
    try:
        cache = caches[alias]
        if not isinstance(cache, MemcacheCache):  # pragma: no cover - its class was checked
            return _Cache(alias, name, skipped=f"{name} is not a layered_cache backend")
        config = cache.config
    except ImproperlyConfigured as exc:
        # CacheConfigurationError names the option and never contains a password.
        check_id = getattr(exc, "check_id", None)
        return _Cache(alias, name, error=f"{exc} [{check_id}]" if check_id else str(exc))
    probe = Probe(
        transport=config.transport,
        auth=config.auth,
        serializer=config.serializer,
        # The client's own values: OPTIONS or the client's defaults.
        connect_timeout=cache.client.connect_timeout,
        timeout=cache.client.timeout,
        terms="settings",
    )
    return _Cache(alias, name, servers=config.servers, probe=probe, discovery=config.discovery)


def _check(
    cache: _Cache,
    report: Callable[[CheckResult], None],
    report_discovery: Callable[[DiscoveryResult], None] = lambda result: None,
) -> None:
    if cache.probe is None:
        return
    addresses = parse_servers(list(cache.servers))
    if cache.discovery is not None:
        # LOCATION is a configuration endpoint (or names): check the nodes behind it.
        cache.discovered = cache.probe.discover(addresses, cache.discovery)
        if cache.discovered is not None:
            report_discovery(cache.discovered)
            addresses = list(cache.discovered.nodes)
    for address in addresses:
        result = cache.probe.check(address)
        cache.results.append(result)
        report(result)


class Command(BaseCommand):
    """``manage.py cache_check``: connect to, authenticate with and round-trip a value on
    every server of every layered_cache cache (see the module docstring)."""

    help = (
        "Check the memcached servers of the layered_cache caches in CACHES (all of them, "
        "or the aliases given): connect, authenticate and round-trip a value on each "
        "server with the cache's own transport, auth, serializer and timeouts. One line "
        "per server: OK with version, connect time and latency, or FAIL with the kind of "
        "failure (dns, refused, timeout, tls, auth, protocol, connection) and the reason. "
        "Caches of other backends are skipped. Exit status: 0 all OK, 1 a server or a "
        "configuration failed, 2 unknown alias."
    )
    # Only the cache checks: a configuration mistake is reported with its id
    # (layered_cache.E0xx) before anything is contacted, and problems elsewhere
    # in the project do not stop the cache from being checked.
    requires_system_checks = (Tags.caches,)

    def add_arguments(self, parser: CommandParser) -> None:
        """``alias ...`` (default: every cache) and ``--json``."""
        parser.add_argument(
            "aliases",
            nargs="*",
            metavar="alias",
            help="CACHES aliases to check (default: all of them)",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="print {alias: {backend, ok, skipped, error, servers: [...]}} as JSON",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check the caches; raise :class:`~django.core.management.CommandError` on failure."""
        configured: dict[str, dict[str, Any]] = caches.settings
        given: list[str] = list(dict.fromkeys(options["aliases"]))
        unknown = [alias for alias in given if alias not in configured]
        if unknown:
            raise CommandError(
                f"unknown cache alias{'es' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(alias) for alias in unknown)}; CACHES has "
                f"{', '.join(repr(alias) for alias in configured)}",
                returncode=EXIT_USAGE,
            )
        aliases = given or list(configured)
        found = [_inspect(alias, dict(configured[alias])) for alias in aliases]
        as_json: bool = options["json"]
        with quiet_library_log():
            if as_json:
                for cache in found:
                    _check(cache, lambda result: None)
                self.stdout.write(json.dumps({c.alias: c.to_json() for c in found}, indent=2))
            else:
                self._check_and_print(found)
        self._conclude(found)

    def _check_and_print(self, found: list[_Cache]) -> None:
        alias_width = max(len(cache.alias) for cache in found)
        servers = [server for cache in found for server in cache.servers]
        server_width = max((len(server) for server in servers), default=0)
        for cache in found:
            alias = cache.alias.ljust(alias_width)
            if cache.skipped is not None:
                self.stdout.write(f"{self.style.WARNING('SKIP')}  {alias}  {cache.skipped}")
            elif cache.error is not None:
                self.stdout.write(f"{self.style.ERROR('FAIL')}  {alias}  config: {cache.error}")
            else:

                def report(result: CheckResult, alias: str = alias) -> None:
                    self.stdout.write(self._line(alias, result, server_width))
                    self.stdout.flush()

                def report_discovery(result: DiscoveryResult, alias: str = alias) -> None:
                    status = self.style.SUCCESS("NODES") if result.ok else self.style.ERROR("FAIL")
                    seeds = ", ".join(result.seeds)
                    self.stdout.write(f"{status}  {alias}  {seeds}  {result.summary()}")

                _check(cache, report, report_discovery)

    def _line(self, alias: str, result: CheckResult, server_width: int) -> str:
        status = self.style.SUCCESS("OK  ") if result.ok else self.style.ERROR("FAIL")
        return f"{status}  {alias}  {result.server.ljust(server_width)}  {result.summary()}"

    def _conclude(self, found: list[_Cache]) -> None:
        checked = [cache for cache in found if cache.skipped is None]
        if not checked:
            self.stderr.write(
                "No cache uses layered_cache.django.MemcacheCache: nothing was checked."
            )
            return
        results = [result for cache in checked for result in cache.results]
        failed_servers = sum(1 for result in results if not result.ok)
        failed_configs = [cache.alias for cache in checked if cache.error is not None]
        undiscovered = [
            cache.alias for cache in checked if cache.discovered and not cache.discovered.ok
        ]
        problems = []
        if undiscovered:
            names = ", ".join(repr(alias) for alias in undiscovered)
            problems.append(f"discovery found no node list for {names}")
        if failed_servers:
            problems.append(f"{failed_servers} of {len(results)} server(s) failed the check")
        if failed_configs:
            names = ", ".join(repr(alias) for alias in failed_configs)
            problems.append(f"the configuration of {names} is wrong")
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_FAILED)
