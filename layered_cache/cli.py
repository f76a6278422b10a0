"""The ``layered-cache`` command: check memcached servers and read their stats before you deploy.

Installed as the ``layered-cache`` console script and runnable as
``python -m layered_cache``::

    layered-cache check [SERVER ...] [connection options] [--json]
    layered-cache stats [SERVER ...] [connection options] [--group NAME] [--json]
    layered-cache --version

``check`` connects to each server on its own (with the chosen transport and
authentication), asks its version, writes, reads back and deletes a value under
a unique key, and prints one line per server::

    OK    127.0.0.1:11211      version 1.6.18  connect 0.41 ms  latency 0.12 ms
    FAIL  cache.invalid:11211  dns: cache.invalid:11211: cannot resolve the host name (...)

Servers come from the arguments, credentials from ``--username`` and
``--password-env VAR``; what they leave out comes from the environment, read
exactly as the Django backend reads it: ``MEMCACHE_SERVERS`` /
``MEMCACHE_USERNAME`` / ``MEMCACHE_PASSWORD`` when any of them is set, otherwise
the ``MEMCACHIER_*`` trio (the two families are never mixed). Credentials from
the environment only go to the environment's servers: with servers given as
arguments they are not used (a note says so) unless the command line asks for
authentication (``--auth``, ``--username`` or ``--environment-credentials``).
Credentials without ``--auth`` mean MemCachier authentication. A password is
never accepted as a command-line value (other users see those in ``ps``) and never printed;
without one, an interactive session is asked for it.

Exit status: 0 when every server passed, 1 when any server failed, 2 for a
usage or configuration error (nothing was contacted).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TextIO

import attrs
import pymemcache

from layered_cache import __version__
from layered_cache._addresses import parse_servers
from layered_cache._environment import Environment
from layered_cache.auth import AsciiAuth, Authenticator, MemCachierAuth, NoAuth
from layered_cache.diagnostics import (
    CHECK_EXPIRE,
    CheckResult,
    DiscoveryResult,
    Probe,
    check_server,
    classify_error,
    quiet_library_log,
    server_summary,
)
from layered_cache.discovery import ALIASES as DISCOVERIES
from layered_cache.errors import ConfigurationError
from layered_cache.serialization import JSONSerializer, PickleSerializer, Serializer
from layered_cache.transport import Address, TCPTransport, TLSTransport, Transport, format_address

__all__ = [
    "CheckResult",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "check_server",
    "classify_error",
    "main",
    "quiet_library_log",
]

PROG: Final = "layered-cache"

#: Every server passed.
EXIT_OK: Final = 0
#: At least one server failed the check (or could not be read).
EXIT_FAILED: Final = 1
#: Bad arguments or configuration: nothing was contacted.
EXIT_USAGE: Final = 2

#: ``stats <group>`` variants that only read (``stats reset`` is deliberately absent).
STATS_GROUPS: Final = ("settings", "items", "slabs", "sizes", "conns")

_DEFAULT_TIMEOUT: Final = 2.0


class _UsageError(Exception):
    """The command line or environment is unusable; reported with exit status 2."""


# -- resolving options and environment ------------------------------------------------


@attrs.frozen
class _Connection:
    """The servers named, and how to reach and check each of them."""

    servers: list[Address]
    probe: Probe
    #: What discovery listed behind the servers given (None: static).
    discovered: DiscoveryResult | None = None


@attrs.frozen
class _Resolver:
    """Turns the arguments and the environment into servers and a :class:`Probe`.

    Attributes:
        args: the parsed command line.
        environ: where ``MEMCACHE_*``, ``MEMCACHIER_*`` and ``--password-env`` are read.
        stderr: where warnings and notes go.
        prompt: asks for a password (an interactive session), or None.
    """

    args: argparse.Namespace
    environ: Mapping[str, str] = attrs.field(repr=False)
    stderr: TextIO
    prompt: Callable[[str], str] | None

    def connection(self) -> _Connection:
        """Everything the commands need; a :class:`_UsageError` when something is missing."""
        args = self.args
        env = Environment.read(self.environ)
        servers = self.servers(env)
        asked = args.environment_credentials or args.username is not None or args.auth is not None
        if args.servers and not asked:
            # Credentials exported for other servers are not sent to these unless the
            # command line asks for authentication.
            refused = env.credentials_refused(
                "the command line", "add --auth SCHEME (or --environment-credentials)."
            )
            if refused:
                print(f"{PROG}: note: {refused}", file=self.stderr)
            env = Environment(env.family, servers=env.servers)
        serializer: Serializer = (
            JSONSerializer() if args.serializer == "json" else PickleSerializer()
        )
        probe = Probe(
            transport=self.transport(),
            auth=self.auth(env),
            serializer=serializer,
            connect_timeout=args.connect_timeout,
            timeout=args.timeout,
        )
        discovered = probe.discover(servers, DISCOVERIES[args.discovery]())
        if discovered is not None:
            # The servers given are configuration endpoints (or names): check what they list.
            servers = list(discovered.nodes)
        return _Connection(servers, probe, discovered)

    def servers(self, env: Environment) -> list[Address]:
        """The SERVER arguments, else the environment's; each server once."""
        specs: list[str] = list(self.args.servers)
        if not specs:
            if not env.servers:
                raise _UsageError(
                    f"no servers: give HOST:PORT arguments or set {env.variable('SERVERS')}"
                    f"{env.unread_servers_note(self.environ)}"
                )
            specs = [env.servers]
        unique: dict[str, Address] = {}
        for address in parse_servers(specs):
            unique.setdefault(format_address(address), address)
        return list(unique.values())

    def transport(self) -> Transport:
        """TCP, or TLS when any TLS option is given (its warnings printed, not raised)."""
        args = self.args
        tls_options = (args.ca_file, args.cert_file, args.key_file, args.server_hostname)
        if not (args.tls or args.no_verify or any(option is not None for option in tls_options)):
            return TCPTransport()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            transport = TLSTransport(
                ca_file=args.ca_file,
                cert_file=args.cert_file,
                key_file=args.key_file,
                server_hostname=args.server_hostname,
                verify=not args.no_verify,
            )
        for warning in caught:
            print(f"{PROG}: warning: {warning.message}", file=self.stderr)
        return transport

    def auth(self, env: Environment) -> Authenticator:
        """``--auth``, or MemCachier when credentials are given without it, else none."""
        args = self.args
        scheme: str | None = args.auth
        if scheme == "none":
            if args.username is not None or args.password_env is not None:
                raise _UsageError("--auth none takes no --username or --password-env")
            return NoAuth()  # credentials in the environment are simply not used
        username: str = env.username if args.username is None else args.username
        if scheme is None:
            if not (username or args.password_env is not None or env.password):
                return NoAuth()
            # Credentials and no scheme named: MemCachier, as in the Django backend.
            scheme = "memcachier"
        if not username:
            raise _UsageError(
                f"--auth {scheme} needs a user name: --username NAME or {env.variable('USERNAME')}"
            )
        password = self.password(env, username)
        if scheme == "ascii":
            return AsciiAuth(username, password)
        return MemCachierAuth(username, password)

    def password(self, env: Environment, username: str) -> str:
        """``--password-env``, else the environment family's, else asked for."""
        if self.args.password_env is not None:
            value = self.environ.get(self.args.password_env, "")
            if not value:
                # Not named: a password typed here by mistake must not be echoed.
                raise _UsageError(
                    "the environment variable named by --password-env is not set or is empty"
                )
            return value
        if env.password:
            return env.password
        if self.prompt is not None:
            password = self.prompt(f"Password for {username}: ")
            if password:
                return password
        raise _UsageError(
            f"no password for user {username!r}: set {env.variable('PASSWORD')}, name another "
            "variable with --password-env VAR, or run interactively to be asked"
        )


# -- commands -------------------------------------------------------------------------


def _run_check(args: argparse.Namespace, connection: _Connection, out: TextIO) -> int:
    discovered = connection.discovered
    if discovered is not None and not args.json:
        status = _paint(
            "NODES" if discovered.ok else "FAIL", "32" if discovered.ok else "31", _use_color(out)
        )
        print(f"{status}  {', '.join(discovered.seeds)}  {discovered.summary()}", file=out)
    if discovered is not None and not discovered.ok:
        if args.json:
            json.dump({"discovery": discovered.to_json(), "servers": []}, out, indent=2)
            print(file=out)
        return EXIT_FAILED
    names = [format_address(address) for address in connection.servers]
    width = max(len(name) for name in names)
    results: list[CheckResult] = []
    for address in connection.servers:
        result = connection.probe.check(address)
        results.append(result)
        if not args.json:
            print(_check_line(result, width, color=_use_color(out)), file=out, flush=True)
    if args.json:
        json.dump([result.to_json() for result in results], out, indent=2)
        print(file=out)
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


def _check_line(result: CheckResult, width: int, *, color: bool) -> str:
    status = _paint("OK  " if result.ok else "FAIL", "32" if result.ok else "31", color)
    return f"{status}  {result.server:<{width}}  {result.summary()}"


def _run_stats(args: argparse.Namespace, connection: _Connection, out: TextIO, err: TextIO) -> int:
    group: list[str] = [] if args.group is None else [args.group]
    table: dict[str, dict[str, Any]] = {}
    failed = False
    for address in connection.servers:
        try:
            table[format_address(address)] = connection.probe.stats(address, *group)
        except Exception as exc:  # reported, never raised: the other servers still count
            failure = connection.probe.failure(address, exc)
            print(
                f"{PROG} stats: FAIL  {failure.server}  {failure.summary()}", file=err, flush=True
            )
            failed = True
    if args.json:
        json.dump(table, out, indent=2, sort_keys=True, default=str)
        print(file=out)
    elif table:
        if args.group is None:
            print(_summary_table(table), file=out)
            print(file=out)
        print(_stats_table(table), file=out)
    return EXIT_FAILED if failed else EXIT_OK


def _summary_table(table: Mapping[str, Mapping[str, Any]]) -> str:
    """The server's view of each server's health: hit ratio, evictions, items."""
    rows = [["server", "hit ratio", "gets", "evictions", "items"]]
    for server, stats in table.items():
        summary = server_summary(stats)
        ratio = summary["hit_ratio"]
        rows.append(
            [
                server,
                "-" if ratio is None else f"{ratio:.1%}",
                str(summary["gets"]),
                str(summary["evictions"]),
                str(summary["items"]),
            ]
        )
    return _aligned(rows)


def _stats_table(table: Mapping[str, Mapping[str, Any]]) -> str:
    servers = list(table)
    names = sorted({name for stats in table.values() for name in stats})
    rows = [["stat", *servers]]
    rows.extend(
        [name, *(_cell(table[server].get(name, "-")) for server in servers)] for name in names
    )
    return _aligned(rows)


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _cell(value: object) -> str:
    return " ".join(str(value).split()) or "-"


def _use_color(stream: TextIO) -> bool:
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text: str, code: str, color: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if color else text


# -- the parser -----------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


class _RefusePassword(argparse.Action):
    """``--password``: refused without echoing the value (argv is visible in ``ps``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--password is not accepted: a password on the command line is visible to "
            "other users (ps); set MEMCACHE_PASSWORD, name a variable with "
            "--password-env VAR, or run interactively to be asked"
        )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "servers",
        nargs="*",
        metavar="SERVER",
        help="host:port (port defaults to 11211), [ipv6]:port or a UNIX socket path; "
        "commas or spaces separate several. Default: $MEMCACHE_SERVERS, then "
        "$MEMCACHIER_SERVERS",
    )
    tls = parser.add_argument_group("TLS (any of these options turns TLS on)")
    tls.add_argument("--tls", action="store_true", help="connect with TLS")
    tls.add_argument(
        "--ca-file", metavar="PEM", help="certificate authorities to trust (default: system)"
    )
    tls.add_argument("--cert-file", metavar="PEM", help="client certificate, for mutual TLS")
    tls.add_argument("--key-file", metavar="PEM", help="private key of --cert-file")
    tls.add_argument(
        "--server-hostname",
        metavar="NAME",
        help="name to verify and send as SNI, when it differs from the host",
    )
    tls.add_argument(
        "--no-verify",
        action="store_true",
        help="accept any certificate (insecure, testing only; prints a warning)",
    )
    auth = parser.add_argument_group(
        "authentication",
        "The password is read from --password-env VAR, else $MEMCACHE_PASSWORD, else "
        "$MEMCACHIER_PASSWORD, else asked for when stdin is a terminal; it is never an "
        "argument and never printed. The environment is read as one family, as by the "
        "Django backend: MEMCACHE_* when any MEMCACHE_SERVERS/_USERNAME/_PASSWORD is set, "
        "else MEMCACHIER_*.",
    )
    auth.add_argument(
        "--auth",
        choices=("none", "memcachier", "ascii"),
        help="authentication scheme (default: memcachier when a user name or password is "
        "set, else none)",
    )
    auth.add_argument(
        "--username",
        metavar="NAME",
        help="user name (default: $MEMCACHE_USERNAME, then $MEMCACHIER_USERNAME)",
    )
    auth.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the password",
    )
    auth.add_argument(
        "--environment-credentials",
        action="store_true",
        help="use $MEMCACHE_USERNAME/_PASSWORD (or $MEMCACHIER_*) with SERVER arguments too "
        "(implied by --auth and --username); otherwise credentials from the environment "
        "only go to the environment's servers",
    )
    auth.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    client = parser.add_argument_group("client")
    client.add_argument(
        "--discovery",
        choices=tuple(DISCOVERIES),
        default="static",
        help="the servers given are a configuration endpoint (elasticache, memorystore) "
        "or names to resolve (dns): ask it for the nodes, and check those "
        "(default: static, the servers themselves)",
    )
    client.add_argument(
        "--serializer",
        choices=("pickle", "json"),
        default="pickle",
        help="serializer for the check value (default: pickle)",
    )
    client.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=_DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time allowed to connect, handshake and authenticate (default: %(default)g)",
    )
    client.add_argument(
        "--timeout",
        type=_seconds,
        default=_DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time allowed for each reply (default: %(default)g)",
    )


def _version_text() -> str:
    python = ".".join(str(part) for part in sys.version_info[:3])
    return f"{PROG} {__version__} (pymemcache {pymemcache.__version__}, Python {python})"


_EXIT_STATUS: Final = (
    "Exit status: 0 all servers OK, 1 a server failed, 2 usage or configuration error."
)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``layered-cache`` argument parser (for docs and shell completion tools)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check memcached servers and show their stats, with the same "
        "transport, authentication and serializer options as layered_cache.Client.",
        epilog=_EXIT_STATUS,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="connect, authenticate and round-trip a value on each server",
        description="Check each server on its own: connect, authenticate, ask its version, "
        "then set, get and delete a value under a unique key (layered-cache:check:<random>, "
        f"expiring after {CHECK_EXPIRE} s). One line per server: OK with version, connect "
        "time and get latency, or FAIL with the kind of failure (dns, refused, timeout, tls, "
        "auth, protocol, connection) and the reason.",
        epilog=_EXIT_STATUS,
        allow_abbrev=False,
    )
    _add_connection_options(check)
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    stats = commands.add_parser(
        "stats",
        help="show server stats as a table (one column per server) or JSON",
        description="Show each server's stats: one row per stat (sorted by name), one "
        "column per server. A server that cannot be read is reported on stderr as in "
        "check.",
        epilog=_EXIT_STATUS,
        allow_abbrev=False,
    )
    _add_connection_options(stats)
    stats.add_argument(
        "--group",
        choices=STATS_GROUPS,
        help="a stats group ('stats settings', 'stats slabs', ...); default: general stats",
    )
    stats.add_argument("--json", action="store_true", help="print {server: {stat: value}} as JSON")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    # Servers may come before, between or after options: the subcommand leaves
    # later positionals over, and they are servers too.
    args, extras = parser.parse_known_args(argv)
    unknown = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    if unknown:
        # Option names only: "--pasword=..." must not echo a password.
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.servers = [*args.servers, *extras]
    return args


def _interactive_prompt() -> Callable[[str], str] | None:
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        return getpass.getpass
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``layered-cache`` command.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: :data:`EXIT_OK` (0) when every server passed,
        :data:`EXIT_FAILED` (1) when any failed, :data:`EXIT_USAGE` (2) for a
        usage or configuration error.

    Example:
        >>> main(["check", memcached_address])  # doctest: +ELLIPSIS
        OK    127.0.0.1:...  version 1.6...  connect ... ms  latency ... ms
        0
    """
    parser = build_parser()
    out, err = sys.stdout, sys.stderr
    try:
        args = _parse(parser, sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    command = f"{PROG} {args.command}"
    try:
        with quiet_library_log():
            connection = _Resolver(args, os.environ, err, _interactive_prompt()).connection()
            if args.command == "check":
                return _run_check(args, connection, out)
            return _run_stats(args, connection, out, err)
    except (_UsageError, ConfigurationError) as exc:
        print(f"{command}: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=err)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a traceback.
        _silence_stdout()
        return EXIT_FAILED


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that
    # flush from printing a second BrokenPipeError.
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
