"""Instructions per call of our single-key hot path, counted by callgrind (deterministic).

Wall-clock timings on a shared machine swing by tens of percent; instruction counts
do not. For each operation this runs ``python -m benchmarks.instructions --run OP N``
under ``valgrind --tool=callgrind`` twice (N = 0 and N = ``--calls``) against a local
memcached it starts, and prints ``(Ir(N) - Ir(0)) / N``: the instructions one call
executes in our process (the server's work is not counted).

Usage::

    python -m benchmarks.instructions [--calls N] [--ops get,set,...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPS = ("get", "set", "incr", "decr", "delete", "touch", "add", "django_get", "django_set")
VALUE = bytes(range(100))


def _operation(name: str, address: str) -> Callable[[], Any]:
    if name.startswith("django_"):
        import django
        from django.conf import settings

        settings.configure(
            CACHES={
                "default": {"BACKEND": "layered_cache.django.MemcacheCache", "LOCATION": address}
            }
        )
        django.setup()
        from django.core.cache import caches

        # The backend itself, as each thread's caches[alias] is (not the proxy object
        # django.core.cache.cache, whose per-call lookup is Django's cost, not ours).
        cache = caches["default"]
        cache.set("hit", VALUE)
        if name == "django_get":
            return lambda: cache.get("hit")
        return lambda: cache.set("set", VALUE)
    from layered_cache import Client

    client = Client(address)
    client.set("hit", VALUE)
    client.set("ctr", 10**9)
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: client.get("hit"),
        "set": lambda: client.set("set", VALUE),
        "incr": lambda: client.incr("ctr", 1),
        "decr": lambda: client.decr("ctr", 1),
        "delete": lambda: client.delete("missing"),
        "touch": lambda: client.touch("hit", 0),
        "add": lambda: client.add("hit", VALUE),  # (exists: NOT_STORED, every time)
    }
    return calls[name]


def _run(name: str, calls: int, address: str) -> None:
    call = _operation(name, address)
    call()
    for _ in range(calls):
        call()


def _instructions(name: str, calls: int, address: str, out_dir: Path) -> int:
    out = out_dir / f"{name}.{calls}.out"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--run",
            name,
            str(calls),
            address,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
    if summary is None:
        raise RuntimeError(f"no summary in {out}")
    return int(summary.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--run", nargs=3, metavar=("OP", "N", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        name, calls, address = args.run
        _run(name, int(calls), address)
        return 0
    from tests.servers import ServerGroup, start_memcached

    group = ServerGroup()
    try:
        server = group.add(start_memcached())
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.ops.split(","):
                base = _instructions(name, 0, server.address, Path(tmp))
                full = _instructions(name, args.calls, server.address, Path(tmp))
                print(
                    f"{name:<12} {(full - base) / args.calls:>10,.0f} instructions/call", flush=True
                )
    finally:
        group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
