#!/usr/bin/env bash
# Sets everything up, then shows layered_cache working against local memcached
# servers it starts itself (plain, TLS, ASCII auth, a MemCachier gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --main-only
exec .venv/bin/python scripts/demo.py "$@"
