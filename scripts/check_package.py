"""Packaging check: what ``pip install layered-cache`` and an sdist user get must work.

1. Build the wheel and the sdist (``python -m build --no-isolation``: the build backend
   comes from the dev environment, nothing is downloaded).
2. Validate them: ``twine check --strict`` (the metadata and README PyPI would render),
   the classifiers against ``trove-classifiers`` (PyPI refuses unknown ones), and the
   files each holds (the license in both, ``py.typed`` in the wheel, no tests in it,
   everything the documentation includes in the sdist).
3. Install the wheel, with the ``django`` extra, in a fresh virtual environment (pip
   fetches the dependencies from the package index) and, from a directory outside the
   repository, import what the demo imports, start Django with the app installed, and
   run the console script.
4. Build the documentation from the unpacked sdist, warnings as errors.

Usage: python scripts/check_package.py [--keep DIR]   (run by scripts/test.sh)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# What the demo (scripts/demo.py) imports and does, run against the installed wheel.
SMOKE = """
import sys
from pathlib import Path

import layered_cache
from layered_cache import AuthenticationError, Client, InvalidKeyError
from layered_cache.auth import AsciiAuth, MemCachierAuth
from layered_cache.serialization import JSONSerializer
from layered_cache.transport import TLSTransport

where = Path(layered_cache.__file__).resolve()
assert "site-packages" in where.parts, f"imported from {where}, not from the installed wheel"
assert (where.parent / "py.typed").is_file(), "py.typed is missing"

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["layered_cache.django"],
    CACHES={
        "default": {
            "BACKEND": "layered_cache.django.MemcacheCache",
            "LOCATION": "127.0.0.1:11211",
            "OPTIONS": {"serializer": "json", "timeout": 1},
        }
    },
)
django.setup()  # the app validates CACHES here
from django.core.cache import caches

from layered_cache.django import MemcacheCache

assert isinstance(caches["default"], MemcacheCache)
print(f"layered_cache {layered_cache.__version__} on Django {django.get_version()}: OK")
"""


def log(message: str) -> None:
    print(f"--- {message}", flush=True)


def run(*args: str | Path, cwd: Path | None = None, quiet: bool = False) -> None:
    output = subprocess.DEVNULL if quiet else None
    # Our own tools and paths, never input from elsewhere.
    done = subprocess.run([str(a) for a in args], cwd=cwd, stdout=output, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(str(a) for a in args)}")


def check_classifiers() -> None:
    import tomllib

    from trove_classifiers import classifiers

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    unknown = [c for c in listed["project"]["classifiers"] if c not in classifiers]
    if unknown:
        sys.exit(f"pyproject.toml: classifiers PyPI does not know: {unknown}")


def check_contents(wheel: Path, sdist: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    problems = []
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("the wheel has no LICENSE")
    if "layered_cache/py.typed" not in names:
        problems.append("the wheel has no layered_cache/py.typed")
    if "layered_cache/django/apps.py" not in names:
        problems.append("the wheel has no layered_cache/django")
    if any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names):
        problems.append("the wheel holds tests, docs or benchmarks")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = [
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "docs/conf.py",
        "docs/_inventories/python.inv",
        "examples/django_features/manage.py",
        *(
            str(path.relative_to(ROOT))
            for path in (ROOT / "benchmarks" / "results").glob("*")
            if path.suffix in {".txt", ".png", ".svg", ".csv", ".rst"}
        ),
    ]
    problems += [f"the sdist has no {name}" for name in needed if name not in members]
    if any(name.startswith("docs/_build/") for name in members):
        problems.append("the sdist holds docs/_build")
    if problems:
        sys.exit("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="layered-cache-package-") as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        dist = work / "dist"

        log("build: wheel and sdist")
        run(PYTHON, "-m", "build", "--no-isolation", "--outdir", dist, ROOT)
        [wheel] = dist.glob("*.whl")
        [sdist] = dist.glob("*.tar.gz")

        log("validate: twine check --strict, classifiers, contents")
        run(PYTHON, "-m", "twine", "check", "--strict", wheel, sdist)
        check_classifiers()
        check_contents(wheel, sdist)

        log(f"install {wheel.name} in a fresh virtual environment")
        venv = work / "venv"
        run(PYTHON, "-m", "venv", "--clear", venv)
        python = venv / "bin" / "python"
        pip = (python, "-m", "pip", "install", "-q", "--disable-pip-version-check")
        run(*pip, f"{wheel}[django]")
        smoke = work / "smoke"
        smoke.mkdir(exist_ok=True)
        run(python, "-I", "-c", SMOKE, cwd=smoke)
        run(venv / "bin" / "layered-cache", "--help", cwd=smoke, quiet=True)

        log(f"docs from the unpacked {sdist.name}")
        with tarfile.open(sdist) as archive:
            archive.extractall(work / "sdist", filter="data")
        [source] = (work / "sdist").iterdir()
        sphinx = Path(PYTHON).parent / "sphinx-build"
        run(sphinx, "-q", "-W", "--keep-going", "-n", "-b", "html", source / "docs", work / "html")
        log("package OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
