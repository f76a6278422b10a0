"""twemproxy (``nutcracker``) in front of real memcached processes, for the scale-out tests.

:class:`NutcrackerProcess` writes a one-pool YAML configuration over N memcached servers on
127.0.0.1, starts ``nutcracker`` on a free port (stats on another free port, loopback only)
and waits, bounded, until it answers.  Like :mod:`tests.servers` it imports nothing from
``layered_cache``.

Protocol facts recorded by experiment against Debian's nutcracker 0.5.0 over memcached 1.6.18
-------------------------------------------------------------------------------------------

Forwarded to the server that owns the key (answers byte for byte as memcached's):
``get``/``gets`` with one or many keys (a multi-key request is split per server and the
answers are merged in request order), ``set``, ``add``, ``replace``, ``append``,
``prepend``, ``cas``, ``incr``, ``decr``, ``touch``, ``delete <key>`` (``noreply`` works:
tried with ``set``, ``delete`` and ``incr``).  Pipelined requests work.  ``version`` is
forwarded to one fixed server of the pool (always the same one) and answered with that
memcached's ``VERSION 1.6.18``; while that one server is down, ``version`` gets
``SERVER_ERROR Connection refused``.

Not supported: twemproxy's parser treats these as a bad request and **closes the client
connection without a reply** (no ``ERROR`` line), at once, never a hang:
``flush_all`` (with or without a delay), ``stats`` (any group), ``verbosity``, ``quit``
(closes, which is its meaning anyway), ``cache_memlimit``, the meta commands ``mg``/``ms``/
``md``/``mn``, ``gat``/``gats``, ``delete <key> <time>``, ``delete`` of several keys, ``get``
without a key, a key longer than 250 bytes, a data block whose length is not the announced
one, and any unknown word.  Replies to requests
pipelined *before* the bad one on the same connection are lost as well.

Authentication: nutcracker has none for memcached pools.  An authentication handshake
that is a ``set`` (MemCachier's ``set <user> 0 0 <n>``, memcached's ``-Y`` token ``set``) is
routed like any other ``set``: against servers without ``-Y`` it answers ``STORED`` and
*stores the secret as an ordinary item* under that key.

A server that is down: with ``auto_eject_hosts: false`` every request for one of its keys
gets ``SERVER_ERROR Connection refused`` (a multi-key ``get`` touching it fails as a
whole), keys on other servers keep working.  A server that accepts but never answers:
``SERVER_ERROR Connection timed out`` after the pool's ``timeout`` (without ``timeout``,
nutcracker waits forever and only the client's own timeout ends the call).  With
``auto_eject_hosts: true`` the server leaves the ring after ``server_failure_limit``
consecutive failures; its keys are then hashed to the remaining servers (cold misses,
not errors) until ``server_retry_timeout`` ms later, when it is tried again.

Stopping: nutcracker exits at once on SIGTERM.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from tests.harness import (
    COMMAND_TIMEOUT,
    LOOPBACK,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    ChildProcess,
    HarnessError,
    find_program,
    free_port,
)
from tests.servers import recv_until

__all__ = [
    "NUTCRACKER_ENV_VAR",
    "NutcrackerProcess",
    "find_nutcracker",
]

NUTCRACKER_ENV_VAR = "NUTCRACKER_BIN"


class _Backend(Protocol):
    @property
    def address(self) -> str: ...


def find_nutcracker() -> str:
    """Return the path of ``nutcracker`` (``$NUTCRACKER_BIN``, ``PATH`` or ``/usr/sbin``).

    Raises :class:`HarnessError` with instructions when it is missing (tests fail, never skip).
    """
    return find_program(
        "nutcracker",
        NUTCRACKER_ENV_VAR,
        search="/usr/sbin:/usr/local/sbin",
        missing="nutcracker (twemproxy) was not found on PATH, in /usr/sbin or in "
        "$NUTCRACKER_BIN: the scale-out tests need it. Run `bash .ci/run`, or install it "
        "(Debian/Ubuntu: `apt-get install nutcracker`; macOS: `brew install twemproxy`).",
    )


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if not text or any(char in text for char in ":#{}[],&*!|>'\"%@`\n"):
        raise HarnessError(f"refusing to write {text!r} into a nutcracker config")
    return text


class NutcrackerProcess(ChildProcess):
    """One ``nutcracker`` process proxying one memcached pool on ``127.0.0.1:<port>``.

    Args:
        servers: the memcached servers behind the proxy: objects with an ``address``
            (``"127.0.0.1:PORT"``, e.g. :class:`tests.servers.MemcachedProcess`) or such
            strings.  They need not be running.
        auto_eject_hosts: take a failing server out of the ring (its keys move to the
            others) instead of answering ``SERVER_ERROR`` for its keys.
        server_failure_limit: consecutive failures that eject a server.
        server_retry_timeout: milliseconds an ejected server stays out before a retry.
        timeout: milliseconds nutcracker waits for a server (None: forever, nutcracker's
            default; then only the client's own timeout ends a call to a stalled server).
        hash, distribution: the pool's key hashing (defaults: ``fnv1a_64``, ``ketama``).
        server_names: give each server a name (``mc0``, ``mc1``...) in the config, so
            that ketama places keys by name rather than by ``host:port``.
        pool_options: further pool keys written as they are (e.g. ``server_connections``,
            ``preconnect``).
        port: the listening port (None: a free one, retried on a collision).
        stats_interval: milliseconds between refreshes of the stats port's counters.

    All times in the YAML (``timeout``, ``server_retry_timeout``) are milliseconds, as in
    nutcracker's own configuration.  Starting, stopping and the bounded readiness wait
    (both the proxy port and the stats port accept connections) are
    :class:`~tests.harness.ChildProcess`'s.
    """

    program = "nutcracker"

    def __init__(
        self,
        servers: Sequence[_Backend | str],
        *,
        auto_eject_hosts: bool = False,
        server_failure_limit: int = 2,
        server_retry_timeout: int = 30_000,
        timeout: int | None = 500,
        hash: str = "fnv1a_64",
        distribution: str = "ketama",
        server_names: bool = False,
        pool_options: Mapping[str, bool | int | str] | None = None,
        port: int | None = None,
        stats_interval: int = 100,
        name: str = "nutcracker",
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        if not servers:
            raise HarnessError("nutcracker needs at least one server")
        super().__init__(
            port=port, name=name, startup_timeout=startup_timeout, stop_timeout=stop_timeout
        )
        self.servers: list[str] = [s if isinstance(s, str) else s.address for s in servers]
        self.auto_eject_hosts = auto_eject_hosts
        self.server_failure_limit = server_failure_limit
        self.server_retry_timeout = server_retry_timeout
        self.timeout = timeout
        self.hash = hash
        self.distribution = distribution
        self.server_names = server_names
        self.pool_options: dict[str, bool | int | str] = dict(pool_options or {})
        self.stats_interval = stats_interval
        self._stats_port = free_port()

    # -- identity -------------------------------------------------------------------------
    @property
    def stats_port(self) -> int:
        """nutcracker's JSON stats port (see :meth:`stats`)."""
        return self._stats_port

    def ports(self) -> list[int]:
        """The proxy port and the stats port: both must accept connections."""
        return [self._port, self._stats_port]

    def choose_new_ports(self) -> None:
        """Free ports again, for the proxy and its stats."""
        self._port = free_port()
        self._stats_port = free_port()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<NutcrackerProcess {self.address} -> {self.servers} {state}>"

    # -- files ----------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        """The generated YAML file."""
        return self._dir() / "nutcracker.yml"

    def config_text(self) -> str:
        """The YAML configuration :meth:`start` writes (one pool named ``layered_cache``)."""
        options: dict[str, bool | int | str] = {
            "listen": f"{LOOPBACK}:{self._port}",
            "hash": self.hash,
            "distribution": self.distribution,
            "auto_eject_hosts": self.auto_eject_hosts,
            "server_failure_limit": self.server_failure_limit,
            "server_retry_timeout": self.server_retry_timeout,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        options.update(self.pool_options)
        lines = ["layered_cache:"]
        for key, value in options.items():
            # "listen" holds a colon by design; it is built here, not passed in.
            text = value if key == "listen" else _yaml_scalar(value)
            lines.append(f"  {_yaml_scalar(key)}: {text}")
        lines.append("  servers:")
        for index, server in enumerate(self.servers):
            host, sep, port = server.rpartition(":")
            if not sep or not port.isdigit() or not host or "[" in host:
                raise HarnessError(f"nutcracker servers must be 'ipv4:port', not {server!r}")
            label = f" mc{index}" if self.server_names else ""
            lines.append(f"    - {host}:{port}:1{label}")
        return "\n".join(lines) + "\n"

    def command_line(self) -> list[str]:
        """The argv :meth:`start` runs."""
        return [
            find_nutcracker(),
            "-c",
            str(self.config_file),
            "-o",
            str(self.log_file),
            "-v",
            "6",
            "-s",
            str(self._stats_port),
            "-a",
            LOOPBACK,
            "-i",
            str(self.stats_interval),
        ]

    # -- lifecycle ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Write the config and have nutcracker check it (``-t``) before it starts."""
        self.config_file.write_text(self.config_text())
        argv = self.command_line()
        check = subprocess.run(  # noqa: PLW1510 - the return code is inspected below
            [*argv[:3], "-t"], capture_output=True, timeout=self.startup_timeout
        )
        output = (check.stdout + check.stderr).decode(errors="replace")
        if check.returncode != 0 or "syntax is ok" not in output:
            raise HarnessError(
                f"nutcracker refused its configuration:\n{self.config_text()}\n{output}"
            )

    def spawn(self, argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        """nutcracker writes its own log (``-o``); its stdout and stderr are dropped."""
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    # -- talking to it --------------------------------------------------------------------
    def command(
        self, data: bytes, *, until: bytes = b"\r\n", timeout: float = COMMAND_TIMEOUT
    ) -> bytes:
        """Send ``data`` on a new connection; return the reply (see :func:`recv_until`).

        A connection nutcracker closes without answering raises :class:`ConnectionError`.
        """
        with socket.create_connection((LOOPBACK, self._port), timeout=timeout) as sock:
            sock.sendall(data)
            return recv_until(sock, until, timeout=timeout)

    def stats(self, *, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        """nutcracker's own statistics (the JSON its stats port sends), refreshed every
        ``stats_interval`` ms.  ``stats()["layered_cache"]["127.0.0.1:PORT"]`` holds a
        server's counters, e.g. ``server_ejected_at`` and ``server_err``."""
        deadline = time.monotonic() + timeout
        with socket.create_connection((LOOPBACK, self._stats_port), timeout=timeout) as sock:
            chunks: list[bytes] = []
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        data: dict[str, Any] = json.loads(b"".join(chunks))
        return data

    def server_stats(self, server: _Backend | str) -> dict[str, Any]:
        """The stats-port counters of one backend server."""
        address = server if isinstance(server, str) else server.address
        pool: dict[str, Any] = self.stats()["layered_cache"]
        for name, value in pool.items():
            if isinstance(value, dict) and (name == address or name.startswith(address + ":")):
                return value
        raise HarnessError(f"no stats for {address} in {sorted(pool)}")
