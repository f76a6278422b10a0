"""Diagnosing memcached servers: what ``layered-cache check`` and ``manage.py cache_check`` share.

A :class:`Probe` holds what a connection needs apart from the server (transport,
authenticator, serializer, timeouts) and checks one server at a time, each with a
client of its own, so that every server's outcome is its own::

    >>> probe = Probe()
    >>> probe.check(memcached_address).ok
    True

:meth:`Probe.check` connects, authenticates, asks the version, then sets, reads back
and deletes a value under a unique key, and returns a :class:`CheckResult`; a failure
is classified (:func:`classify_error`) and, for the usual misconfigurations, comes
with a hint in the terms of the front end that asked: command-line options or
``CACHES`` settings (:data:`HINTS`).

Only :class:`~layered_cache.Client`'s public methods are used (``version``, ``set``,
``get``, ``delete``, ``stats``), so a check exercises exactly what an application
does. Passwords never appear in a result.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import statistics
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal

import attrs

from layered_cache import Client
from layered_cache.auth import Authenticator, NoAuth
from layered_cache.discovery import Discovery, StaticDiscovery
from layered_cache.errors import (
    AuthenticationError,
    CacheConnectionError,
    CacheTimeoutError,
    LayeredCacheError,
    ServerResponseError,
    ServerUnavailableError,
    TLSError,
)
from layered_cache.serialization import PickleSerializer, Serializer
from layered_cache.sync.connection import Connection
from layered_cache.sync.discovery import run_lookup
from layered_cache.transport import Address, TCPTransport, Transport, format_address

__all__ = [
    "CHECK_EXPIRE",
    "CheckResult",
    "DiscoveryResult",
    "HINTS",
    "Hint",
    "Probe",
    "Terms",
    "check_server",
    "classify_error",
    "hint_for",
    "quiet_library_log",
    "server_summary",
]

#: Seconds the check value lives, in case the delete never happens.
CHECK_EXPIRE: Final = 30

#: ``get`` round trips timed by a check; the median is reported.
_LATENCY_SAMPLES: Final = 3

# Whose vocabulary a hint speaks: the ``layered-cache`` command's options
# ("command line") or the Django CACHES entry's ("settings").
Terms = Literal["command line", "settings"]


# -- results and classification -------------------------------------------------------


@attrs.frozen
class CheckResult:
    """What a check found out about one server.

    Attributes:
        server: ``host:port`` (or the UNIX socket path).
        ok: the server passed every step.
        version: the version the server reported, when it got that far.
        connect_ms: milliseconds to connect, handshake TLS, authenticate and
            answer ``version`` on a new connection.
        latency_ms: milliseconds for one ``get`` round trip on the open
            connection (the median of three).
        kind: on failure, one of ``dns``, ``refused``, ``timeout``, ``tls``,
            ``auth``, ``protocol``, ``connection``, ``unavailable``, ``error``.
        reason: on failure, a one-line explanation naming the server.
        hint: on some failures, what to try (in the terms of the front end).
    """

    server: str
    ok: bool
    version: str | None = None
    connect_ms: float | None = None
    latency_ms: float | None = None
    kind: str | None = None
    reason: str | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (milliseconds rounded to microseconds)."""
        data = attrs.asdict(self)
        for name in ("connect_ms", "latency_ms"):
            if data[name] is not None:
                data[name] = round(data[name], 3)
        return data

    def summary(self) -> str:
        """One line after the server's name: timings when it passed, else kind, reason and hint.

        Example:
            >>> CheckResult("h:1", ok=False, kind="timeout", reason="h:1 did not answer").summary()
            'timeout: h:1 did not answer'
        """
        if self.ok:
            return (
                f"version {self.version}  connect {self.connect_ms or 0:.2f} ms  "
                f"latency {self.latency_ms or 0:.2f} ms"
            )
        details = f"{self.kind}: {self.reason}"
        return f"{details} [hint: {self.hint}]" if self.hint else details


@attrs.frozen
class DiscoveryResult:
    """What discovery listed behind the servers given, before they are checked.

    Attributes:
        strategy: the discovery strategy's repr.
        seeds: the configuration endpoints or names that were asked.
        nodes: the nodes found (empty when the lookup failed).
        version: the configuration version the endpoint reported, if any.
        source: the endpoint that answered (or the names resolved).
        error: why no node list came back, or None.
    """

    strategy: str
    seeds: tuple[str, ...]
    nodes: tuple[Address, ...] = ()
    version: int | None = None
    source: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a node list came back."""
        return self.error is None

    def summary(self) -> str:
        """``3 node(s) from cfg:11211 (version 12): a:11211, b:11211, c:11211``, or the error."""
        if self.error is not None:
            return f"discovery failed: {self.error}"
        version = "" if self.version is None else f" (version {self.version})"
        listed = ", ".join(format_address(node) for node in self.nodes)
        return f"{len(self.nodes)} node(s) from {self.source}{version}: {listed}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (nodes as ``host:port`` strings)."""
        return {
            "strategy": self.strategy,
            "seeds": list(self.seeds),
            "ok": self.ok,
            "nodes": [format_address(node) for node in self.nodes],
            "version": self.version,
            "source": self.source,
            "error": self.error,
        }


def classify_error(exc: BaseException) -> tuple[str, str]:
    """Name the kind of a failure and give its one-line reason, from layered_cache's errors.

    Args:
        exc: what a :class:`~layered_cache.Client` call raised.

    Returns:
        ``(kind, reason)``: kind is ``dns`` (the host name does not resolve),
        ``refused`` (nothing listens on the port), ``timeout``, ``tls``
        (certificate, hostname or client certificate refused), ``auth``
        (credentials refused or missing), ``protocol`` (an unexpected or
        error reply), ``connection`` (dropped or reset), ``unavailable``
        (skipped after recent failures) or ``error`` (anything else).

    Example:
        >>> from layered_cache import CacheTimeoutError
        >>> classify_error(CacheTimeoutError("db:11211 did not answer", server="db:11211"))
        ('timeout', 'db:11211 did not answer')
    """
    reason = " ".join(str(exc).split()) or exc.__class__.__name__
    cause = exc.__cause__
    kind = "error"
    if isinstance(exc, AuthenticationError):
        kind = "auth"
    elif isinstance(exc, TLSError):
        kind = "tls"
    elif isinstance(exc, CacheTimeoutError):
        kind = "timeout"
    elif isinstance(exc, ServerUnavailableError):
        kind = "unavailable"
    elif isinstance(exc, CacheConnectionError | ServerResponseError) and (
        "authentication" in reason or "unauthenticated" in reason
    ):
        # memcached -Y answers "CLIENT_ERROR unauthenticated" to a client that
        # skipped the handshake; a MemCachier endpoint says "authentication failed".
        kind = "auth"
    elif isinstance(exc, CacheConnectionError):
        if isinstance(cause, socket.gaierror) or "cannot resolve" in reason:
            kind = "dns"
        elif isinstance(cause, ConnectionRefusedError) or "refused the connection" in reason:
            kind = "refused"
        else:
            kind = "connection"
    elif isinstance(exc, ServerResponseError):
        kind = "protocol"
    elif not isinstance(exc, LayeredCacheError):
        reason = f"{exc.__class__.__name__}: {reason}"
    return kind, reason


# -- hints ----------------------------------------------------------------------------


@attrs.frozen
class Hint:
    """What to try for one usual misconfiguration, in the terms of each front end.

    Attributes:
        kind: the failure kind it applies to (see :func:`classify_error`).
        clues: it applies when one of these is in the reason (``""`` matches any).
        command_line: the remedy in ``layered-cache`` options.
        settings: the remedy in ``CACHES`` terms.
    """

    kind: str
    clues: tuple[str, ...]
    command_line: str
    settings: str

    def matches(self, kind: str, reason: str) -> bool:
        """Whether this hint applies to a failure of ``kind`` explained by ``reason``."""
        return kind == self.kind and any(clue in reason for clue in self.clues)

    def text(self, terms: Terms) -> str:
        """The remedy in ``terms``."""
        return self.command_line if terms == "command line" else self.settings


#: The usual misconfigurations, first match wins.
HINTS: Final = (
    Hint(
        "auth",
        ("refused",),
        command_line="check the user name, the password and --auth",
        settings='check the username and password and OPTIONS["auth"]',
    ),
    Hint(
        "auth",
        ("",),
        command_line="the server requires authentication: --auth ascii or memcachier, --username",
        settings='the server requires authentication: set OPTIONS["auth"] ("ascii" or '
        '"memcachier") and the credentials',
    ),
    Hint(
        "tls",
        ("WRONG_VERSION_NUMBER",),
        command_line="the server does not speak TLS here: drop the TLS options",
        settings='the server does not speak TLS here: use "transport": "tcp"',
    ),
    Hint(
        "tls",
        ("hostname mismatch", "address mismatch"),
        command_line="--server-hostname NAME names the host the certificate is for",
        settings='OPTIONS["server_hostname"] names the host of the certificate',
    ),
    Hint(
        "tls",
        ("local issuer", "self-signed"),
        command_line="--ca-file PEM trusts the authority that signed the certificate",
        settings='OPTIONS["ca_file"] trusts the authority that signed the certificate',
    ),
    Hint(
        "tls",
        ("client certificate", "CERTIFICATE_REQUIRED"),
        command_line="--cert-file PEM --key-file PEM present a client certificate",
        settings='OPTIONS["cert_file"] and OPTIONS["key_file"] present a client certificate',
    ),
    Hint(
        "connection",
        ("reset",),
        command_line="a TLS server resets plain connections: try --tls",
        settings='a TLS server resets plain connections: try "transport": "tls"',
    ),
    Hint(
        "timeout",
        ("",),
        command_line="the server is stalled or a firewall drops packets; see --timeout",
        settings='the server is stalled or a firewall drops packets; see OPTIONS["timeout"]',
    ),
)


def hint_for(kind: str, reason: str, terms: Terms = "command line") -> str | None:
    """The first of :data:`HINTS` that applies to a failure, in ``terms``; None if none does.

    Example:
        >>> hint_for("timeout", "db:11211 did not answer", "settings")
        'the server is stalled or a firewall drops packets; see OPTIONS["timeout"]'
    """
    for hint in HINTS:
        if hint.matches(kind, reason):
            return hint.text(terms)
    return None


# -- checking -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Probe:
    """How to reach and check servers: everything a client needs apart from the server.

    Attributes:
        transport: how to reach a server (default plain TCP).
        auth: how to authenticate (default none).
        serializer: how to encode the check value (default pickle).
        connect_timeout: seconds allowed to connect and authenticate.
        timeout: seconds allowed for each reply.
        terms: the vocabulary of the hints in failed results.
    """

    transport: Transport = attrs.field(factory=TCPTransport)
    auth: Authenticator = attrs.field(factory=NoAuth)
    serializer: Serializer = attrs.field(factory=PickleSerializer)
    connect_timeout: float | None = 2.0
    timeout: float | None = 2.0
    terms: Terms = "command line"

    def client(self, address: Address) -> Client:
        """A client of ``address`` alone, which reports every failure as it happens.

        One client per server keeps each server's outcome its own, and without
        retries or dead-server skipping a failure is never turned into a later
        "skipped after a failure".

        Raises:
            ConfigurationError: an option is invalid (before any network I/O).
        """
        return Client(
            [address],
            transport=self.transport,
            auth=self.auth,
            serializer=self.serializer,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            retry_attempts=1,
            retry_timeout=0,
            dead_timeout=0,
        )

    def failure(self, address: Address, exc: BaseException, **found: Any) -> CheckResult:
        """A failed result for ``address`` explaining ``exc`` (with a hint where one applies).

        Args:
            address: the server.
            exc: what the client raised.
            found: what was learnt before the failure (``version``, ``connect_ms``).
        """
        kind, reason = classify_error(exc)
        return CheckResult(
            format_address(address),
            ok=False,
            kind=kind,
            reason=reason,
            hint=hint_for(kind, reason, self.terms),
            **found,
        )

    def check(self, address: Address) -> CheckResult:
        """Check one server: connect, authenticate, ``version``, then set, get and delete a value.

        The value lives under ``layered-cache:check:<random>`` for at most
        :data:`CHECK_EXPIRE` seconds, so a check never touches application keys
        and leaves nothing behind.

        Returns:
            The outcome; failures are reported in it, never raised.

        Raises:
            ConfigurationError: an option is invalid (before any network I/O).
        """
        name = format_address(address)
        client = self.client(address)
        found: dict[str, Any] = {}
        try:
            with client:
                started = time.perf_counter()
                found["version"] = client.version()[name]
                found["connect_ms"] = _elapsed_ms(started)
                token = secrets.token_hex(8)
                key = f"layered-cache:check:{token}"
                value = {"layered-cache": "check", "token": token}
                if not client.set(key, value, expire=CHECK_EXPIRE):
                    return CheckResult(
                        name,
                        ok=False,
                        version=found["version"],
                        kind="protocol",
                        reason=f"{name} did not store the check value",
                    )
                timings = []
                for _ in range(_LATENCY_SAMPLES):
                    started = time.perf_counter()
                    read = client.get(key)
                    timings.append(_elapsed_ms(started))
                client.delete(key)
        except Exception as exc:  # reported, never raised: one line per server
            return self.failure(address, exc, **found)
        if read != value:
            return CheckResult(
                name,
                ok=False,
                kind="protocol",
                reason=f"{name} returned {'nothing' if read is None else 'a different value'} "
                "for the check value just written",
                **found,
            )
        return CheckResult(name, ok=True, latency_ms=statistics.median(timings), **found)

    def discover(self, seeds: list[Address], discovery: Discovery) -> DiscoveryResult | None:
        """Ask ``discovery`` once which nodes stand behind ``seeds`` (None for static discovery).

        The lookup runs as a client's would (its own connection per endpoint,
        this probe's transport, authenticator and timeouts); its failure is
        reported in the result, never raised.
        """
        if isinstance(discovery, StaticDiscovery):
            return None

        def connect(address: Address) -> Connection:
            return Connection.open(
                address,
                name=format_address(address),
                transport=self.transport,
                auth=self.auth,
                connect_timeout=self.connect_timeout,
                timeout=self.timeout,
            )

        names = tuple(format_address(seed) for seed in seeds)
        try:
            found = run_lookup(discovery.lookup(tuple(seeds)), connect, self.timeout)
        except LayeredCacheError as exc:
            return DiscoveryResult(repr(discovery), names, error=str(exc))
        return DiscoveryResult(
            repr(discovery), names, found.nodes, version=found.version, source=found.source
        )

    def stats(self, address: Address, *group: str) -> dict[str, Any]:
        """``stats [group]`` of one server, as the client returns it.

        Raises:
            LayeredCacheError: the server could not be read (see :meth:`failure`).
        """
        with self.client(address) as client:
            return client.stats(*group)[format_address(address)]


def server_summary(stats: Mapping[str, Any]) -> dict[str, Any]:
    """What a server's general ``stats`` say of its cache: hit ratio, evictions, items.

    Returns:
        ``{"hit_ratio": float or None (no get yet), "gets": int, "evictions": int,
        "items": int}``, from ``get_hits``/``get_misses``, ``evictions`` and
        ``curr_items`` (0 where a server, or a proxy, does not report one).

    Example:
        >>> server_summary({"get_hits": 3, "get_misses": 1, "evictions": 0, "curr_items": 2})
        {'hit_ratio': 0.75, 'gets': 4, 'evictions': 0, 'items': 2}
    """

    def number(name: str) -> int:
        value = stats.get(name, 0)
        return value if isinstance(value, int) else 0

    hits, misses = number("get_hits"), number("get_misses")
    gets = hits + misses
    return {
        "hit_ratio": hits / gets if gets else None,
        "gets": gets,
        "evictions": number("evictions"),
        "items": number("curr_items"),
    }


def check_server(
    address: Address,
    *,
    transport: Transport,
    auth: Authenticator,
    serializer: Serializer,
    connect_timeout: float | None,
    timeout: float | None,
) -> CheckResult:
    """Check one server as :meth:`Probe.check` does, with hints in command-line terms.

    Args:
        address: the server.
        transport: how to reach it.
        auth: how to authenticate.
        serializer: how to encode the check value.
        connect_timeout: seconds allowed to connect and authenticate.
        timeout: seconds allowed for each reply.

    Returns:
        The outcome; failures are reported in it, never raised.

    Raises:
        ConfigurationError: an option is invalid (before any network I/O).
    """
    probe = Probe(
        transport=transport,
        auth=auth,
        serializer=serializer,
        connect_timeout=connect_timeout,
        timeout=timeout,
    )
    return probe.check(address)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


@contextlib.contextmanager
def quiet_library_log() -> Iterator[None]:
    """Keep the client's own failure warnings from repeating a checker's FAIL lines.

    With no logging configured, Python prints WARNING records itself. A
    handler on the ``layered_cache`` logger only silences that fallback:
    handlers an embedding program configured still receive the records.
    """
    logger = logging.getLogger("layered_cache")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
