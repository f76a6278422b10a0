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

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from tests.servers import COMMAND_TIMEOUT, LOOPBACK, HarnessError, free_port, recv_until

__all__ = [
    "NUTCRACKER_ENV_VAR",
    "NutcrackerProcess",
    "find_nutcracker",
]

NUTCRACKER_ENV_VAR = "NUTCRACKER_BIN"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class _Backend(Protocol):
    @property
    def address(self) -> str: ...


def find_nutcracker() -> str:
    """Return the path of ``nutcracker`` (``$NUTCRACKER_BIN``, ``PATH`` or ``/usr/sbin``).

    Raises :class:`HarnessError` with instructions when it is missing (tests fail, never skip).
    """
    candidate = (
        os.environ.get(NUTCRACKER_ENV_VAR)
        or shutil.which("nutcracker")
        or shutil.which("nutcracker", path="/usr/sbin:/usr/local/sbin")
    )
    if not candidate or not os.access(candidate, os.X_OK):
        raise HarnessError(
            "nutcracker (twemproxy) was not found on PATH, in /usr/sbin or in $NUTCRACKER_BIN: "
            "the scale-out tests need it. Run `bash .ci/run`, or install it "
            "(Debian/Ubuntu: `apt-get install nutcracker`; macOS: `brew install twemproxy`)."
        )
    return candidate


_LIVE: weakref.WeakSet[NutcrackerProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net only
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.close()


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if not text or any(char in text for char in ":#{}[],&*!|>'\"%@`\n"):
        raise HarnessError(f"refusing to write {text!r} into a nutcracker config")
    return text


class NutcrackerProcess:
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
    nutcracker's own configuration.  :meth:`start` waits at most ``startup_timeout``
    seconds; :meth:`stop` sends SIGTERM then SIGKILL after ``stop_timeout`` seconds.
    """

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
        self.name = name
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._port_fixed = port is not None
        self._port = port if port is not None else free_port()
        self._stats_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None

    # -- identity -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The proxy's listening port."""
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``: what clients connect to."""
        return f"{LOOPBACK}:{self._port}"

    @property
    def stats_port(self) -> int:
        """nutcracker's JSON stats port (see :meth:`stats`)."""
        return self._stats_port

    @property
    def is_running(self) -> bool:
        """True while the process exists."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while running, else None."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<NutcrackerProcess {self.address} -> {self.servers} {state}>"

    # -- files ----------------------------------------------------------------------------
    def _dir(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        return self._tmpdir

    @property
    def config_file(self) -> Path:
        """The generated YAML file."""
        return self._dir() / "nutcracker.yml"

    @property
    def log_file(self) -> Path:
        """nutcracker's log (``-o``), every start appended."""
        return self._dir() / "nutcracker.log"

    def log_text(self) -> str:
        """nutcracker's output so far (empty if none)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_excerpt(self) -> str:
        text = self.log_text().strip() or "(nothing)"
        return f"nutcracker output ({self.log_file}):\n{text[-4000:]}"

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
    def start(self) -> Self:
        """Write the config, start nutcracker and wait until it accepts connections.

        Raises :class:`HarnessError` (quoting nutcracker's log) if the config is refused,
        the process exits, or it does not listen within ``startup_timeout`` seconds.
        With automatically chosen ports, a port collision is retried on new ports.
        """
        if self.is_running:
            raise HarnessError(f"{self!r} is already running")
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._start_once()
            except _PortInUse:
                if attempt + 1 >= attempts:
                    raise HarnessError(
                        f"{self.name}: ports {self._port}/{self._stats_port} in use\n"
                        f"{self._log_excerpt()}"
                    ) from None
                self._port = free_port()
                self._stats_port = free_port()
            else:
                _LIVE.add(self)
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
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
        mark = f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n"
        with self.log_file.open("a") as log:
            log.write(mark)
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self._reap(graceful=False)
            if "Address already in use" in self.log_text().rsplit("=== ", 1)[-1]:
                raise _PortInUse from None
            raise

    def _wait_ready(self) -> None:
        """Poll (bounded) until both the proxy port and the stats port accept connections."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise HarnessError(
                    f"{self.name} exited with code {code} during startup\n{self._log_excerpt()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(
                    f"{self.name} did not listen on {self.address} within "
                    f"{self.startup_timeout}s (last error: {last_error!r})\n{self._log_excerpt()}"
                )
            try:
                for port in (self._port, self._stats_port):
                    socket.create_connection((LOOPBACK, port), timeout=min(remaining, 0.5)).close()
            except OSError as exc:
                last_error = exc
                time.sleep(0.01)
                continue
            if self._proc.poll() is None:
                return

    def _reap(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM (nutcracker exits at once), SIGKILL after ``stop_timeout`` seconds."""
        self._reap(graceful=True)

    def kill(self) -> None:
        """SIGKILL and reap."""
        self._reap(graceful=False)

    def close(self) -> None:
        """Stop the process and delete its temp dir (config and log)."""
        try:
            self._reap(graceful=True)
        finally:
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    def __enter__(self) -> Self:
        if not self.is_running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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


class _PortInUse(Exception):
    pass
