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

``trickle(interval)``
    Forward server->client bytes one byte every ``interval`` seconds, on every connection
    (bytes already on their way included).  Every single read the client makes completes
    quickly; only the whole reply takes ``interval`` seconds per byte: a congested link or
    a misbehaving proxy, which a per-read timeout does not bound.

``garble(replacement=GARBAGE)``
    Replace every server->client chunk with ``replacement`` (bytes no memcached sends), on
    every connection.  The server has executed the command; the client reads nonsense: a
    misbehaving proxy, a desynchronised stream, a corrupting middlebox.

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
    Back to a transparent proxy: delay 0 (held bytes flow at once), no trickle, no
    garbling, blackhole off, armed cuts disarmed.  Connections that swallowed bytes
    while black-holed lost requests, so they are closed (FIN); a well-behaved client has
    discarded them anyway.

Counters (readable from any thread): ``connections`` (accepted), ``active_connections``
(open now), ``upstream_failures`` (accepted but the upstream could not be reached: the
client connection is reset), ``resets``, ``drops``, ``cuts``, ``swallowed_bytes``,
``trickled_bytes``, ``garbled_chunks``,
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
from collections import deque
from dataclasses import dataclass, field

from tests.harness import STOP_TIMEOUT, HarnessError, Link, ThreadedProxy, Upstream, counter

__all__ = ["CONTROL_TIMEOUT", "GARBAGE", "FaultProxy"]

#: The longest a control call waits for the proxy's loop.
CONTROL_TIMEOUT = STOP_TIMEOUT
_CHUNK = 64 * 1024
_UPSTREAM_CONNECT_TIMEOUT = 2.0
#: What :meth:`FaultProxy.garble` sends instead of each reply chunk, by default: a line
#: no memcached command is answered with.
GARBAGE = b"HELLO FROM A CONFUSED PROXY\r\n"


@dataclass(eq=False)
class _Link(Link):
    """One proxied connection, with the reply bytes held back and the state of a cut."""

    held: deque[tuple[float, bytes]] = field(default_factory=deque)
    held_bytes: int = 0
    upstream_eof: bool = False
    tainted: bool = False  # swallowed bytes while black-holed
    cut_left: int | None = None  # bytes still to forward before a cut; None: no cut armed
    cut_half: bool = False  # the cut's length is half of the next chunk
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self, *, rst: bool = False) -> None:
        """Close both sides, and wake the tasks waiting to forward or to hold more."""
        super().close(rst=rst)
        self.wake.set()
        self.room.set()


class FaultProxy(ThreadedProxy[_Link]):
    """A loopback TCP proxy in front of a real server that breaks things on command.

    See the module docstring for the modes.  Use as a context manager, or call
    :meth:`start` and :meth:`stop` (a :class:`~tests.harness.ThreadedProxy`).

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
        upstream: Upstream | tuple[str, int] | str,
        *,
        name: str = "fault-proxy",
        max_lifetime: float = 120.0,
        max_connections: int = 256,
        max_held_bytes: int = 16 << 20,
    ) -> None:
        super().__init__(upstream, name=name)
        if not ipaddress.ip_address(self.upstream.host).is_loopback:
            raise HarnessError(f"FaultProxy forwards to loopback only, not {self.upstream.host!r}")
        self.max_lifetime = max_lifetime
        self.max_connections = max_connections
        self.max_held_bytes = max_held_bytes
        self._delay = 0.0
        self._trickle = 0.0
        self._garbage: bytes | None = None
        self._blackholed = False
        self._cuts: deque[int | None] = deque()
        self._expired = False
        self._expiry: asyncio.Future[None] | None = None

    # -- counters ---------------------------------------------------------------------------
    connections = counter("Connections accepted since start (or reset_counts()).")
    upstream_failures = counter(
        "Accepted connections whose upstream could not be reached (they were reset)."
    )
    resets = counter("Connections reset by reset().")
    drops = counter("Connections closed by drop() or by restore() after a blackhole.")
    cuts = counter("Responses cut by cut_mid_response().")
    swallowed_bytes = counter("Bytes (both directions) discarded while black-holed.")
    trickled_bytes = counter("Server->client bytes forwarded one at a time by trickle().")
    garbled_chunks = counter("Server->client chunks replaced by garble().")
    refused = counter("Connections reset on accept because max_connections were open.")

    @property
    def expired(self) -> bool:
        """True once ``max_lifetime`` has passed (the proxy is stopping or stopped)."""
        return self._expired

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        mode = "blackhole" if self._blackholed else f"delay={self._delay:g}s"
        if self._trickle:
            mode += f" trickle={self._trickle:g}s/byte"
        if self._garbage is not None:
            mode += " garbling"
        upstream = f"{self.upstream.host}:{self.upstream.port}"
        return f"<FaultProxy {self.name} {where} -> {upstream} {mode}>"

    # -- lifecycle --------------------------------------------------------------------------
    def listening(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop by itself after ``max_lifetime`` seconds, in case the test forgets."""
        loop.call_later(self.max_lifetime, self._expire)

    def stopped_by_itself(self) -> bool:
        """True once ``max_lifetime`` has passed."""
        return self._expired

    def _expire(self) -> None:
        self._expired = True
        self._expiry = asyncio.ensure_future(self._shutdown_then_stop())

    async def _shutdown_then_stop(self) -> None:
        try:
            await self.shutdown()
        finally:
            asyncio.get_running_loop().stop()

    # -- control (called from the test's thread) ---------------------------------------------
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

        self.control(action)

    def trickle(self, interval: float) -> None:
        """Forward server->client bytes one every ``interval`` seconds (0: at once again)."""
        if interval < 0:
            raise ValueError("interval must be >= 0")

        async def action() -> None:
            self._trickle = float(interval)
            self._wake_all()

        self.control(action)

    def garble(self, replacement: bytes = GARBAGE) -> None:
        """Send ``replacement`` instead of every server->client chunk until :meth:`restore`."""
        if not replacement:
            raise ValueError("replacement must not be empty")

        async def action() -> None:
            self._garbage = bytes(replacement)

        self.control(action)

    def cut_mid_response(self, after: int | None = None) -> None:
        """Arm a one-shot cut: forward ``after`` bytes (default half a chunk) of the next reply.

        Then both sides of that connection are closed.  ``after`` must be smaller than the
        reply for the cut to fall inside it.
        """
        if after is not None and after < 0:
            raise ValueError("after must be >= 0")

        async def action() -> None:
            self._cuts.append(after)

        self.control(action)

    def reset(self) -> int:
        """Reset (RST) every open connection; return how many."""

        async def action() -> int:
            links = list(self._links)
            self.count("resets", len(links))
            await self.close_links(links, rst=True)
            return len(links)

        return self.control(action)

    def drop(self) -> int:
        """Close (FIN) every open connection; return how many."""

        async def action() -> int:
            links = list(self._links)
            self.count("drops", len(links))
            await self.close_links(links, rst=False)
            return len(links)

        return self.control(action)

    def blackhole(self) -> None:
        """Swallow everything both ways; accept new connections but never answer them."""

        async def action() -> None:
            self._blackholed = True
            self._wake_all()

        self.control(action)

    def restore(self) -> None:
        """Transparent again: no delay (held bytes flow), no blackhole, no armed cut."""

        async def action() -> None:
            self._delay = 0.0
            self._trickle = 0.0
            self._garbage = None
            self._blackholed = False
            self._cuts.clear()
            tainted = [link for link in self._links if link.tainted]
            self.count("drops", len(tainted))
            self._wake_all()
            await self.close_links(tainted, rst=False)

        self.control(action)

    # -- per-connection work (on the proxy's loop) ----------------------------------------------
    def new_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Link:
        """A connection with nothing held yet."""
        return _Link(client_reader=reader, client=writer)

    def admit(self, link: _Link) -> bool:
        """Reset a connection beyond ``max_connections`` at once."""
        if len(self._links) >= self.max_connections:
            self.count("refused")
            link.close(rst=True)
            return False
        return True

    async def serve(self, link: _Link) -> None:
        """Connect upstream, then run the three directions until the client has everything."""
        if self._blackholed:
            link.tainted = True
            await self._swallow_requests(link)
            return
        try:
            await self.connect_upstream(link, _UPSTREAM_CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            # As close to "connection refused" as an accepted connection can get.
            self.count("upstream_failures")
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
            self.count("swallowed_bytes", len(chunk))

    async def _requests(self, link: _Link) -> None:
        upstream = link.upstream
        assert upstream is not None
        try:
            while chunk := await link.client_reader.read(_CHUNK):
                if self._blackholed:
                    link.tainted = True
                    self.count("swallowed_bytes", len(chunk))
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
                    self.count("swallowed_bytes", len(chunk))
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
                self.count("swallowed_bytes", link.held_bytes)
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
            if self._garbage is not None:
                self.count("garbled_chunks")
                chunk = self._garbage
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
                    self.count("cuts")
                    link.close()
                    return
                continue
            if self._trickle:
                await self._trickle_out(link, chunk)
                continue
            client.write(chunk)
            await client.drain()

    async def _trickle_out(self, link: _Link, chunk: bytes) -> None:
        """Write ``chunk`` one byte per trickle interval (the rest at once if trickling ends)."""
        client = link.client
        for index in range(len(chunk)):
            if link.closed:
                return
            if not self._trickle:
                client.write(chunk[index:])
                await client.drain()
                return
            client.write(chunk[index : index + 1])
            await client.drain()
            self.count("trickled_bytes")
            await asyncio.sleep(self._trickle)
