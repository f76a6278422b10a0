"""The MemCachier gateway and the same proxy without auth, each in a process of its own.

The gateway is ``tests.servers.MemCachierGateway`` (an asyncio proxy that enforces
MemCachier's handshake and then pipes bytes both ways). :class:`PassThroughProxy` is the
very same proxy with the handshake removed: same event loop, same pumps, same buffer
sizes. Measuring one client through both shows what auth costs per operation once a
connection is authenticated (issue 6: "within 10%").

Both run in a child process so that the proxy's event loop does not compete with the
benchmarked client for the benchmark process's GIL.

Run as ``python -m benchmarks.proxy UPSTREAM_HOST:PORT [--username U --password P]``:
prints the listening port on one line, serves until its standard input closes, then
prints the connections it accepted and the handshakes it completed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness import pipe_both_ways  # noqa: E402 - needs the repo root on sys.path
from tests.servers import (  # noqa: E402
    LOOPBACK,
    MemCachierGateway,
    _GatewayLink,
)


class PassThroughProxy(MemCachierGateway):
    """``MemCachierGateway`` minus the handshake: a plain byte pipe to the upstream."""

    def __init__(self, upstream: object, *, port: int = 0) -> None:
        super().__init__(upstream, "unused", "unused", port=port)  # type: ignore[arg-type]

    async def serve(self, link: _GatewayLink) -> None:
        up_reader, up_writer = await self.connect_upstream(link, self.upstream_connect_timeout)
        await pipe_both_ways(link.client_reader, link.client, up_reader, up_writer)


class _Upstream:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port


class ProxyProcess:
    """Starts ``python -m benchmarks.proxy`` and stops it again (context manager)."""

    def __init__(
        self, upstream: str, *, username: str | None = None, password: str | None = None
    ) -> None:
        argv = [sys.executable, "-m", "benchmarks.proxy", upstream]
        if username is not None and password is not None:
            argv += ["--username", username, "--password", password]
        self.auth = username is not None
        self._argv = argv
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0
        #: what the proxy counted, once stopped: connections accepted, handshakes done.
        self.counts: dict[str, int] = {}

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the proxy did not start: {line!r}")
        self.port = int(line)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.close()
            with contextlib.suppress(ValueError):
                connections, handshakes = proc.stdout.readline().split()
                self.counts = {"connections": int(connections), "handshakes": int(handshakes)}
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="host:port of the memcached behind the proxy")
    parser.add_argument("--username")
    parser.add_argument("--password")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    upstream = _Upstream(host, int(port))
    proxy: MemCachierGateway
    if args.username is not None:
        proxy = MemCachierGateway(upstream, args.username, args.password or "")
    else:
        proxy = PassThroughProxy(upstream)
    with proxy:
        print(proxy.port, flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)
        print(proxy.connections, proxy.handshakes, flush=True)


if __name__ == "__main__":
    main()
