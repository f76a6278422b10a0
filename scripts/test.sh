#!/usr/bin/env bash
# The whole suite: lint, types, docs, packaging, and the tests on Django 5.2 LTS (Python 3.11)
# and on the newest Django 6.x (Python 3.12+), against real memcached processes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

log "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
log "mypy --strict"
.venv/bin/mypy
if [ -f docs/conf.py ]; then
    log "sphinx (warnings are errors)"
    .venv/bin/sphinx-build -q -W --keep-going -n -b html docs docs/_build/html
    log "docs: internal links and anchors (offline)"
    .venv/bin/python scripts/check_links.py docs/_build/html
fi
log "package: wheel and sdist built, checked, installed in a fresh venv; docs from the sdist"
.venv/bin/python scripts/check_package.py
log "pytest: $(.venv/bin/python --version), Django $(.venv/bin/python -c 'import django; print(django.__version__)')"
.venv/bin/python -m pytest "$@"
if [ -x .venv-django6/bin/python ]; then
    log "pytest: $(.venv-django6/bin/python --version), Django $(.venv-django6/bin/python -c 'import django; print(django.__version__)')"
    .venv-django6/bin/python -m pytest -p no:cacheprovider "$@"
else
    log "Django 6 run skipped: no Python 3.12+ on this machine"
fi
