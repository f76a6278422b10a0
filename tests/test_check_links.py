"""``scripts/check_links.py``: the offline check of the built documentation's internal links."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_links", ROOT / "scripts/check_links.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_broken_pages_and_anchors_are_found(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="api/django.html#good">ok</a> <a href="#top">ok</a> <p id="top"></p>'
        '<a href="api/django.html#gone">anchor</a> <a href="missing.html">page</a>'
        '<a href="https://example.com/#x">external</a> <a name="old-style"></a>',
        encoding="utf-8",
    )
    (tmp_path / "api" / "django.html").write_text(
        '<dt id="good"></dt><a href="../index.html#old-style">ok</a>', encoding="utf-8"
    )
    assert load().broken_links(tmp_path) == [
        "index.html: api/django.html#gone (no such anchor)",
        "index.html: missing.html (no such file)",
    ]


def test_the_command_fails_on_a_broken_link(tmp_path: Path) -> None:
    check_links = load()
    (tmp_path / "index.html").write_text('<a href="#nowhere">x</a>', encoding="utf-8")
    assert check_links.main([str(tmp_path)]) == 1
    (tmp_path / "index.html").write_text('<a id="here" href="#here">x</a>', encoding="utf-8")
    assert check_links.main([str(tmp_path)]) == 0
    assert check_links.main([str(tmp_path / "nope")]) == 2
