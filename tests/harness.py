"""What the test servers have in common: a supervised child process and a threaded TCP proxy.

* :class:`ChildProcess` runs a server program (memcached, nutcracker) on 127.0.0.1: a
  port chosen once (retried on a collision before the first start), a temp dir with its
  log, a bounded wait until it answers (:meth:`ChildProcess.wait_ready`), SIGTERM then
  SIGKILL to stop, and a safety net that kills leftovers at interpreter exit.
* :class:`ThreadedProxy` listens on 127.0.0.1 from its own asyncio event loop in a daemon
  thread and hands every accepted connection (a :class:`Link`) to its subclass: the
  MemCachier gateway, the fault proxy and the docs' TLS terminator are such proxies.
  Control calls from the test's thread run on that loop and are bounded.

Like the rest of the harness, nothing here imports ``layered_cache``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, Protocol, Self, TypeVar

__all__ = [
    "COMMAND_TIMEOUT",
    "LOOPBACK",
    "STARTUP_TIMEOUT",
    "STOP_TIMEOUT",
    "ChildProcess",
    "Closeable",
    "HarnessError",
    "Link",
    "ThreadedProxy",
    "Upstream",
    "counter",
    "find_program",
    "free_port",
    "pump",
    "upstream_of",
]

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 2.0

_CHUNK = 64 * 1024
_LINGER_OFF = struct.pack("ii", 1, 0)

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The harness could not start, reach or stop a server; the message says why."""


def find_program(name: str, env_var: str, *, missing: str, search: str | None = None) -> str:
    """The path of program ``name``: ``$env_var``, else ``PATH``, else the ``search`` path.

    Raises :class:`HarnessError` with ``missing`` (which says how to install it) when it
    is not there: tests must fail loudly, never skip silently.
    """
    candidate = (
        os.environ.get(env_var)
        or shutil.which(name)
        or (shutil.which(name, path=search) if search else None)
    )
    if not candidate or not os.access(candidate, os.X_OK):
        raise HarnessError(missing)
    return candidate


class Closeable:
    """Closed at the end of a ``with`` block: ``__exit__`` calls :meth:`close`."""

    def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class counter:
    """A read-only attribute: the value of the proxy's counter of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, proxy: ThreadedProxy[Any] | None, owner: type | None = None) -> Any:
        return self if proxy is None else proxy.counted(self.name)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process could take it; callers
    that bind it later (:class:`ChildProcess`) retry with a new port on a collision.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# -- child processes --------------------------------------------------------------------

_LIVE: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net only
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.close(graceful=False)


class _PortInUse(Exception):
    pass


class ChildProcess(Closeable):
    """A server program on ``127.0.0.1:<port>``, started and stopped by the tests.

    Subclasses give :meth:`command_line` and may add to :meth:`prepare` (files to write
    before a start), :meth:`spawn` (how the process is started) and :meth:`probe` (what
    "ready" means beyond accepting connections on :meth:`ports`).

    The port is chosen once (``port=None`` -> :func:`free_port`) and kept across
    restarts; with an automatically chosen port that turns out to be taken, the first
    start retries on new ports.  :meth:`start` waits at most ``startup_timeout`` seconds
    until the program answers; its log (:meth:`log_text`) is quoted in every startup
    error.  Use as a context manager, or call :meth:`close`, to stop the process and
    delete its temp dir.
    """

    #: The program's name in messages and the log's file name.
    program = "server"

    def __init__(
        self,
        *,
        port: int | None,
        name: str,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.name = name
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._port_fixed = port is not None
        self._port: int = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None
        self._ever_started = False

    # -- identity ---------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The TCP port clients connect to, kept across restarts."""
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The process id while running, else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        """True while the process exists."""
        return self._proc is not None and self._proc.poll() is None

    def ports(self) -> list[int]:
        """The ports that must accept connections before the program counts as ready."""
        return [self._port]

    def choose_new_ports(self) -> None:
        """Pick free ports again after a collision."""
        self._port = free_port()

    # -- files ------------------------------------------------------------------------------
    def _dir(self) -> Path:
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        return self._tmpdir

    @property
    def log_file(self) -> Path:
        """The program's output, every start appended."""
        return self._dir() / f"{self.program}.log"

    def log_text(self) -> str:
        """The program's output so far (empty if none)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_excerpt(self) -> str:
        """The end of the log, for error messages."""
        text = self.log_text().strip() or "(nothing)"
        return f"{self.program} output ({self.log_file}):\n{text[-4000:]}"

    def command_line(self) -> list[str]:
        """The argv :meth:`start` runs."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Write what the program reads at start-up (nothing by default)."""

    def spawn(self, argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the program with its output going to ``log``."""
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )

    def start(self) -> Self:
        """Start the program and wait until it answers; raise :class:`HarnessError` on failure."""
        if self.is_running:
            raise HarnessError(f"{self!r} is already running")
        attempts = 1 if (self._port_fixed or self._ever_started) else 3
        for attempt in range(attempts):
            try:
                self._start_once()
            except _PortInUse:
                if attempt + 1 >= attempts:
                    ports = "/".join(str(port) for port in self.ports())
                    raise HarnessError(
                        f"{self.name}: port {ports} already in use\n{self.log_excerpt()}"
                    ) from None
                self.choose_new_ports()
            else:
                self._ever_started = True
                _LIVE.add(self)
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        self.prepare()
        argv = self.command_line()
        with self.log_file.open("ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self._proc = self.spawn(argv, log)
        try:
            self.wait_ready()
        except BaseException:
            self._reap(graceful=False)
            if "Address already in use" in self.log_text().rsplit("=== ", 1)[-1]:
                raise _PortInUse from None
            raise

    def probe(self, timeout: float) -> None:
        """Raise :class:`OSError` while the program is not ready yet; return when it is.

        By default: every port of :meth:`ports` accepts a connection.  A
        :class:`HarnessError` means it never will be.
        """
        for port in self.ports():
            socket.create_connection((LOOPBACK, port), timeout=timeout).close()

    def wait_ready(self) -> None:
        """Poll :meth:`probe` until it passes, the process exits, or ``startup_timeout`` ends.

        Each attempt is short and the process is re-checked in between, so a port held by
        some other program (which accepts but never answers) cannot eat the whole budget
        before the program's own "Address already in use" exit is noticed.
        """
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise HarnessError(
                    f"{self.name} exited with code {code} during startup: "
                    f"{' '.join(self.command_line())}\n{self.log_excerpt()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(
                    f"{self.name} did not answer on {self.address} within "
                    f"{self.startup_timeout}s (last error: {last_error!r})\n{self.log_excerpt()}"
                )
            try:
                self.probe(min(remaining, 0.5))
            except OSError as exc:  # not listening yet, or not answering yet
                last_error = exc
                time.sleep(0.01)
                continue
            if self._proc.poll() is None:
                return

    def _reap(self, *, graceful: bool, timeout: float | None = None) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM
                if graceful:
                    proc.terminate()
                else:
                    proc.kill()
        try:
            proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def signal_stop(self) -> None:
        """Send SIGTERM without waiting (to stop many processes in parallel)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()

    def stop(self, *, timeout: float | None = None) -> None:
        """SIGTERM, wait up to ``timeout`` (default ``stop_timeout``), then SIGKILL."""
        self._reap(graceful=True, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL and reap: an immediate crash-like stop."""
        self._reap(graceful=False)

    def close(self, *, graceful: bool = True) -> None:
        """Stop the process and delete its temp dir."""
        try:
            self._reap(graceful=graceful)
        finally:
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    def __enter__(self) -> Self:
        if not self.is_running:
            try:
                self.start()
            except BaseException:
                self.close(graceful=False)
                raise
        return self


# -- threaded proxies -------------------------------------------------------------------


class Upstream(Protocol):
    """Where a proxy forwards to: re-read per connection, so a restarted server is found."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class _FixedUpstream:
    host: str
    port: int


def upstream_of(upstream: Upstream | tuple[str, int] | str) -> Upstream:
    """``upstream`` as an :class:`Upstream`, from a ``(host, port)`` or ``"host:port"`` too."""
    if isinstance(upstream, str):
        host, _, port = upstream.rpartition(":")
        return _FixedUpstream(host, int(port))
    if isinstance(upstream, tuple):
        return _FixedUpstream(*upstream)
    return upstream


@dataclass(eq=False)
class Link:
    """One proxied connection: the client's side and, once connected, the upstream's."""

    client_reader: asyncio.StreamReader
    client: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    upstream_reader: asyncio.StreamReader | None = None
    upstream: asyncio.StreamWriter | None = None
    closed: bool = False

    def close(self, *, rst: bool = False) -> None:
        """Close both sides (idempotent); ``rst``: reset the client side instead of FIN."""
        self.closed = True
        if rst:
            sock = self.client.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
            self.client.transport.abort()
            if self.upstream is not None:
                self.upstream.transport.abort()
        else:
            self.client.close()
            if self.upstream is not None:
                self.upstream.close()


LinkT = TypeVar("LinkT", bound=Link)


async def pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    *,
    half_close: bool = False,
    close: bool = False,
) -> None:
    """Copy ``source`` to ``sink`` until end of stream or a connection error.

    At the end, ``half_close`` passes the end of stream on (``write_eof``; after a
    connection error, such as a reset, ``sink`` is closed: nothing more can be delivered
    to a peer that is gone) and ``close`` closes ``sink`` (for TLS, which cannot
    half-close).
    """
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if half_close and sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
    except (ConnectionError, OSError):
        if half_close:
            sink.close()
    finally:
        if close:
            sink.close()


async def pipe_both_ways(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Pipe a client and its upstream connection both ways until the upstream side ends.

    Upstream EOF/error or a failed write to the client ends the session; a client EOF is
    passed on (``write_eof``) and memcached then closes its side.
    """
    to_client = asyncio.create_task(pump(up_reader, writer))
    to_upstream = asyncio.create_task(pump(reader, up_writer, half_close=True))
    try:
        await to_client
    finally:
        for task in (to_client, to_upstream):
            task.cancel()
        await asyncio.gather(to_client, to_upstream, return_exceptions=True)


class ThreadedProxy(Closeable, Generic[LinkT]):
    """A loopback TCP server on its own event loop thread, one :class:`Link` per connection.

    Subclasses implement :meth:`new_link` (when they keep more per connection) and
    :meth:`serve`; they may refuse a connection in :meth:`admit`.  :meth:`start` listens
    (``port=0``: a free port) and raises :class:`HarnessError` within
    ``STARTUP_TIMEOUT``; :meth:`stop` closes the listener and every connection, stops the
    loop and joins the thread, bounded.  Counters are kept
    thread-safe (:meth:`count`, :meth:`counted`, :meth:`reset_counts`; a :class:`counter`
    attribute reads one); ``connections`` counts accepted connections.
    """

    def __init__(
        self,
        upstream: Upstream | tuple[str, int] | str,
        *,
        name: str,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream: Upstream = upstream_of(upstream)
        self.name = name
        self._requested_port = port
        self._ssl_context = ssl_context
        self._port: int | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._links: set[LinkT] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._startup_error: BaseException | None = None

    # -- identity and counters --------------------------------------------------------------
    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The listening port (after :meth:`start`)."""
        if self._port is None:
            raise HarnessError(f"{self.name} is not started")
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``: what clients connect to."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def active_connections(self) -> int:
        """Connections open right now."""
        return len(self._links)

    def counted(self, name: str) -> int:
        """The counter ``name`` since start (or :meth:`reset_counts`)."""
        with self._lock:
            return self._counts.get(name, 0)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def reset_counts(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts.clear()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the loop thread and listen; raise :class:`HarnessError` on failure (bounded)."""
        if self._thread is not None:
            raise HarnessError(f"{self!r} already started")
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(STARTUP_TIMEOUT):
            self.stop()
            raise HarnessError(f"{self.name} did not start within {STARTUP_TIMEOUT} s")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise HarnessError(f"{self.name} could not listen: {error!r}") from error
        return self

    def listening(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the loop once it listens (nothing by default)."""

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, LOOPBACK, self._requested_port, ssl=self._ssl_context
                    )
                )
                self._port = self._server.sockets[0].getsockname()[1]
                self.listening(loop)
            except Exception as exc:
                self._startup_error = exc
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def stopped_by_itself(self) -> bool:
        """True when the proxy has begun stopping on its own (never, by default)."""
        return False

    async def shutdown(self) -> None:
        """Stop listening and close every connection (on the loop)."""
        server = self._server
        if server is not None:
            server.close()
        await self.close_links(list(self._links), rst=False)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def stop(self) -> None:
        """Stop listening, close every connection, stop the loop and join the thread (bounded)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive() and not loop.is_closed() and not self.stopped_by_itself():
            with contextlib.suppress(RuntimeError):
                future = asyncio.run_coroutine_threadsafe(self.shutdown(), loop)
                with contextlib.suppress(Exception):
                    future.result(timeout=STOP_TIMEOUT)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise HarnessError(f"{self.name} did not stop within {STOP_TIMEOUT} s")
        self._thread = None
        self._loop = None
        self._server = None

    def wait_stopped(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the proxy's thread has ended; True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def close(self) -> None:
        """The same as :meth:`stop`."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    # -- control (called from the test's thread) --------------------------------------------
    def control(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run ``action`` on the proxy's loop and return its result (bounded)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or self.stopped_by_itself():
            raise HarnessError(f"{self!r} is not running")

        async def run() -> T:
            return await action()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=STOP_TIMEOUT)

    async def close_links(self, links: Iterable[LinkT], *, rst: bool) -> int:
        """Close ``links`` and wait (bounded) until their handlers finished; return how many."""
        links = list(links)
        for link in links:
            link.close(rst=rst)
        tasks = [link.task for link in links if link.task is not None and not link.task.done()]
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=2.0)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running, timeout=1.0)
        return len(links)

    # -- per-connection work (on the proxy's loop) ------------------------------------------
    def new_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> LinkT:
        """The record of a new connection."""
        raise NotImplementedError

    def admit(self, link: LinkT) -> bool:
        """Whether to serve a new connection (yes, by default)."""
        return True

    async def serve(self, link: LinkT) -> None:
        """Handle one connection until it ends."""
        raise NotImplementedError

    async def connect_upstream(
        self, link: LinkT, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open (and return) ``link``'s upstream connection; OSError or TimeoutError if not."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.upstream.host, self.upstream.port), timeout
        )
        link.upstream_reader, link.upstream = reader, writer
        return reader, writer

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = self.new_link(reader, writer)
        link.task = asyncio.current_task()
        if not self.admit(link):
            return
        self._links.add(link)
        self.count("connections")
        try:
            await self.serve(link)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            # Always (again): an upstream that connected after a reset or drop closed
            # this link has not been closed yet.
            link.close()
            for stream in (link.client, link.upstream):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stream.wait_closed(), 1.0)
