"""Sphinx configuration for layered_cache's documentation.

Build (warnings are errors, references are checked, no network needed)::

    .venv/bin/sphinx-build -q -W --keep-going -n -b html docs docs/_build/html

Every code sample in these pages is executed against real memcached by
``tests/test_docs.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any, ClassVar

import attrs
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import signature as sphinx_signature
from sphinx.util.inspect import stringify_signature

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import layered_cache  # noqa: E402 - needs the path above when the package is not installed

# -- Project -------------------------------------------------------------------------------

project = "layered_cache"
author = "layered_cache contributors"
copyright = "layered_cache contributors"
release = layered_cache.__version__
version = ".".join(release.split(".")[:2])

# layered_cache.django.toolbar.panel subclasses django-debug-toolbar's Panel, whose module reads
# Django's settings when it is imported: default settings let autodoc import it.
try:
    from django.conf import settings as _django_settings
except ImportError:  # pragma: no cover - Django is a docs dependency
    pass
else:
    if not _django_settings.configured:
        _django_settings.configure()

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "_inventories", "Thumbs.db", ".DS_Store"]
nitpicky = True
# Type annotations name a few things no inventory documents; each is listed with a reason.
nitpick_ignore = [
    # typing.Protocol's own machinery shows up as the base of the strategy protocols.
    ("py:class", "typing.Protocol"),
    # Django raises it for invalid keys but does not document it as an object.
    ("py:class", "django.core.cache.backends.base.InvalidCacheKey"),
    # The type variable of Operations (an engine's server type) is not an object to link.
    ("py:class", "layered_cache.core.operations.N"),
    # ... and the result type of a flow (Operations.ask), a type variable too.
    ("py:class", "layered_cache.core.operations.T"),
    # The type variables of NamespaceFlows (an engine's client) and of view_method (a method).
    ("py:class", "layered_cache.core.namespaces.C"),
    ("py:class", "layered_cache.core.namespaces.F"),
    # asyncio.Future is the C class of that name, which autodoc shows by its home module.
    ("py:class", "_asyncio.Future"),
    # The asyncio engine's connection class is internal (no page documents it).
    ("py:class", "layered_cache.aio.connection.AsyncConnection"),
    # The type variable of the observer's connection wrappers (an engine's connection).
    ("py:class", "layered_cache.core.observer.T"),
    # prometheus-client publishes no Sphinx inventory.
    ("py:class", "prometheus_client.registry.CollectorRegistry"),
]

default_role = "py:obj"
pygments_style = "friendly"
pygments_dark_style = "monokai"

# -- HTML ----------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"layered_cache {release}"
html_static_path: list[str] = []

# -- autodoc and napoleon ------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True


class _Shown:
    """A default value shown as the given text in a signature."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _default_text(default: Any) -> str:
    if isinstance(default, attrs.Factory):
        factory = default.factory
        literal = {list: "[]", dict: "{}", tuple: "()", set: "set()", frozenset: "frozenset()"}
        if factory in literal:
            return literal[factory]
        return f"{getattr(factory, '__name__', repr(factory))}()"
    return repr(default)


def _attrs_signature(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Signatures of attrs classes with their real defaults; none for Protocols.

    With ``autodoc_preserve_defaults`` autodoc reads defaults from the source of
    ``__init__``, which attrs generates: every default would read
    ``attr_dict['name'].default``, and a factory ``NOTHING``. Here they are the
    values themselves (``True``, ``'zlib'``) and factories as calls
    (``PickleSerializer()``).
    """
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", return_annotation  # a Protocol is not instantiated: no signature
    if what not in ("class", "exception") or not attrs.has(obj):
        return None
    defaults = {
        field.alias: field.default
        for field in attrs.fields(obj)
        if field.init and field.default is not attrs.NOTHING
    }
    sig = sphinx_signature(obj.__init__, bound_method=True)
    parameters = [
        parameter.replace(default=_Shown(_default_text(defaults[parameter.name])))
        if parameter.name in defaults
        else parameter
        for parameter in sig.parameters.values()
    ]
    text = stringify_signature(
        sig.replace(parameters=parameters),
        show_return_annotation=False,
        unqualified_typehints=app.config.autodoc_typehints_format == "short",
    )
    return text, return_annotation


# -- intersphinx, offline ------------------------------------------------------------------
#
# CI reaches package registries only, so the inventories are read from files:
#
# - python.inv is Python 3.11's complete objects.inv (from Debian's python3.11-doc package:
#   ``apt-get download python3.11-doc`` and take usr/share/doc/python3.11/html/objects.inv,
#   or fetch https://docs.python.org/3/objects.inv where the network allows).
# - django.txt and pymemcache.txt list the few targets these pages use; they are compressed
#   into objects.inv files below at every build. Add a line there to link something new.

INVENTORIES = DOCS / "_inventories"


def _compile_inventory(name: str, project_name: str, project_version: str) -> str:
    """Turn ``_inventories/<name>.txt`` into a Sphinx v2 objects.inv and return its path."""
    lines = [
        line
        for line in (INVENTORIES / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project_name}\n"
        f"# Version: {project_version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    body = zlib.compress(("\n".join(lines) + "\n").encode("utf-8"))
    target = DOCS / "_build" / "inventories" / f"{name}.inv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(header + body)
    return str(target)


intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", str(INVENTORIES / "python.inv")),
    "django": (
        "https://docs.djangoproject.com/en/5.2/",
        _compile_inventory("django", "Django", "5.2"),
    ),
    "pymemcache": (
        "https://pymemcache.readthedocs.io/en/latest/",
        _compile_inventory("pymemcache", "pymemcache", "4.0"),
    ),
}
intersphinx_timeout = 5


# -- Local directives ----------------------------------------------------------------------


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


class IfImportable(SphinxDirective):
    """``.. if-importable:: module`` renders its content only when ``module`` imports.

    The optional ``:otherwise:`` text is shown instead. Used for the API pages of parts
    that need optional dependencies, so that autodoc never runs on a module it cannot import.
    """

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"otherwise": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        if _importable(self.arguments[0]):
            self.state.nested_parse(self.content, self.content_offset, container)
        elif "otherwise" in self.options:
            text = StringList([self.options["otherwise"]], source="if-importable")
            self.state.nested_parse(text, 0, container)
        return container.children


class BenchmarkResults(SphinxDirective):
    """``.. benchmark-results::`` summarises ``scripts/bench.sh``'s ``benchmarks/results/``.

    For each benchmark (the peer benchmark first, then the others by name): a table of
    the targets its JSON file records (goal, measured, status), its plot (``.png``,
    ``.svg``) as a figure linked to the full-size image, its text report inline when it
    is short (at most ``SHORT`` lines), and links to the raw files (``.txt``,
    ``.json``, ``.csv``). With nothing there, a note says so (the page goes on to say
    how to run the benchmark).
    """

    option_spec: ClassVar[dict[str, Any]] = {"path": directives.unchanged}
    ORDER = ("peers", "scale", "movement", "herd", "hotpath")
    SHORT = 25
    TITLES: ClassVar[dict[str, str]] = {
        "peers": "layered_cache and the alternatives",
        "scale": "Several servers",
        "movement": "Keys that move when a server is added or removed",
        "herd": "A thundering herd, and meta-protocol batches",
        "hotpath": "Where the time goes in one call (profile)",
    }

    def _rank(self, stem: str) -> tuple[int, str]:
        return (self.ORDER.index(stem) if stem in self.ORDER else len(self.ORDER)), stem

    @staticmethod
    def _targets(path: Path) -> list[str]:
        try:
            targets = json.loads(path.read_text(encoding="utf-8")).get("targets") or []
        except (ValueError, AttributeError):
            return []
        lines = [
            ".. list-table:: Targets (ratios to the call named; the goal says which way is better)",
            "   :header-rows: 1",
            "   :widths: 64 12 12 12",
            "",
            "   * - Target",
            "     - Goal",
            "     - Measured",
            "     - Status",
        ]

        def shown(value: object, prefix: str = "") -> str:
            # Speed ratios are numbers; other targets (counts, bounds) come as text.
            if isinstance(value, int | float):
                return f"{prefix}{value:.2f}\u00d7"
            return str(value)

        for target in targets:
            lines += [
                f"   * - {target['target']}",
                f"     - {shown(target['goal'], target.get('comparison', '≥') + ' ')}",
                f"     - {shown(target['measured'])}",
                f"     - {target['status']}",
            ]
        return [*lines, ""] if targets else []

    def run(self) -> list[nodes.Node]:
        results = (DOCS / self.options.get("path", "../benchmarks/results")).resolve()
        files = sorted(results.glob("*")) if results.is_dir() else []
        kinds = {".png", ".svg", ".csv", ".txt", ".rst", ".json"}
        stems = sorted({f.stem for f in files if f.suffix in kinds}, key=self._rank)
        here = Path(self.env.doc2path(self.env.docname)).parent
        lines: list[str] = []
        for stem in stems:
            group = {f.suffix: f for f in files if f.stem == stem and f.suffix in kinds}
            for path in group.values():
                self.env.note_dependency(str(path))
            rel = {suffix: os.path.relpath(path, here) for suffix, path in group.items()}
            title = self.TITLES.get(stem, stem.replace("_", " ").capitalize())
            lines += [".. rubric:: " + title, ""]
            if ".json" in group:
                lines += self._targets(group[".json"])
            for suffix in (".png", ".svg"):
                if suffix in group:
                    lines += [
                        f".. figure:: {rel[suffix]}",
                        "   :width: 100%",
                        f"   :alt: {title}",
                        "",
                        "   Select the chart to see it full size.",
                        "",
                    ]
            if ".rst" in group:
                lines += [f".. include:: {rel['.rst']}", ""]
            if ".csv" in group:
                lines += [".. csv-table::", f"   :file: {rel['.csv']}", "   :header-rows: 1", ""]
            text = group.get(".txt")
            if text and len(text.read_text(encoding="utf-8").splitlines()) <= self.SHORT:
                lines += [f".. literalinclude:: {rel['.txt']}", "   :language: text", ""]
            raw = [
                f":download:`{group[suffix].name} <{rel[suffix]}>`"
                for suffix in (".txt", ".json", ".csv")
                if suffix in group
            ]
            if raw:
                lines += ["Raw results: " + ", ".join(raw) + ".", ""]
        if not stems:
            lines = [
                ".. note::",
                "",
                "   No benchmark results are committed in ``benchmarks/results/`` yet: run",
                "   the benchmark as shown below, and rebuild the documentation.",
            ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=str(results)), 0, container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    # Django's documentation defines :setting:; declaring it here lets intersphinx resolve
    # :setting:`django:CACHES` against Django's inventory.
    app.add_crossref_type("setting", "setting", indextemplate="pair: %s; setting")
    app.add_directive("if-importable", IfImportable)
    app.add_directive("benchmark-results", BenchmarkResults)
    app.connect("autodoc-process-signature", _attrs_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
