#!/usr/bin/env bash
# Runs layered_cache's benchmarks (issues 6, 8, 9 and 18; see benchmarks/README.md), idempotently:
#   - memcached, nutcracker (twemproxy), libmemcached-dev and zlib1g-dev from Debian's
#     packages when missing (the last two let pip build pylibmc);
#   - .venv-bench: layered_cache (editable) + the peers of benchmarks/requirements.txt
#     (pymemcache, Django, pylibmc, django-bmemcached, matplotlib, trustme, and the
#     asyncio peers aiomcache and emcache, uvicorn and httptools);
#   - then the peer benchmark, the scale benchmark, the key-movement measurement, the
#     thundering herd, the async benchmarks (ASGI request shape, asyncio clients,
#     uvicorn) and the listeners' overhead (callgrind when valgrind is installed), each
#     starting and stopping its own memcached / twemproxy / uvicorn processes on 127.0.0.1.
#
# Usage: bash scripts/bench.sh [--quick] [--profile] [--out DIR]
#   --quick    a smoke run in seconds (results go to a temporary directory)
#   --profile  also profile our hot path (benchmarks/hotpath.py)
#   --out DIR  where the JSON, PNG and text results go (default: benchmarks/results)
# A full run takes about 7-8 minutes on 2 cores, after waiting (at most BENCH_MAX_WAIT
# seconds, default 120) for other processes to leave the CPUs alone.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

quick=()
profile=0
out=benchmarks/results
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick); out="${TMPDIR:-/tmp}/layered-cache-bench-quick" ;;
        --profile) profile=1 ;;
        --out) out=$2; shift ;;
        *) echo "usage: bash scripts/bench.sh [--quick] [--profile] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

missing=()
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v nutcracker >/dev/null 2>&1 || [ -x /usr/sbin/nutcracker ] || missing+=(nutcracker)
[ -f /usr/include/libmemcached/memcached.h ] || missing+=(libmemcached-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]} from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "error: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

venv=.venv-bench
stamp="$venv/.stamp-$(cat pyproject.toml benchmarks/requirements.txt scripts/bench.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    python=$(command -v python3.11 || command -v python3)
    log "creating $venv with $("$python" --version)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e . -r benchmarks/requirements.txt
    touch "$stamp"
fi

mkdir -p "$out"
py="$venv/bin/python"
log "peer benchmark (benchmarks/run.py) -> $out/peers.*"
wait=(--max-wait "${BENCH_MAX_WAIT:-120}")
"$py" -m benchmarks.run "${quick[@]}" "${wait[@]}" --json "$out/peers.json" --png "$out/peers.png" | tee "$out/peers.txt"
log "scale benchmark (benchmarks/scale.py) -> $out/scale.*"
"$py" -m benchmarks.scale "${quick[@]}" "${wait[@]}" --json "$out/scale.json" --png "$out/scale.png" | tee "$out/scale.txt"
log "key movement (benchmarks/movement.py) -> $out/movement.*"
keys=100000
[ ${#quick[@]} -gt 0 ] && keys=10000
"$py" -m benchmarks.movement --keys "$keys" --json "$out/movement.json" | tee "$out/movement.txt"
log "thundering herd and meta batches (benchmarks/herd.py) -> $out/herd.*"
rounds=5
[ ${#quick[@]} -gt 0 ] && rounds=1
"$py" -m benchmarks.herd --rounds "$rounds" --json "$out/herd.json" --out "$out/herd.txt"
log "async: ASGI request shape, asyncio clients, uvicorn (benchmarks/async_bench.py) -> $out/async.*"
"$py" -m benchmarks.async_bench "${quick[@]}" "${wait[@]}" --json "$out/async.json" | tee "$out/async.txt"
log "listener overhead on single-key get (benchmarks/observability.py) -> $out/observability.txt"
obs_args=(--calls 20000 --rounds 7)
[ ${#quick[@]} -gt 0 ] && obs_args=(--calls 2000 --rounds 2)
command -v valgrind >/dev/null 2>&1 && obs_args+=(--instructions)
"$py" -m benchmarks.observability "${obs_args[@]}" | tee "$out/observability.txt"
if [ "$profile" = 1 ]; then
    log "hot-path profile (benchmarks/hotpath.py) -> $out/hotpath.txt"
    calls=20000
    [ ${#quick[@]} -gt 0 ] && calls=2000
    "$py" -m benchmarks.hotpath --calls "$calls" | tee "$out/hotpath.txt"
fi
log "results in $out/"
