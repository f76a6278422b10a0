"""Key movement of issue 8: how many keys change server when a node is added or removed.

Places 100,000 keys with our ``Client.server_for(key)`` over 3 and then 4 servers (a
node added) and over 4 and then 3 (a node removed), and reports the fraction of keys
whose server changed against the ideal: adding an N-th node should move 1/N of the
keys (only those the new node takes over), removing one of N should move 1/N (only the
keys it held). Also reports how evenly the keys spread, and whether each key lands
where pymemcache's ``HashClient`` — what Django's ``PyMemcacheCache`` uses — puts it
for the same server list (so both can share a fleet).

No server is contacted: placement is computed, not observed.

Usage::

    python -m benchmarks.movement [--keys N] [--json PATH]
"""

# ruff: noqa: RUF001
# (imports inside functions are deliberate: Django is configured first, peers are
# optional; the multiplication and minus signs are units in the printed tables)

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._bench import machine


def servers(count: int) -> list[str]:
    # Loopback names: nothing is contacted, and nothing could be if it were.
    return [f"127.0.0.1:{11211 + i}" for i in range(count)]


def placement(names: list[str], keys: list[str]) -> list[str]:
    from layered_cache import Client

    client = Client(names)
    try:
        return [client.server_for(key) for key in keys]
    finally:
        client.close()


def pymemcache_placement(names: list[str], keys: list[str]) -> list[str]:
    """Where Django's PyMemcacheCache (pymemcache's HashClient) puts each key."""
    from pymemcache import HashClient

    client = HashClient(names)
    out = []
    for key in keys:
        node = client._get_client(key)  # the server HashClient would send the key to
        host, port = node.server
        out.append(f"{host}:{port}")
    return out


def moved(before: list[str], after: list[str]) -> float:
    return sum(a != b for a, b in zip(before, after, strict=True)) / len(before)


def spread(places: list[str]) -> dict[str, float]:
    counts = Counter(places)
    return {name: counts[name] / len(places) for name in sorted(counts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="how many keys (100,000)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    # Keys shaped like the ones Django sends (":<version>:<key>").
    keys = [f":1:user:{i}:profile" for i in range(args.keys)]
    started = time.monotonic()
    place = {n: placement(servers(n), keys) for n in (3, 4, 8, 9)}
    elapsed = time.monotonic() - started

    changes = []
    for a, b in ((3, 4), (4, 3), (8, 9), (9, 8)):
        fraction = moved(place[a], place[b])
        ideal = 1 / max(a, b)
        changes.append(
            {
                "from": a,
                "to": b,
                "moved": fraction,
                "ideal": ideal,
                "ratio_to_ideal": fraction / ideal,
            }
        )
    # A removed node's keys only: nothing that stays should move.
    kept = [i for i, name in enumerate(place[4]) if name in servers(3)]
    stayed_put = sum(place[4][i] == place[3][i] for i in kept) / len(kept)

    interop = {}
    sample = keys[: min(len(keys), 20_000)]
    for n in (3, 4):
        ours = place[n][: len(sample)]
        theirs = pymemcache_placement(servers(n), sample)
        interop[n] = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(sample)

    print(f"== key movement, {len(keys):,} keys, layered_cache Client.server_for ==")
    print(f"{'change':<10} {'keys moved':>11} {'ideal 1/N':>10} {'moved/ideal':>12}")
    for c in changes:
        print(
            f"{c['from']}→{c['to']:<7} {c['moved']:>11.2%} {c['ideal']:>10.2%} "
            f"{c['ratio_to_ideal']:>11.3f}×"
        )
    print(f"4→3: keys on the three remaining nodes that stayed put: {stayed_put:.2%}")
    for n in (3, 4):
        shares = ", ".join(f"{share:.1%}" for share in spread(place[n]).values())
        print(f"spread over {n} nodes: {shares} (ideal {1 / n:.1%} each)")
    for n, same in interop.items():
        print(
            f"same server as pymemcache HashClient / Django PyMemcacheCache, {n} nodes: "
            f"{same:.2%} of {len(sample):,} keys"
        )
    print(f"({elapsed:.1f} s to place {len(keys) * len(place):,} keys)")

    if args.json:
        data: dict[str, Any] = {
            "benchmark": "movement",
            "machine": machine(),
            "keys": len(keys),
            "changes": changes,
            "stayed_put_4_to_3": stayed_put,
            "spread": {n: spread(place[n]) for n in (3, 4)},
            "same_as_pymemcache_hashclient": interop,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
