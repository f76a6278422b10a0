#!/usr/bin/env bash
# Sets up everything layered_cache's demo and tests need, idempotently:
#   - memcached and nutcracker (twemproxy) from Debian's packages, when missing;
#   - .venv          Python 3.11 + Django 5.2 LTS + every dev tool (tests, lint, docs);
#   - .venv-django6  Python 3.12/3.13 + the newest Django 6.x (tests), when such a Python exists.
# Usage: bash scripts/setup.sh [--main-only]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing=()
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v nutcracker >/dev/null 2>&1 || missing+=(nutcracker)
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

find_python() {  # find_python 3.12 -> path of a working python3.12, or nothing
    local version=$1 candidate
    for candidate in "python$version" \
        "$(pyenv root 2>/dev/null)/versions/$version"*/bin/python \
        "$HOME/.pyenv/versions/$version"*/bin/python; do
        # pyenv shims exist for every version but fail unless it is selected: run it.
        if "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
            "$candidate" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

make_venv() {  # make_venv DIR PYTHON DJANGO-SPEC GROUP
    local dir=$1 python=$2 django=$3 group=$4 stamp
    stamp="$dir/.stamp-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"
    if [ -f "$stamp" ]; then
        return 0
    fi
    log "creating $dir with $("$python" --version) and $django"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -U "pip>=25.1"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -e . --group "$group" "$django"
    touch "$stamp"
}

main_python=$(find_python 3.11 || true)
[ -n "$main_python" ] || main_python=$(command -v python3)
make_venv .venv "$main_python" "Django>=5.2,<6" dev

if [ "${1:-}" != "--main-only" ]; then
    new_python=$(find_python 3.12 || find_python 3.13 || true)
    if [ -n "$new_python" ]; then
        make_venv .venv-django6 "$new_python" "Django>=6,<7" test
    else
        log "no Python 3.12 or 3.13 found: the Django 6 test run will be skipped"
    fi
fi
