"""A fault-injecting TCP proxy for the tests: put it between a client and a real memcached.

:class:`FaultProxy` listens on ``127.0.0.1:<free port>`` from its own asyncio event loop in
a daemon thread.  Every accepted connection gets its own fresh connection to the upstream
(looked up per connection, so a memcached restarted on the same port is found again) and
bytes are piped both ways.  The test steers it from its own thread; every control method
takes effect before it returns.

Modes (one proxy can combine a delay with an armed cut; :meth:`FaultProxy.restore` ends
them all):

``delay(seconds)``
    Hold every server->client chunk until ``seconds`` after it arrived from the server,
    on every connection, including chunks already held.  Requests still reach the server
    at once, so the server *executes* a command whose reply is late: a reply delayed past
    the client timeout arrives later on the same connection, exactly the situation in which
    a client that reuses a timed-out connection reads the previous call's reply.  Held
    bytes are bounded (``max_held_bytes`` per connection; beyond that the server is no
    longer read, TCP back-pressure).

``cut_mid_response(after=None)``
    Arm a one-shot cut: the next server->client bytes, on whichever connection they come,
    are forwarded only up to ``after`` bytes (default: half of the first chunk), then both
    sides of that connection are closed (FIN).  The server has executed the command; the
    client sees a truncated reply and then end-of-stream.  Calls arm more cuts.

``reset()``
    Reset every open connection now: the client side is closed with ``SO_LINGER`` 0 (the
    kernel sends RST, the client's next ``recv``/``send`` fails with ECONNRESET), the
    upstream side is aborted.  New connections are proxied normally.  Returns how many
    were reset.

``drop()``
    Close every open connection with a plain FIN, like a server or a hosted service
    (MemCachier) dropping idle connections.  Returns how many were closed.

``blackhole()``
    Accept and read, but never answer or forward anything: requests on open connections are
    swallowed, replies still coming from the server are discarded, and new connections are
    accepted (the kernel completes the TCP handshake) but never connected upstream.  This is
    a stalled server or a network partition: the client's only way out is its timeout.

``restore()``
    Back to a transparent proxy: delay 0 (held bytes flow at once), blackhole off, armed
    cuts disarmed.  Connections that swallowed bytes while black-holed lost requests, so
    they are closed (FIN); a well-behaved client has discarded them anyway.

Counters (readable from any thread): ``connections`` (accepted), ``active_connections``
(open now), ``upstream_failures`` (accepted but the upstream could not be reached: the
client connection is reset), ``resets``, ``drops``, ``cuts``, ``swallowed_bytes``,
``refused`` (over ``max_connections``); :meth:`FaultProxy.reset_counts`.

Example::

    with FaultProxy(memcached) as proxy:
        client = Client(proxy.address, timeout=0.2)
        proxy.delay(5)           # the next replies arrive long after the client gave up
        ...
        proxy.restore()

An accepted connection whose upstream cannot be reached (memcached stopped or restarting)
is reset, the closest an accepting proxy can get to "connection refused".

Bounds: loopback only (it listens on 127.0.0.1 and refuses a non-loopback upstream), at
most ``max_connections`` at a time (more are reset at once), at most ``max_held_bytes``
held per connection, every control call waits at most ``CONTROL_TIMEOUT`` seconds, and the
proxy stops by itself after ``max_lifetime`` seconds (closing everything) if the test
forgets, as well as on :meth:`FaultProxy.stop` / context exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, TypeVar

from tests.servers import LOOPBACK, HarnessError

__all__ = ["CONTROL_TIMEOUT", "FaultProxy"]

CONTROL_TIMEOUT = 5.0
_CHUNK = 64 * 1024
_UPSTREAM_CONNECT_TIMEOUT = 2.0
_LINGER_OFF = struct.pack("ii", 1, 0)

T = TypeVar("T")


class _Upstream(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class _FixedUpstream:
    host: str
    port: int


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client side, its upstream, and the held reply bytes."""

    client_reader: asyncio.StreamReader
    client: asyncio.StreamWriter
    upstream_reader: asyncio.StreamReader | None = None
    upstream: asyncio.StreamWriter | None = None
    held: deque[tuple[float, bytes]] = field(default_factory=deque)
    held_bytes: int = 0
    upstream_eof: bool = False
    tainted: bool = False  # swallowed bytes while black-holed
    cut_left: int | None = None  # bytes still to forward before a cut; None: no cut armed
    cut_half: bool = False  # the cut's length is half of the next chunk
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
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
        self.wake.set()
        self.room.set()


class FaultProxy:
    """A loopback TCP proxy in front of a real server that breaks things on command.

    See the module docstring for the modes.  Use as a context manager, or call
    :meth:`start` and :meth:`stop`.

    Args:
        upstream: where to forward: anything with ``host``/``port`` (a
            :class:`~tests.servers.MemcachedProcess`, re-read per connection), a
            ``(host, port)`` tuple or a ``"host:port"`` string.  Must be loopback.
        name: shown in the repr and the thread name.
        max_lifetime: seconds after :meth:`start` at which the proxy stops by itself.
        max_connections: connections open at once; more are reset on accept.
        max_held_bytes: reply bytes held per connection while delaying.
    """

    def __init__(
        self,
        upstream: _Upstream | tuple[str, int] | str,
        *,
        name: str = "fault-proxy",
        max_lifetime: float = 120.0,
        max_connections: int = 256,
        max_held_bytes: int = 16 << 20,
    ) -> None:
        if isinstance(upstream, str):
            host, _, port = upstream.rpartition(":")
            upstream = _FixedUpstream(host, int(port))
        elif isinstance(upstream, tuple):
            upstream = _FixedUpstream(*upstream)
        if not ipaddress.ip_address(upstream.host).is_loopback:
            raise HarnessError(f"FaultProxy forwards to loopback only, not {upstream.host!r}")
        self.upstream: _Upstream = upstream
        self.name = name
        self.max_lifetime = max_lifetime
        self.max_connections = max_connections
        self.max_held_bytes = max_held_bytes
        self._port: int | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            (
                "connections",
                "upstream_failures",
                "resets",
                "drops",
                "cuts",
                "swallowed_bytes",
                "refused",
            ),
            0,
        )
        self._links: set[_Link] = set()
        self._delay = 0.0
        self._blackholed = False
        self._cuts: deque[int | None] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._startup_error: BaseException | None = None
        self._expired = False
        self._expiry: asyncio.Future[None] | None = None

    # -- identity and counters -------------------------------------------------------------
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
        """``"127.0.0.1:PORT"``: give this to the client instead of the server's address."""
        return f"{LOOPBACK}:{self.port}"

    def _get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    @property
    def connections(self) -> int:
        """Connections accepted since start (or :meth:`reset_counts`)."""
        return self._get("connections")

    @property
    def active_connections(self) -> int:
        """Connections open right now."""
        return len(self._links)

    @property
    def upstream_failures(self) -> int:
        """Accepted connections whose upstream could not be reached (they were reset)."""
        return self._get("upstream_failures")

    @property
    def resets(self) -> int:
        """Connections reset by :meth:`reset`."""
        return self._get("resets")

    @property
    def drops(self) -> int:
        """Connections closed by :meth:`drop` or by :meth:`restore` after a blackhole."""
        return self._get("drops")

    @property
    def cuts(self) -> int:
        """Responses cut by :meth:`cut_mid_response`."""
        return self._get("cuts")

    @property
    def swallowed_bytes(self) -> int:
        """Bytes (both directions) discarded while black-holed."""
        return self._get("swallowed_bytes")

    @property
    def refused(self) -> int:
        """Connections reset on accept because ``max_connections`` were open."""
        return self._get("refused")

    @property
    def expired(self) -> bool:
        """True once ``max_lifetime`` has passed (the proxy is stopping or stopped)."""
        return self._expired

    def wait_stopped(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the proxy's thread has ended; True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def reset_counts(self) -> None:
        """Zero every counter."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = 0

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        mode = "blackhole" if self._blackholed else f"delay={self._delay:g}s"
        upstream = f"{self.upstream.host}:{self.upstream.port}"
        return f"<FaultProxy {self.name} {where} -> {upstream} {mode}>"

    # -- lifecycle -------------------------------------------------------------------------
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
        if not ready.wait(CONTROL_TIMEOUT):
            self.stop()
            raise HarnessError(f"{self.name} did not start within {CONTROL_TIMEOUT} s")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise HarnessError(f"{self.name} could not listen: {error!r}") from error
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, LOOPBACK, 0)
                )
                self._port = self._server.sockets[0].getsockname()[1]
                loop.call_later(self.max_lifetime, self._expire)
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
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _expire(self) -> None:
        self._expired = True
        self._expiry = asyncio.ensure_future(self._shutdown_then_stop())

    async def _shutdown_then_stop(self) -> None:
        try:
            await self._shutdown()
        finally:
            asyncio.get_running_loop().stop()

    async def _shutdown(self) -> None:
        server = self._server
        if server is not None:
            server.close()
        await self._close_links(list(self._links), rst=False)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def stop(self) -> None:
        """Stop listening, close every connection, stop the loop and join the thread (bounded)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive() and not loop.is_closed() and not self._expired:
            with contextlib.suppress(RuntimeError):
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
                with contextlib.suppress(Exception):
                    future.result(timeout=CONTROL_TIMEOUT)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(CONTROL_TIMEOUT)
        if thread.is_alive():
            raise HarnessError(f"{self.name} did not stop within {CONTROL_TIMEOUT} s")
        self._thread = None
        self._loop = None
        self._server = None

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control (called from the test's thread) ---------------------------------------------
    def _control(self, action: Callable[[], Awaitable[T]]) -> T:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or self._expired:
            raise HarnessError(f"{self!r} is not running")

        async def run() -> T:
            return await action()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=CONTROL_TIMEOUT)

    def _wake_all(self) -> None:
        for link in self._links:
            link.wake.set()

    def delay(self, seconds: float) -> None:
        """Hold server->client bytes until ``seconds`` after they arrive (0: forward at once)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")

        async def action() -> None:
            self._delay = float(seconds)
            self._wake_all()

        self._control(action)

    def cut_mid_response(self, after: int | None = None) -> None:
        """Arm a one-shot cut: forward ``after`` bytes (default half a chunk) of the next reply.

        Then both sides of that connection are closed.  ``after`` must be smaller than the
        reply for the cut to fall inside it.
        """
        if after is not None and after < 0:
            raise ValueError("after must be >= 0")

        async def action() -> None:
            self._cuts.append(after)

        self._control(action)

    def reset(self) -> int:
        """Reset (RST) every open connection; return how many."""

        async def action() -> int:
            links = list(self._links)
            self._count("resets", len(links))
            await self._close_links(links, rst=True)
            return len(links)

        return self._control(action)

    def drop(self) -> int:
        """Close (FIN) every open connection; return how many."""

        async def action() -> int:
            links = list(self._links)
            self._count("drops", len(links))
            await self._close_links(links, rst=False)
            return len(links)

        return self._control(action)

    def blackhole(self) -> None:
        """Swallow everything both ways; accept new connections but never answer them."""

        async def action() -> None:
            self._blackholed = True
            self._wake_all()

        self._control(action)

    def restore(self) -> None:
        """Transparent again: no delay (held bytes flow), no blackhole, no armed cut."""

        async def action() -> None:
            self._delay = 0.0
            self._blackholed = False
            self._cuts.clear()
            tainted = [link for link in self._links if link.tainted]
            self._count("drops", len(tainted))
            self._wake_all()
            await self._close_links(tainted, rst=False)

        self._control(action)

    async def _close_links(self, links: list[_Link], *, rst: bool) -> None:
        for link in links:
            link.close(rst=rst)
        tasks = [link.task for link in links if link.task is not None and not link.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()

    # -- per-connection work (on the proxy's loop) ----------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(client_reader=reader, client=writer, task=asyncio.current_task())
        if len(self._links) >= self.max_connections:
            self._count("refused")
            link.close(rst=True)
            return
        self._links.add(link)
        self._count("connections")
        try:
            await self._serve(link)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            # Always (again): an upstream that connected after a reset() or drop() closed
            # this link has not been closed yet.
            link.close()
            for stream in (link.client, link.upstream):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stream.wait_closed(), 1.0)

    async def _serve(self, link: _Link) -> None:
        if self._blackholed:
            link.tainted = True
            await self._swallow_requests(link)
            return
        try:
            link.upstream_reader, link.upstream = await asyncio.wait_for(
                asyncio.open_connection(self.upstream.host, self.upstream.port),
                _UPSTREAM_CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            # As close to "connection refused" as an accepted connection can get.
            self._count("upstream_failures")
            link.close(rst=True)
            return
        if link.closed:
            return
        to_upstream = asyncio.create_task(self._requests(link))
        from_upstream = asyncio.create_task(self._replies_in(link))
        to_client = asyncio.create_task(self._replies_out(link))
        tasks = (to_upstream, from_upstream, to_client)
        try:
            # The session ends when the client has been given everything (or cannot take
            # more); a client's EOF is passed on and the server then closes its side.
            await to_client
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _swallow_requests(self, link: _Link) -> None:
        while chunk := await link.client_reader.read(_CHUNK):
            self._count("swallowed_bytes", len(chunk))

    async def _requests(self, link: _Link) -> None:
        upstream = link.upstream
        assert upstream is not None
        try:
            while chunk := await link.client_reader.read(_CHUNK):
                if self._blackholed:
                    link.tainted = True
                    self._count("swallowed_bytes", len(chunk))
                    continue
                upstream.write(chunk)
                await upstream.drain()
            if upstream.can_write_eof() and not upstream.is_closing():
                upstream.write_eof()
        except (ConnectionError, OSError):
            link.close()

    async def _replies_in(self, link: _Link) -> None:
        reader = link.upstream_reader
        assert reader is not None
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(_CHUNK):
                if self._blackholed:
                    link.tainted = True
                    self._count("swallowed_bytes", len(chunk))
                    continue
                while link.held_bytes and link.held_bytes + len(chunk) > self.max_held_bytes:
                    link.room.clear()
                    await link.room.wait()
                    if link.closed:
                        return
                link.held.append((loop.time(), chunk))
                link.held_bytes += len(chunk)
                link.wake.set()
        except (ConnectionError, OSError):
            pass
        finally:
            link.upstream_eof = True
            link.wake.set()

    async def _replies_out(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        client = link.client
        while not link.closed:
            link.wake.clear()
            if self._blackholed and link.held:
                link.tainted = True
                self._count("swallowed_bytes", link.held_bytes)
                link.held.clear()
                link.held_bytes = 0
                link.room.set()
            if not link.held:
                if link.upstream_eof:
                    return
                await link.wake.wait()
                continue
            arrived, chunk = link.held[0]
            wait = arrived + self._delay - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.wake.wait(), wait)
                continue
            link.held.popleft()
            link.held_bytes -= len(chunk)
            link.room.set()
            if link.cut_left is None and self._cuts:
                after = self._cuts.popleft()
                link.cut_half = after is None
                link.cut_left = 0 if after is None else after
            if link.cut_left is not None:
                if link.cut_half:
                    link.cut_left = max(1, len(chunk) // 2)
                    link.cut_half = False
                part = chunk[: link.cut_left]
                link.cut_left -= len(part)
                if part:
                    client.write(part)
                    await client.drain()
                if link.cut_left <= 0:
                    self._count("cuts")
                    link.close()
                    return
                continue
            client.write(chunk)
            await client.drain()
