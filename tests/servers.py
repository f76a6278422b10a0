"""Real-process integration harness: memcached variants, TLS material, a MemCachier gateway.

Everything here talks to real processes on the loopback interface (127.0.0.1) only,
on free ports, with a timeout on every wait.  Nothing imports ``layered_cache``: the
harness is checked with raw sockets / :mod:`ssl` only (``tests/test_harness.py``).

Protocol facts recorded by experiment against Debian's memcached 1.6.18
-----------------------------------------------------------------------

ASCII authentication (``-Y <authfile>``, lines ``username:password``):

* authenticate with ``set <anykey> <anyflags> <anyexptime> <n>\\r\\n<username> <password>\\r\\n``
  (the key, flags and exptime are ignored; ``<n>`` is the length of
  ``"<username> <password>"``) -> ``b"STORED\\r\\n"``.  The pair is *not* stored as an item.
* wrong user or password (well-formed token) -> ``b"CLIENT_ERROR authentication failure\\r\\n"``.
* a token without a space (e.g. ``user:pass``) -> ``b"CLIENT_ERROR bad authentication token
  format\\r\\n"``.
* a data block whose length does not match ``<n>`` -> ``b"CLIENT_ERROR bad command line
  termination\\r\\n"``.
* any other command before authenticating (``get``, ``version``, ``flush_all`` ...) ->
  ``b"CLIENT_ERROR unauthenticated\\r\\n"``.
* none of these close the connection: the client may retry on the same socket.  After a
  successful authentication a further ``set`` is an ordinary ``set``.

TLS (``-Z -o ssl_chain_cert=<pem>,ssl_key=<pem>``): works as is.  Mutual TLS additionally
needs ``ssl_ca_cert=<ca pem>,ssl_verify_mode=2`` (0 none, 1 request, 2 require, 3 once; any
other value makes memcached exit with ``Invalid ssl_verify_mode``).  Without a client
certificate, under TLS 1.3 the Python client's *handshake succeeds* and the refusal surfaces
on the first ``recv`` as ``SSLError(... TLSV13_ALERT_CERTIFICATE_REQUIRED ...)`` (a client
certificate from an unknown CA: ``TLSV1_ALERT_UNKNOWN_CA``); under TLS 1.2 the handshake
itself fails (``SSLV3_ALERT_HANDSHAKE_FAILURE``).  Plain text sent to a TLS port is answered
by a connection reset.

Stopping: memcached only notices SIGTERM/SIGINT on its once-a-second clock tick, so a
graceful stop takes about one second; SIGKILL is immediate.  :class:`ServerGroup` therefore
stops many processes in parallel.

MemCachier gateway (:class:`MemCachierGateway`), byte for byte:

* handshake ``set <username> 0 0 <len(password)>\\r\\n<password>\\r\\n`` -> ``b"STORED\\r\\n"``
  (not forwarded upstream); then bytes are piped both ways to a fresh upstream connection.
* anything else as the first bytes -> ``b"CLIENT_ERROR authentication failed\\r\\n"``, then the
  connection is closed (the gateway never answers "unauthenticated" and never lets a client
  retry on the same connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import trustme

from tests.harness import (
    COMMAND_TIMEOUT,
    LOOPBACK,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    ChildProcess,
    Closeable,
    HarnessError,
    Link,
    ThreadedProxy,
    Upstream,
    counter,
    find_program,
    free_port,
    pipe_both_ways,
)

MEMCACHED_ENV_VAR = "MEMCACHED_BIN"

__all__ = [
    "LOOPBACK",
    "HarnessError",
    "MemCachierGateway",
    "MemcachedProcess",
    "ServerGroup",
    "TLSMaterial",
    "addresses",
    "auth_token_command",
    "find_memcached",
    "free_port",
    "memcachier_handshake",
    "recv_until",
    "start_ascii_auth_memcached",
    "start_memcached",
    "start_mtls_memcached",
    "start_tls_memcached",
    "start_wrong_host_tls_memcached",
    "tls_server_args",
]


def find_memcached() -> str:
    """Return the path of the ``memcached`` binary (``$MEMCACHED_BIN`` or ``PATH``).

    Raises :class:`HarnessError` with instructions when it is missing: tests must fail
    loudly, never skip silently.
    """
    return find_program(
        "memcached",
        MEMCACHED_ENV_VAR,
        missing="memcached was not found on PATH (or $MEMCACHED_BIN): the integration tests "
        "need a real memcached >= 1.6 built with TLS. Run `bash .ci/run`, or install it "
        "(Debian/Ubuntu: `apt-get install memcached`; macOS: `brew install memcached`).",
    )


_ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


def recv_until(
    sock: socket.socket,
    suffix: bytes = b"\r\n",
    *,
    timeout: float = COMMAND_TIMEOUT,
    limit: int = 1 << 20,
) -> bytes:
    """Read from ``sock`` until the data ends with ``suffix`` and return everything read.

    A single error line (``ERROR``/``CLIENT_ERROR``/``SERVER_ERROR`` ... ``\\r\\n``) also ends
    the read, so asking for ``END\\r\\n`` cannot hang on an error reply.  Raises
    :class:`TimeoutError` after ``timeout`` seconds overall, :class:`ConnectionError` if the
    peer closes first, :class:`HarnessError` beyond ``limit`` bytes.
    """
    deadline = time.monotonic() + timeout
    buf = bytearray()
    previous_timeout = sock.gettimeout()
    try:
        while True:
            if buf.endswith(suffix):
                return bytes(buf)
            if (
                buf.endswith(b"\r\n")
                and buf.count(b"\r\n") == 1
                and buf.startswith(_ERROR_PREFIXES)
            ):
                return bytes(buf)
            if len(buf) > limit:
                raise HarnessError(f"response exceeds {limit} bytes: {bytes(buf[:200])!r}...")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete response within {timeout}s; got {bytes(buf)!r}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(
                    f"no complete response within {timeout}s; got {bytes(buf)!r}"
                ) from None
            if not chunk:
                raise ConnectionError(f"connection closed by peer after {bytes(buf)!r}")
            buf += chunk
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous_timeout)


def auth_token_command(username: str, password: str, key: str = "auth") -> bytes:
    """memcached's ``-Y`` login: ``set <key> 0 0 <n>\\r\\n<user> <pass>\\r\\n``."""
    token = f"{username} {password}".encode()
    return b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(token), token)


def memcachier_handshake(username: str, password: str) -> bytes:
    """MemCachier's handshake: ``set <username> 0 0 <len(password)>\\r\\n<password>\\r\\n``."""
    secret = password.encode()
    return b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret)


def tls_server_args(
    cert_file: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    *,
    ca_file: str | os.PathLike[str] | None = None,
    verify_mode: int | None = None,
) -> list[str]:
    """memcached arguments enabling TLS: ``-Z -o ssl_chain_cert=...,ssl_key=...``.

    For mutual TLS pass ``ca_file`` and ``verify_mode=2`` (require a client certificate).
    """
    options = [f"ssl_chain_cert={os.fspath(cert_file)}", f"ssl_key={os.fspath(key_file)}"]
    if ca_file is not None:
        options.append(f"ssl_ca_cert={os.fspath(ca_file)}")
    if verify_mode is not None:
        options.append(f"ssl_verify_mode={verify_mode}")
    for option in options:
        if "," in option:
            raise HarnessError(f"memcached -o cannot take a path containing ',': {option}")
    return ["-Z", "-o", ",".join(options)]


class TLSMaterial(Closeable):
    """Throw-away PKI built with :mod:`trustme`, written as PEM files into a temp dir.

    * ``ca_file``: the CA every server and client certificate below is issued by.
    * ``server_cert_file`` / ``server_key_file``: valid for ``127.0.0.1`` and ``localhost``.
    * ``client_cert_file`` / ``client_key_file``: a client certificate for mutual TLS.
    * ``wrong_host_cert_file`` / ``wrong_host_key_file``: a server certificate (same CA) valid
      only for ``wrong.example``, to provoke hostname mismatches.
    * ``untrusted_ca_file``: an unrelated CA; trusting only it must fail verification.
    * ``untrusted_client_cert_file`` / ``untrusted_client_key_file``: a client certificate
      issued by the unrelated CA (a mutual-TLS server must refuse it).

    Call :meth:`close` (or use it as a context manager) to delete the files.
    """

    WRONG_HOSTNAME = "wrong.example"

    def __init__(self) -> None:
        self.directory: Path = Path(tempfile.mkdtemp(prefix="layered-cache-tls-"))
        try:
            self.ca = trustme.CA(organization_name="layered_cache test CA")
            self.untrusted_ca = trustme.CA(organization_name="unrelated test CA")
            server = self.ca.issue_cert(LOOPBACK, "localhost")
            client = self.ca.issue_cert("client.layered-cache.test")
            wrong_host = self.ca.issue_cert(self.WRONG_HOSTNAME)
            untrusted_client = self.untrusted_ca.issue_cert("client.untrusted.test")

            self.ca_file: str = self._write_pem("ca.pem", [self.ca.cert_pem])
            self.untrusted_ca_file: str = self._write_pem(
                "untrusted-ca.pem", [self.untrusted_ca.cert_pem]
            )
            self.server_cert_file: str = self._write_pem("server.pem", server.cert_chain_pems)
            self.server_key_file: str = self._write_pem("server.key", [server.private_key_pem])
            self.client_cert_file: str = self._write_pem("client.pem", client.cert_chain_pems)
            self.client_key_file: str = self._write_pem("client.key", [client.private_key_pem])
            self.wrong_host_cert_file: str = self._write_pem(
                "wrong-host.pem", wrong_host.cert_chain_pems
            )
            self.wrong_host_key_file: str = self._write_pem(
                "wrong-host.key", [wrong_host.private_key_pem]
            )
            self.untrusted_client_cert_file: str = self._write_pem(
                "untrusted-client.pem", untrusted_client.cert_chain_pems
            )
            self.untrusted_client_key_file: str = self._write_pem(
                "untrusted-client.key", [untrusted_client.private_key_pem]
            )
        except BaseException:
            self.close()
            raise

    def _write_pem(self, name: str, blobs: Sequence[trustme.Blob]) -> str:
        path = self.directory / name
        path.write_bytes(b"".join(blob.bytes() for blob in blobs))
        path.chmod(0o600)
        return str(path)

    def client_context(
        self,
        *,
        client_cert: bool = False,
        trusted: bool = True,
        check_hostname: bool = True,
    ) -> ssl.SSLContext:
        """An :class:`ssl.SSLContext` for clients.

        ``trusted=False`` trusts only the unrelated CA; ``client_cert=True`` presents the
        client certificate (mutual TLS); ``check_hostname=False`` still verifies the chain.
        """
        context = ssl.create_default_context(
            cafile=self.ca_file if trusted else self.untrusted_ca_file
        )
        context.check_hostname = check_hostname
        if client_cert:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context

    def close(self) -> None:
        """Delete the PEM files."""
        shutil.rmtree(self.directory, ignore_errors=True)


class MemcachedProcess(ChildProcess):
    """One real ``memcached`` process on ``127.0.0.1:<port>``.

    Always started with ``-l 127.0.0.1 -p <port> -U 0 -m 64 -t 2`` (plus ``-u root`` when
    running as root, which memcached otherwise refuses), then ``extra_args``.

    ``ssl_context`` (and ``server_hostname``) tell the harness how to reach a TLS server for
    its own readiness probe, :meth:`flush`, :meth:`stats` and :meth:`command`;
    ``credentials=(username, password)`` writes a 0600 auth file, adds ``-Y <file>`` and makes
    those helpers authenticate first.

    Ports, the log (:meth:`log_text`), starting, stopping and the bounded readiness wait
    are :class:`~tests.harness.ChildProcess`'s; memcached counts as ready when the port
    accepts connections *and* answers ``version``.  :meth:`restart` keeps the port.
    """

    program = "memcached"

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str = LOOPBACK,
        credentials: tuple[str, str] | None = None,
        name: str = "memcached",
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        super().__init__(
            port=port, name=name, startup_timeout=startup_timeout, stop_timeout=stop_timeout
        )
        self.extra_args: list[str] = list(extra_args)
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.credentials = credentials
        self._paused = False

    # -- identity -------------------------------------------------------------------------
    @property
    def username(self) -> str | None:
        """ASCII-auth user name, or None without ``credentials``."""
        return self.credentials[0] if self.credentials else None

    @property
    def password(self) -> str | None:
        """ASCII-auth password, or None without ``credentials``."""
        return self.credentials[1] if self.credentials else None

    @property
    def tls(self) -> bool:
        """True when the harness reaches this server over TLS."""
        return self.ssl_context is not None

    @property
    def is_paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused and self.is_running

    def __repr__(self) -> str:
        state = "paused" if self.is_paused else "running" if self.is_running else "stopped"
        return f"<MemcachedProcess {self.name} {self.address} {state}>"

    # -- files ----------------------------------------------------------------------------
    @property
    def auth_file(self) -> Path | None:
        """The ``-Y`` auth file, when ``credentials`` were given."""
        return self._dir() / "authfile" if self.credentials else None

    def command_line(self) -> list[str]:
        """The argv used by :meth:`start`."""
        argv = [find_memcached(), "-l", LOOPBACK, "-p", str(self._port), "-U", "0"]
        argv += ["-m", "64", "-t", "2"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        if self.auth_file is not None:
            argv += ["-Y", str(self.auth_file)]
        return argv + self.extra_args

    def prepare(self) -> None:
        """Write the auth file (0600) when ``credentials`` were given."""
        self._paused = False
        if self.credentials is None or self.auth_file is None:
            return
        username, password = self.credentials
        if ":" in username or "\n" in username + password:
            raise HarnessError("auth file user names cannot contain ':' or newlines")
        fd = os.open(self.auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{username}:{password}\n")
        os.chmod(self.auth_file, 0o600)

    # -- lifecycle ------------------------------------------------------------------------
    def probe(self, timeout: float) -> None:
        """Ready when the port accepts a connection *and* answers ``version``.

        A TLS certificate or authentication refusal is definitive and fails at once.
        """
        super().probe(timeout)
        try:
            reply = self.command(b"version\r\n", timeout=max(timeout, 0.05), wait_running=False)
        except (ssl.SSLCertVerificationError, HarnessError) as exc:
            raise HarnessError(
                f"{self.name} on {self.address} accepts connections but the harness cannot "
                f"talk to it: {exc!r}\n{self.log_excerpt()}"
            ) from exc
        if not reply.startswith(b"VERSION "):
            raise HarnessError(
                f"{self.name} on {self.address}: unexpected reply to version: {reply!r}\n"
                f"{self.log_excerpt()}"
            )

    def _reap(self, *, graceful: bool, timeout: float | None = None) -> None:
        self._paused = False
        super()._reap(graceful=graceful, timeout=timeout)

    def restart(self, *, graceful: bool = True) -> Self:
        """Stop (SIGTERM, or SIGKILL with ``graceful=False``) and start on the same port."""
        self._reap(graceful=graceful)
        return self.start()

    def ensure_running(self) -> Self:
        """Resume if paused, start (same port) if stopped or crashed."""
        if self.is_paused:
            self.resume()
        if not self.is_running:
            self._reap(graceful=False)
            self.start()
        return self

    def _proc_state(self) -> str | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return stat.rsplit(")", 1)[-1].split()[0]

    def _wait_state(self, stopped: bool, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self._proc_state()
            if state is None or (state in ("T", "t")) == stopped:
                return
            time.sleep(0.005)
        raise HarnessError(f"{self!r} did not become {'stopped' if stopped else 'running'}")

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel but nothing is answered."""
        if self._proc is None or not self.is_running:
            raise HarnessError(f"cannot pause {self!r}")
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True
        self._wait_state(stopped=True)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is None or not self.is_running:
            raise HarnessError(f"cannot resume {self!r}")
        self._proc.send_signal(signal.SIGCONT)
        self._paused = False
        self._wait_state(stopped=False)

    # -- talking to it --------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(
        self, *, timeout: float = COMMAND_TIMEOUT, authenticate: bool = True
    ) -> Iterator[socket.socket]:
        """A raw connection as the harness uses it: TLS-wrapped and authenticated as needed."""
        raw = socket.create_connection((LOOPBACK, self._port), timeout=timeout)
        sock: socket.socket = raw
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(raw, server_hostname=self.server_hostname)
            if authenticate and self.credentials is not None:
                sock.sendall(auth_token_command(*self.credentials))
                reply = recv_until(sock, timeout=timeout)
                if reply != b"STORED\r\n":
                    raise HarnessError(f"{self.name}: authentication refused: {reply!r}")
            yield sock
        finally:
            sock.close()
            raw.close()

    def command(
        self,
        data: bytes,
        *,
        until: bytes = b"\r\n",
        timeout: float = COMMAND_TIMEOUT,
        wait_running: bool = True,
    ) -> bytes:
        """Send ``data`` on a new harness connection; return the reply (see :func:`recv_until`)."""
        if wait_running and self.is_paused:
            raise HarnessError(f"{self!r} is paused; resume() it first")
        with self.connect(timeout=timeout) as sock:
            sock.sendall(data)
            return recv_until(sock, until, timeout=timeout)

    def flush(self) -> None:
        """``flush_all`` over the harness connection (TLS/auth aware); expects ``OK``.

        memcached reclaims flushed items lazily, so ``curr_items`` would still count
        them for up to a second; the LRU crawler is asked to reclaim them now, and
        the flush returns once the server reports itself empty (bounded).
        """
        reply = self.command(b"flush_all\r\n")
        if reply != b"OK\r\n":
            raise HarnessError(f"{self.name}: flush_all answered {reply!r}")
        self.command(b"lru_crawler crawl all\r\n")  # OK, or BUSY: either way it crawls
        deadline = time.monotonic() + 2.0
        while self.stats().get("curr_items", "0") != "0" and time.monotonic() < deadline:
            time.sleep(0.005)

    def stats(self, group: str = "") -> dict[str, str]:
        """``stats [group]`` as a dict of strings."""
        line = f"stats {group}".strip().encode() + b"\r\n"
        reply = self.command(line, until=b"END\r\n")
        result: dict[str, str] = {}
        for row in reply.decode().splitlines():
            parts = row.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                result[parts[1]] = parts[2]
        return result


def start_memcached(extra_args: Sequence[str] = (), *, port: int | None = None) -> MemcachedProcess:
    """Start a plain-TCP memcached; closes it again if startup fails."""
    return _started(MemcachedProcess(extra_args, port=port))


def _started(process: MemcachedProcess) -> MemcachedProcess:
    try:
        process.start()
    except BaseException:
        process.close(graceful=False)
        raise
    return process


def start_tls_memcached(material: TLSMaterial, extra_args: Sequence[str] = ()) -> MemcachedProcess:
    """memcached with TLS only (certificate for 127.0.0.1/localhost), no client certs."""
    args = tls_server_args(material.server_cert_file, material.server_key_file)
    return _started(
        MemcachedProcess(
            [*args, *extra_args], ssl_context=material.client_context(), name="memcached-tls"
        )
    )


def start_mtls_memcached(material: TLSMaterial, extra_args: Sequence[str] = ()) -> MemcachedProcess:
    """memcached requiring a client certificate issued by ``material.ca_file``."""
    args = tls_server_args(
        material.server_cert_file,
        material.server_key_file,
        ca_file=material.ca_file,
        verify_mode=2,
    )
    return _started(
        MemcachedProcess(
            [*args, *extra_args],
            ssl_context=material.client_context(client_cert=True),
            name="memcached-mtls",
        )
    )


def start_wrong_host_tls_memcached(
    material: TLSMaterial, extra_args: Sequence[str] = ()
) -> MemcachedProcess:
    """TLS memcached whose (CA-valid) certificate names only ``wrong.example``."""
    args = tls_server_args(material.wrong_host_cert_file, material.wrong_host_key_file)
    return _started(
        MemcachedProcess(
            [*args, *extra_args],
            ssl_context=material.client_context(),
            server_hostname=TLSMaterial.WRONG_HOSTNAME,
            name="memcached-wrong-host",
        )
    )


def start_ascii_auth_memcached(
    username: str, password: str, extra_args: Sequence[str] = ()
) -> MemcachedProcess:
    """memcached with ``-Y`` ASCII authentication for one ``username:password``."""
    return _started(
        MemcachedProcess(extra_args, credentials=(username, password), name="memcached-auth")
    )


class ServerGroup(Closeable):
    """Owns several :class:`MemcachedProcess` and closes them all at once.

    memcached needs ~1 s to honour SIGTERM, so :meth:`close` signals every process first
    and only then waits (bounded), instead of paying a second per process.
    """

    def __init__(self) -> None:
        self.processes: list[MemcachedProcess] = []

    def add(self, process: MemcachedProcess) -> MemcachedProcess:
        """Register ``process`` (before starting it, so a failed start is still cleaned)."""
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Stop every process (SIGTERM in parallel, SIGKILL after 5 s) and delete temp dirs."""
        processes, self.processes = self.processes, []
        for process in processes:
            process.signal_stop()
        errors: list[BaseException] = []
        for process in processes:
            try:
                process.close()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        if errors:
            raise HarnessError(f"errors while stopping servers: {errors!r}")


@dataclass(eq=False)
class _GatewayLink(Link):
    authenticated: bool = False


class MemCachierGateway(ThreadedProxy[_GatewayLink]):
    """An asyncio TCP proxy that enforces MemCachier's handshake in front of a memcached.

    Listens on ``127.0.0.1:<port>`` (``port=0``: the OS picks a free one) from its own event
    loop in a daemon thread (a :class:`~tests.harness.ThreadedProxy`).  A new connection
    must first send exactly ``set <username> 0 0 <len(password)>\\r\\n<password>\\r\\n`` (see
    :func:`memcachier_handshake`); the handshake may arrive in pieces and may be followed
    by pipelined commands.  On an exact match the gateway answers ``STORED\\r\\n`` without
    forwarding the handshake, opens a fresh connection to ``upstream.host:upstream.port``
    (looked up per connection, so an upstream restarted on the same port is found again)
    and pipes bytes both ways.  Anything else -- a wrong byte, a non-``set`` command, more
    than ``max_handshake_bytes`` or ``handshake_timeout`` seconds without a complete
    handshake -- gets ``CLIENT_ERROR authentication failed\\r\\n`` and the connection is
    closed.  A connection closed before sending any byte counts as neither success nor
    failure.  If the upstream cannot be reached after a good handshake the client gets
    ``SERVER_ERROR upstream unavailable\\r\\n`` and is closed (still a successful handshake).

    Counters (thread-safe): ``connections`` (accepted), ``handshakes`` (successful),
    ``failed_handshakes``; :meth:`reset_counts`.  :meth:`drop_connections` closes every
    client connection now, like a hosted service dropping idle connections.
    """

    OK_REPLY = b"STORED\r\n"
    FAILED_REPLY = b"CLIENT_ERROR authentication failed\r\n"
    UPSTREAM_DOWN_REPLY = b"SERVER_ERROR upstream unavailable\r\n"

    def __init__(
        self,
        upstream: Upstream,
        username: str,
        password: str,
        *,
        port: int = 0,
        handshake_timeout: float = 5.0,
        max_handshake_bytes: int = 1024,
        upstream_connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(upstream, name="memcachier-gateway", port=port)
        self.username = username
        self.password = password
        self.handshake_timeout = handshake_timeout
        self.max_handshake_bytes = max_handshake_bytes
        self.upstream_connect_timeout = upstream_connect_timeout
        self.expected_handshake: bytes = memcachier_handshake(username, password)
        if len(self.expected_handshake) > max_handshake_bytes:
            raise HarnessError("the handshake is longer than max_handshake_bytes")

    connections = counter("Client connections accepted since the last reset_counts().")
    handshakes = counter("Successful handshakes since the last reset_counts().")
    failed_handshakes = counter("Refused handshakes since the last reset_counts().")

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        return f"<MemCachierGateway {where} -> {self.upstream.host}:{self.upstream.port}>"

    def drop_connections(self, *, abort: bool = False) -> int:
        """Close every client connection (FIN; ``abort=True``: RST) and its upstream.

        Returns how many were closed; waits (bounded) until their handlers finished.
        """

        async def action() -> int:
            return await self.close_links(list(self._links), rst=abort)

        return self.control(action)

    # -- per-connection logic (runs on the gateway loop) -----------------------------------
    def new_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _GatewayLink:
        """A connection, not authenticated yet."""
        return _GatewayLink(client_reader=reader, client=writer)

    async def serve(self, link: _GatewayLink) -> None:
        """Check the handshake, then pipe bytes both ways to a fresh upstream connection."""
        reader, writer = link.client_reader, link.client
        expected = self.expected_handshake
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handshake_timeout
        buf = bytearray()
        while len(buf) < len(expected):
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._refuse(reader, writer)
                return
            try:
                chunk = await asyncio.wait_for(
                    reader.read(self.max_handshake_bytes - len(buf)), remaining
                )
            except TimeoutError:
                await self._refuse(reader, writer)
                return
            if not chunk:  # closed before completing the handshake
                if buf:
                    self.count("failed_handshakes")
                return
            buf += chunk
            seen = min(len(buf), len(expected))
            if buf[:seen] != expected[:seen]:
                await self._refuse(reader, writer)
                return

        self.count("handshakes")
        link.authenticated = True
        leftover = bytes(buf[len(expected) :])
        try:
            up_reader, up_writer = await self.connect_upstream(link, self.upstream_connect_timeout)
        except (OSError, TimeoutError):
            writer.write(self.UPSTREAM_DOWN_REPLY)
            await asyncio.wait_for(writer.drain(), 2.0)
            return
        writer.write(self.OK_REPLY)
        await writer.drain()
        if leftover:
            up_writer.write(leftover)
            await up_writer.drain()

        await pipe_both_ways(reader, writer, up_reader, up_writer)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count("failed_handshakes")
        writer.write(self.FAILED_REPLY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(writer.drain(), 2.0)
        if writer.can_write_eof():
            writer.write_eof()
        # Swallow what the client is still sending (bounded) so that closing does not turn
        # into a RST that could destroy the error reply before the client reads it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_discard(reader, limit=64 * 1024), 1.0)


async def _discard(reader: asyncio.StreamReader, *, limit: int) -> None:
    total = 0
    while total < limit:
        chunk = await reader.read(4096)
        if not chunk:
            return
        total += len(chunk)


def addresses(servers: Iterable[MemcachedProcess | MemCachierGateway]) -> list[str]:
    """``["127.0.0.1:P1", ...]`` for a list of servers (handy for client configuration)."""
    return [server.address for server in servers]
