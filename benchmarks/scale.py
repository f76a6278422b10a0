"""The scale benchmark of issue 8: batches over 1, 3 and 8 memcached nodes, and twemproxy.

get_many and set_many of 10, 100 and 1000 keys (100 B values) over 1, 3 and 8 local
memcached processes, through:

* our ``Client`` (client-side rendezvous hashing, one round trip per server);
* our Django backend (when ``layered_cache.django`` is importable);
* pymemcache's ``HashClient`` (as Django builds it);
* Django's ``PyMemcacheCache``;
* twemproxy (``nutcracker``, started here with a generated config: one pool per node
  count, ketama over fnv1a_64, loopback, free ports), reached by our ``Client`` as one
  server.

Prints µs per call and µs per key (the per-key cost should stay flat as nodes and batch
size grow), and checks issue 6's multi-server target: over 3 servers, get_many of 100
keys at least 2× pymemcache's ``HashClient``; and issue 14's: get_many and set_many of
100 keys over 8 nodes take at most 1.5× the 1-node call, and at most as long as the
same call through twemproxy over the same 8 nodes. Because our client remembers recent key
placements, get_many of 100 keys is also measured "cold": cycling over 70,000 stored
keys, more than that cache holds, so every placement is computed.

Usage::

    python -m benchmarks.scale [--quick] [--json PATH] [--png PATH]
"""

# ruff: noqa: RUF001, RUF002
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication and minus signs are units in the printed tables)

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._bench import (
    Interference,
    Timing,
    calibrate,
    machine,
    ours_django_backend,
    place,
    quiet_gc,
    run_once,
    wait_for_quiet,
)

NODE_COUNTS = (1, 3, 8)
BATCHES = (10, 100, 1000)
OPS = ("get_many", "set_many", "get_many_cold")
OP_TITLES = {
    "get_many": "get_many, the same keys every call",
    "set_many": "set_many, the same keys every call",
    "get_many_cold": "get_many of 100 keys never recently asked for (cycling over 70,000 keys)",
}
#: Cold batches: more keys than our Client's placement cache holds (65,536), cycled, so
#: every key's server is computed afresh, as for an application's long tail of keys.
COLD_BATCHES = 700
VALUE = bytes(range(100))

OURS = "layered_cache Client"
OURS_DJANGO = "layered_cache Django backend"
PM_HASH = "pymemcache HashClient"
DJ_PYMEMCACHE = "Django PyMemcacheCache"
TWEMPROXY = "twemproxy (layered_cache Client)"
RAW = "raw sockets (the floor)"
ROW_ORDER = [OURS, OURS_DJANGO, PM_HASH, DJ_PYMEMCACHE, TWEMPROXY, RAW]


# -- twemproxy ----------------------------------------------------------------------------


class Twemproxy:
    """One ``nutcracker`` process with one pool per server list, on loopback free ports."""

    def __init__(self, pools: dict[str, list[str]]) -> None:
        from tests.servers import free_port

        self.pools = pools
        self.ports = {name: free_port() for name in pools}
        self._dir = Path(tempfile.mkdtemp(prefix="bench-twemproxy-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._stats_port = free_port()

    def config(self) -> str:
        lines = []
        for name, servers in self.pools.items():
            lines += [
                f"{name}:",
                f"  listen: 127.0.0.1:{self.ports[name]}",
                "  hash: fnv1a_64",
                "  distribution: ketama",
                "  auto_eject_hosts: false",
                "  timeout: 2000",
                "  servers:",
                *(f"   - {server}:1" for server in servers),
            ]
        return "\n".join(lines) + "\n"

    def address(self, pool: str) -> str:
        return f"127.0.0.1:{self.ports[pool]}"

    def start(self) -> Twemproxy:
        binary = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
        conf = self._dir / "nutcracker.yml"
        conf.write_text(self.config())
        argv = [
            binary,
            "-c",
            str(conf),
            "-o",
            str(self._dir / "nutcracker.log"),
            "-s",
            str(self._stats_port),
            "-a",
            "127.0.0.1",
            "-p",
            str(self._dir / "pid"),
        ]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        for pool in self.pools:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"nutcracker exited: {self.log()}")
                try:
                    with socket.create_connection(("127.0.0.1", self.ports[pool]), 1) as sock:
                        sock.sendall(b"get twemproxy-probe\r\n")
                        if sock.recv(64) == b"END\r\n":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nutcracker did not answer: {self.log()}")
                time.sleep(0.05)
        return self

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self._dir / "nutcracker.log").read_text()[-2000:]
        return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)


def cold_keys() -> list[str]:
    return [f"cold:{i:05d}" for i in range(COLD_BATCHES * 100)]


def fill_every_node(nodes: list[str]) -> None:
    """Store every cold key on every node, so that any placement finds it.

    Both spellings: ``cold:N`` for the clients and ``:1:cold:N`` for Django's backends
    (the key Django sends for ``cold:N``). Pipelined ``noreply`` sets on a raw socket,
    then one ``get`` round trip to know the server has read them all.
    """
    keys = cold_keys()
    keys += [f":1:{key}" for key in keys]
    payload = b"".join(
        b"set %s 0 0 %d noreply\r\n%s\r\n" % (key.encode(), len(VALUE), VALUE) for key in keys
    )
    for node in nodes:
        host, port = node.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(payload + b"get " + keys[-1].encode() + b"\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"{node} closed the connection while being filled")
                reply += chunk
            if not reply.startswith(b"VALUE"):
                raise RuntimeError(f"{node} did not keep the cold keys: {reply[:100]!r}")


@contextlib.contextmanager
def fleet(max_nodes: int) -> Iterator[tuple[list[str], Twemproxy]]:
    from tests.servers import ServerGroup, start_memcached

    group = ServerGroup()
    try:
        nodes = [group.add(start_memcached()).address for _ in range(max_nodes)]
        fill_every_node(nodes)
        proxy = Twemproxy({f"nodes{n}": nodes[:n] for n in NODE_COUNTS if n <= max_nodes})
        try:
            yield nodes, proxy.start()
        finally:
            proxy.stop()
    finally:
        group.close()


# -- rows ---------------------------------------------------------------------------------


def make_clients(nodes: list[str], proxy_address: str, ours_ok: bool) -> dict[str, Any]:
    from django.core.cache.backends.memcached import PyMemcacheCache
    from pymemcache import HashClient, serde

    from layered_cache import Client

    clients: dict[str, Any] = {
        OURS: Client(nodes),
        PM_HASH: HashClient(
            nodes,
            serde=serde.pickle_serde,
            default_noreply=False,
            allow_unicode_keys=True,
            connect_timeout=2,
            timeout=2,
        ),
        DJ_PYMEMCACHE: PyMemcacheCache(nodes, {}),
        TWEMPROXY: Client(proxy_address),
        RAW: RawPipelines(nodes),
    }
    if ours_ok:
        from layered_cache.django import MemcacheCache

        clients[OURS_DJANGO] = MemcacheCache(nodes, {})
    return clients


class RawPipelines:
    """The floor of a batch over these nodes: the meta pipelines our client sends, made once.

    Keys go round-robin to the nodes; each call sends every node its bytes, then reads
    every reply up to ``MN``. What is left is the kernel's and the servers' share of a
    batch (the wake-ups of N processes), which no client's Python can remove.
    """

    def __init__(self, nodes: list[str]) -> None:
        self._socks = []
        for node in nodes:
            host, port = node.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socks.append(sock)
        self._made: dict[tuple[str, int], list[bytes]] = {}

    def _parts(self, kind: str, keys: list[str], line: Callable[[bytes], bytes]) -> list[bytes]:
        made = self._made.get((kind, len(keys)))
        if made is None:
            n = len(self._socks)
            made = [
                b"".join(line(key.encode()) for key in keys[i::n]) + b"mn\r\n" for i in range(n)
            ]
            self._made[kind, len(keys)] = made
        return made

    def _exchange(self, parts: list[bytes]) -> list[bytes]:
        """Each node's whole reply, up to and including ``MN``."""
        for sock, part in zip(self._socks, parts, strict=True):
            sock.sendall(part)
        replies = []
        for sock in self._socks:
            buf = sock.recv(262144)
            while not buf.endswith(b"MN\r\n"):
                buf += sock.recv(262144)
            replies.append(buf)
        return replies

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        replies = self._exchange(self._parts("get", keys, lambda k: b"mg %s v q\r\n" % k))
        # Hits are counted, not parsed: VALUE (bytes 0-99) never holds b"VA ".
        hits = sum(reply.count(b"VA ") for reply in replies)
        return dict.fromkeys(keys[:hits], VALUE)

    def set_many(self, mapping: dict[str, bytes]) -> list[str]:
        line = b" %d q T0 F0\r\n" % len(VALUE)
        keys = list(mapping)
        replies = self._exchange(
            self._parts("set", keys, lambda k: b"ms " + k + line + VALUE + b"\r\n")
        )
        # Quiet ms answers only failures: anything before MN means some were not stored.
        return [] if all(reply == b"MN\r\n" for reply in replies) else keys

    def close(self) -> None:
        for sock in self._socks:
            sock.close()


def close_client(client: Any) -> None:
    for method in ("close", "disconnect_all"):
        if hasattr(client, method):
            with contextlib.suppress(Exception):
                getattr(client, method)()
            return


@dataclass
class Results:
    cells: dict[tuple[str, int, int, str], Timing] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: share of the CPUs other processes used while we measured (the machine is shared)
    interference: float | None = None
    #: where the processes ran (_bench.place)
    placement: str = ""


def measure(
    nodes: list[str],
    proxy: Twemproxy,
    ours_ok: bool,
    seconds: float,
    repeats: int,
    res: Results,
    log: Callable[[str], None],
) -> None:
    """Every cell, the node counts of one shape measured in the same rounds.

    The N-node vs 1-node ratios compare cells of different node counts, so those cells
    take turns within each round: this VM's wake-up cost changes over seconds (see
    benchmarks/README.md), and cells measured minutes apart would compare two modes.
    """
    started = time.monotonic()
    by_count = {
        n: make_clients(nodes[:n], proxy.address(f"nodes{n}"), ours_ok) for n in NODE_COUNTS
    }
    try:
        measure_cold(by_count, seconds, repeats, res)
        for batch in BATCHES:
            for op in ("get_many", "set_many"):
                fns: dict[tuple[str, int], Callable[[], object]] = {}
                for n, clients in by_count.items():
                    for name, client in clients.items():
                        fn = _batch_call(client, name, n, batch, op, res)
                        if fn is not None:
                            fns[name, n] = fn
                _rounds(fns, seconds, repeats, res, batch, op)
            log(f"  batches of {batch}: {time.monotonic() - started:.1f} s")
    finally:
        for clients in by_count.values():
            for client in clients.values():
                close_client(client)


def _batch_call(
    client: Any, name: str, n: int, batch: int, op: str, res: Results
) -> Callable[[], object] | None:
    """The call one cell times (its keys stored and checked first), or None if it failed."""
    prefix = f"{ROW_ORDER.index(name)}:{n}:"
    keys = [f"{prefix}k{i:05d}" for i in range(batch)]
    mapping = dict.fromkeys(keys, VALUE)
    fn = (
        (lambda c=client, k=keys: c.get_many(k))
        if op == "get_many"
        else (lambda c=client, m=mapping: c.set_many(m))
    )
    try:
        failed = client.set_many(mapping)
        assert not failed, f"set_many failed for {len(failed)} keys"
        got = client.get_many(keys)
        assert len(got) == batch, f"get_many found {len(got)}/{batch}"
        fn()
    except Exception as exc:
        res.skipped.append(f"{name}, {n} nodes, {op} {batch}: {type(exc).__name__}: {exc}")
        return None
    return fn


def _rounds(
    fns: dict[tuple[str, int], Callable[[], object]],
    seconds: float,
    repeats: int,
    res: Results,
    batch: int,
    op: str,
) -> None:
    """``repeats`` rounds, each timing every cell of ``fns`` once (best run counts)."""
    counts = {cell: calibrate(fn, seconds) for cell, fn in fns.items()}
    for _ in range(repeats):
        for (name, n), fn in fns.items():
            timing = res.cells.setdefault((name, n, batch, op), Timing(ops=counts[name, n]))
            with quiet_gc():
                timing.runs.append(run_once(fn, counts[name, n]))


def measure_cold(
    by_count: dict[int, dict[str, Any]], seconds: float, repeats: int, res: Results
) -> None:
    """get_many of 100 keys, each call a batch not asked for in the last 65,536 keys."""
    raw = cold_keys()
    batches = [raw[i : i + 100] for i in range(0, len(raw), 100)]
    fns: dict[tuple[str, int], Callable[[], object]] = {}
    for n, clients in by_count.items():
        for name, client in clients.items():
            if name == RAW:  # its requests are made once: there is nothing to be cold
                continue
            cycle = itertools.cycle(batches)
            try:
                got = client.get_many(next(cycle))
                assert len(got) >= 95, f"cold get_many found only {len(got)}/100"
            except Exception as exc:
                res.skipped.append(f"{name}, {n} nodes, get_many_cold: {type(exc).__name__}: {exc}")
                continue
            fns[name, n] = lambda c=client, it=cycle: c.get_many(next(it))
    _rounds(fns, seconds, repeats, res, 100, "get_many_cold")


# -- reporting ----------------------------------------------------------------------------


def _target(
    what: str, measured: float | None, goal: float, *, at_most: bool = False
) -> dict[str, Any]:
    passed = None if measured is None else (measured <= goal if at_most else measured >= goal)
    return {
        "target": what,
        "measured": measured,
        "goal": goal,
        "comparison": "≤" if at_most else "≥",
        "status": "n/a" if passed is None else ("PASS" if passed else "FAIL"),
    }


def issue14_targets(res: Results) -> list[dict[str, Any]]:
    """Issue 14's batch targets: time ratios, 100 keys over 8 nodes (goal: at most)."""
    found = []

    def ratio(row: str, n: int, ref: str, ref_n: int, op: str) -> float | None:
        a, b = res.cells.get((row, n, 100, op)), res.cells.get((ref, ref_n, 100, op))
        return None if a is None or b is None else a.best / b.best

    for op in ("get_many", "set_many"):
        for what, row, ref, ref_n, goal in (
            (f"{OURS}: {op} of 100 keys, 8 nodes vs 1 node", OURS, OURS, 1, 1.5),
            (
                f"{OURS_DJANGO}: {op} of 100 keys, 8 nodes vs 1 node",
                OURS_DJANGO,
                OURS_DJANGO,
                1,
                1.5,
            ),
            (
                f"{OURS}: {op} of 100 keys over 8 nodes vs through twemproxy",
                OURS,
                TWEMPROXY,
                8,
                1.0,
            ),
        ):
            found.append(
                _target(f"{what} (time)", ratio(row, 8, ref, ref_n, op), goal, at_most=True)
            )
    return found


def targets(res: Results) -> list[dict[str, Any]]:
    """Issue 6's multi-server targets (speed ratios, goal: at least), then issue 14's."""
    found = []
    for op, what in (("get_many", "same keys"), ("get_many_cold", "cold keys")):
        ours = res.cells.get((OURS, 3, 100, op))
        peer = res.cells.get((PM_HASH, 3, 100, op))
        measured = None if ours is None or peer is None else peer.best / ours.best
        found.append(
            {
                "target": (
                    f"3 servers, get_many of 100 keys ({what}): Client vs pymemcache HashClient"
                ),
                "measured": measured,
                "goal": 2.0,
                "comparison": "≥",
                "status": "n/a" if measured is None else ("PASS" if measured >= 2.0 else "FAIL"),
            }
        )
    return found + issue14_targets(res)


def flatness(res: Results, row: str, op: str) -> float | None:
    """Largest µs/key over smallest, across node counts and the 100/1000-key batches."""
    per_key = [
        timing.best / batch
        for (name, _n, batch, o), timing in res.cells.items()
        if name == row and o == op and batch >= 100
    ]
    return max(per_key) / min(per_key) if per_key else None


def print_floor(res: Results, out: Callable[[str], None]) -> None:
    """The raw sockets' own N-node vs 1-node ratios: what the machine leaves to any client."""
    for op in ("get_many", "set_many"):
        one, eight = res.cells.get((RAW, 1, 100, op)), res.cells.get((RAW, 8, 100, op))
        if one is not None and eight is not None:
            out(
                f"      (the floor, raw sockets: {op} of 100 keys, 8 nodes vs 1 node: "
                f"{eight.best / one.best:.2f}×)"
            )


def print_tables(res: Results, out: Callable[[str], None]) -> None:
    for op in OPS:
        out("")
        out(f"== {OP_TITLES[op]} (100 B values): µs per call / µs per key ==")
        heads = "".join(f"{f'{n} node' + ('s' if n > 1 else ''):>22}" for n in NODE_COUNTS)
        out(f"{'row':<34} {'keys':>5}{heads}")
        for row in ROW_ORDER:
            for batch in BATCHES:
                cells = []
                for n in NODE_COUNTS:
                    timing = res.cells.get((row, n, batch, op))
                    cells.append(
                        f"{'—':>22}"
                        if timing is None
                        else f"{timing.best * 1e6:>12.1f} /{timing.best * 1e6 / batch:>7.2f}"
                    )
                if any(c.strip() != "—" for c in cells):
                    out(f"{row:<34} {batch:>5}{''.join(cells)}")
        out("per-key cost spread (max/min µs per key, batches of 100 and 1000, 1-8 nodes):")
        for row in ROW_ORDER:
            value = flatness(res, row, op)
            if value is not None:
                out(f"  {row:<34} {value:.2f}×")
    if res.interference is not None:
        out(f"other processes used {res.interference:.0%} of the CPUs during the run")
    if res.placement:
        out(f"({res.placement})")
    out("")
    for t in targets(res):
        measured = "—" if t["measured"] is None else f"{t['measured']:.2f}×"
        out(f"{t['status']:<5} {t['target']}: {measured} (goal {t['comparison']} {t['goal']:.2f}×)")
    print_floor(res, out)
    for line in res.skipped:
        out(f"skipped: {line}")


def to_json(res: Results, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": "scale",
        "machine": machine(),
        "config": config,
        "results": [
            {
                "row": row,
                "nodes": n,
                "keys": batch,
                "op": op,
                **timing.as_dict(),
                "us_per_key": timing.best * 1e6 / batch,
            }
            for (row, n, batch, op), timing in res.cells.items()
        ],
        "flatness": {op: {row: flatness(res, row, op) for row in ROW_ORDER} for op in OPS},
        "targets": targets(res),
        "other_processes_cpu_share": res.interference,
        "skipped": res.skipped,
    }


def draw_png(res: Results, path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        [("get_many", b) for b in BATCHES] + [("get_many_cold", 100)],
        [("set_many", b) for b in BATCHES] + [None],
    ]
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    for i, line in enumerate(panels):
        for j, panel in enumerate(line):
            ax = axes[i][j]
            if panel is None:
                ax.axis("off")
                continue
            op, batch = panel
            for row in ROW_ORDER:
                points = [
                    (n, res.cells[(row, n, batch, op)].best * 1e6 / batch)
                    for n in NODE_COUNTS
                    if (row, n, batch, op) in res.cells
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=row)
            title = (
                f"{op}, {batch} keys"
                if op != "get_many_cold"
                else ("get_many, 100 cold keys\n(placement not cached)")
            )
            ax.set_title(title, fontsize=10)
            ax.set_xticks(NODE_COUNTS)
            ax.set_xlabel("memcached nodes", fontsize=8)
            ax.set_ylabel("µs per key (lower is better)", fontsize=8)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(f"layered_cache scale benchmark\n{subtitle}", y=0.995, fontsize=11)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=len(labels),
        fontsize=9,
        bbox_to_anchor=(0.5, 0.93),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--seconds", type=float, help="target length of one run (default 0.05)")
    parser.add_argument("--repeats", type=int, help="runs per measurement; best counts (default 6)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--png", type=Path, help="draw the chart (matplotlib) here")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="seconds to wait at most for a quiet machine (0: don't wait)",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.01 if args.quick else 0.05)
    repeats = args.repeats or (1 if args.quick else 6)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    import django
    from django.conf import settings

    settings.configure(USE_TZ=True, CACHES={})
    django.setup()
    warnings.simplefilter("ignore")

    res = Results()
    problem = ours_django_backend()
    if problem is not None:
        res.skipped.append(f"{OURS_DJANGO}: not importable yet ({problem})")
    if not args.quick and args.max_wait > 0:
        wait_for_quiet(log, max_wait=args.max_wait)
    began = time.monotonic()
    interference = Interference()
    with fleet(max(NODE_COUNTS)) as (nodes, proxy):
        log(f"{len(nodes)} memcached + twemproxy up; {repeats} run(s) of ~{seconds} s")
        # Many servers asked at once: whether their work overlaps ours is the question.
        res.placement = place("split")
        interference.start()
        measure(nodes, proxy, problem is None, seconds, repeats, res, log)
        res.interference = interference.stop()
    log(f"done in {time.monotonic() - began:.0f} s")
    print_tables(res, print)
    config = {
        "seconds": seconds,
        "repeats": repeats,
        "quick": args.quick,
        "nodes": NODE_COUNTS,
        "batches": BATCHES,
        "value_bytes": len(VALUE),
        "twemproxy": "ketama, fnv1a_64, auto_eject_hosts false",
    }
    data = to_json(res, config)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        log(f"wrote {args.json}")
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        m = data["machine"]
        busy = (
            f"; other processes used {res.interference:.0%} of the CPUs meanwhile"
            if res.interference is not None
            else ""
        )
        draw_png(res, args.png, f"{m['cpu']}, {m['cores']} cores, Python {m['python']}{busy}")
        log(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
