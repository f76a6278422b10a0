"""Timing, machine description and small helpers shared by the benchmark scripts."""

# ruff: noqa: RUF001
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication and minus signs are units in the printed tables)

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Timing:
    """Per-operation times (seconds) of each repetition; ``best`` is what tables show."""

    runs: list[float] = field(default_factory=list)
    ops: int = 0

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "us_per_op": self.best * 1e6,
            "ops_per_s": 1.0 / self.best,
            "median_us_per_op": self.median * 1e6,
            "runs_us_per_op": [round(run * 1e6, 3) for run in self.runs],
            "ops_per_run": self.ops,
        }


def calibrate(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (it also warms ``fn`` up)."""
    n = 1
    perf = time.perf_counter
    while True:
        start = perf()
        for _ in range(n):
            fn()
        elapsed = perf() - start
        if elapsed >= 0.02 or n >= 1 << 20:
            break
        n *= 2
    return max(1, int(seconds * n / max(elapsed, 1e-9)))


def run_once(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    perf = time.perf_counter
    start = perf()
    for _ in range(n):
        fn()
    return (perf() - start) / n


def run_threads(factory: Callable[[], Callable[[], object]], threads: int, seconds: float) -> float:
    """Seconds per call (wall time / calls) of ``threads`` threads calling their own ``fn``.

    Each thread gets ``fn = factory()`` (a shared object's method, or a per-thread
    handle), all start together, and they stop after ``seconds``.
    """
    counts = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        try:
            fn = factory()
            fn()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        done = 0
        is_set = stop.is_set
        try:
            while not is_set():
                for _ in range(10):
                    fn()
                done += 10
        except BaseException as exc:
            errors.append(exc)
        counts[index] = done

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=30)
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join(30)
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed / max(1, sum(counts))


def versions() -> dict[str, str]:
    """Versions of everything measured, for the JSON result."""
    found: dict[str, str] = {}
    for dist in (
        "layered-cache",
        "pymemcache",
        "Django",
        "pylibmc",
        "django-bmemcached",
        "python-binary-memcached",
        "matplotlib",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    for tool in ("memcached", "nutcracker"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [tool, "--version"], capture_output=True, text=True, timeout=5, check=False
            )
            found[tool] = (out.stdout or out.stderr).splitlines()[0].split()[-1]
    with contextlib.suppress(ImportError, AttributeError):
        import pylibmc

        found["libmemcached"] = pylibmc.libmemcached_version
    return found


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=5,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "layered_cache"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=5,
            check=False,
        ).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes in layered_cache/)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": versions(),
    }


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No garbage-collector pauses inside a measurement (collected between them)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def ours_django_backend() -> str | None:
    """Why ``layered_cache.django.MemcacheCache`` can't be used yet, or None when it can."""
    try:
        from layered_cache.django import MemcacheCache  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# -- other processes on the machine -------------------------------------------------------
#
# The machine is shared (other sessions may run test suites at the same time), so each
# result records how much CPU the rest of the machine used while it was measured.

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _processes() -> tuple[dict[int, int], dict[int, int]]:
    """``({pid: parent pid}, {pid: CPU jiffies used})`` of every process, from /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            rest = stat.rsplit(")", 1)[1].split()
            pid = int(entry.name)
            parents[pid] = int(rest[1])
            ticks[pid] = int(rest[11]) + int(rest[12])  # utime + stime
    return parents, ticks


def _own_tree(parents: dict[int, int]) -> list[int]:
    """This process and its descendants."""
    me = os.getpid()
    tree = []
    for pid in parents:
        node = pid
        for _ in range(64):
            if node == me:
                tree.append(pid)
                break
            node = parents.get(node, 0)
            if node <= 1:
                break
    return tree


def _own_tree_ticks() -> int:
    """CPU jiffies used so far by this process and its descendants still running."""
    parents, ticks = _processes()
    return sum(ticks[pid] for pid in _own_tree(parents))


# -- where processes run ----------------------------------------------------------------------
#
# On this kind of machine (a VM whose idle vCPUs halt), a request/response between
# two processes costs ~7 µs when both run on one CPU and ~70 µs when they run on two
# (the other vCPU must be woken), and the scheduler picks either at random, per
# memcached worker thread: left alone, rows of one table land in different modes and
# their ratios mean nothing. So each measurement pins the processes:
#
# - "same": this process, memcached and the proxies on one CPU. Every request is a
#   strict round trip, so this measures what each client costs in CPU, which is what
#   the single-caller tables compare;
# - "split": this process on one CPU, memcached and the proxies on the other, as if
#   the servers were on other machines: what thread scaling, concurrency and
#   many-server batches are about (whether waiting for servers overlaps).

#
# - "free": no pinning (whole systems of several processes, such as uvicorn's).

PLACEMENTS = {
    "same": "this process and the servers pinned to one CPU",
    "split": "this process pinned to one CPU, the servers to the other",
    "free": "not pinned",
}


# The CPUs this process may use, as it started (before any pinning).
_ALLOWED_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)


def place(where: str) -> str:
    """Pin this process's threads and its child processes' threads as ``where`` says.

    Returns what was done, for the results (``"unpinned"`` when the machine has
    fewer than two CPUs or cannot pin).
    """
    allowed = _ALLOWED_CPUS
    if len(allowed) < 2:
        return "unpinned"
    mine, servers = {allowed[0]}, {allowed[0] if where == "same" else allowed[1]}
    if where == "free":
        mine = servers = set(allowed)
    me = os.getpid()
    for pid in _own_tree(_processes()[0]):
        _pin(pid, mine if pid == me else servers)
    return PLACEMENTS[where]


class Interference:
    """Share of the machine's CPU used by *other* processes between start() and stop()."""

    def __init__(self) -> None:
        self._start: tuple[int, int, int] | None = None
        self.share: float | None = None

    def start(self) -> None:
        with contextlib.suppress(OSError):
            busy, total = _machine_busy_ticks()
            self._start = (busy, total, _own_tree_ticks())

    def stop(self) -> float | None:
        if self._start is None:
            return None
        with contextlib.suppress(OSError):
            busy, total = _machine_busy_ticks()
            own = _own_tree_ticks()
            b0, t0, o0 = self._start
            others = max(0, (busy - b0) - max(0, own - o0))
            self.share = others / max(1, total - t0)
        return self.share


def background_load(seconds: float = 1.0) -> float | None:
    """Share of the machine's CPU that other processes use right now (sampled)."""
    probe = Interference()
    probe.start()
    time.sleep(seconds)
    return probe.stop()


def wait_for_quiet(
    log: Callable[[str], None], *, threshold: float = 0.15, max_wait: float = 120.0
) -> float | None:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` of the CPUs."""
    deadline = time.monotonic() + max_wait
    load = background_load()
    while load is not None and load >= threshold and time.monotonic() < deadline:
        log(f"other processes use {load:.0%} of the CPUs; waiting for a quieter moment ...")
        time.sleep(5)
        load = background_load()
    if load is not None and load >= threshold:
        log(f"warning: still {load:.0%} busy with other work; measuring anyway (noisier)")
    return load
