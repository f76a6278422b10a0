"""Every code sample in ``docs/`` and ``README.md`` runs against real memcached.

How a page runs (extraction and placeholders: ``tests/docs_support.py``):

- A page is one test. Its samples run in document order in one namespace, as a reader
  would type them: doctest blocks (``>>>``) are checked by :mod:`doctest` (with
  ``ELLIPSIS``), ``.. code-block:: python`` blocks are executed.
- In a python block, an expression statement followed by a comment that is a Python
  literal is checked: ``client.get("k")  # {'a': 1}`` fails unless the value is
  ``{'a': 1}``. Text after a ``;`` in the comment is prose; a comment that is not a
  literal (``# stored for a minute``) is only a comment.
- A python block that assigns ``CACHES`` is a settings sample: each entry whose
  ``BACKEND`` is layered_cache's or Django's ``PyMemcacheCache`` is built as Django
  builds it and a value round-trips through it. Other backends (the "before" of a
  migration) are only executed.
- A python block that imports ``django.core.cache`` runs with Django's ``cache`` and
  ``caches`` configured from the page's latest ``CACHES`` sample (the quickstart's
  one-line configuration when the page has none).
- A settings sample may assign ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` too: from then
  on the page's caches are built and used with those Django settings (``"signed_pickle"``
  signs with them).
- ``MEMCACHE_*``/``MEMCACHIER_*`` are cleared for every page (``.. test-env:`` sets what a
  sample needs) and ``SSL_CERT_FILE`` names the test CA, which thereby plays the
  system's trusted authorities for samples that verify TLS without a ``ca_file``.

The docstring examples of every ``layered_cache`` module run too, with
``memcached_address`` naming a running memcached. When ``layered_cache.django`` cannot be
imported, the samples that need it are skipped with that reason; the others still run.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import os
import pkgutil
import re
import ssl
import tokenize
import types
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import layered_cache
from layered_cache import Client
from tests.cluster_endpoint import ConfigEndpoint
from tests.docs_support import (
    DOCS_ASCII_CREDENTIALS,
    DOCS_MEMCACHIER_CREDENTIALS,
    Profile,
    Sample,
    TLSTerminator,
    World,
    code_only,
    environment,
    loopback_only,
    markdown_samples,
    profile_of,
    rewrite,
    rst_samples,
)
from tests.servers import (
    MemcachedProcess,
    MemCachierGateway,
    ServerGroup,
    TLSMaterial,
    tls_server_args,
)
from tests.twemproxy import NutcrackerProcess

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(
    path for path in DOCS.rglob("*.rst") if not path.relative_to(DOCS).parts[0].startswith("_")
)
OUR_BACKEND = "layered_cache.django.MemcacheCache"
#: Backends a settings sample is built with; others are only executed.
BUILT_BACKENDS = (OUR_BACKEND, "django.core.cache.backends.memcached.PyMemcacheCache")
#: Django settings a settings sample may assign besides CACHES (applied to its caches).
DJANGO_SETTINGS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS")
#: Languages of code blocks that are not executed, on purpose.
NOT_PYTHON = {"console", "text", "bash", "ini", "toml", "yaml", "json"}
#: README's Django sample names MemCachier auth and leaves the credentials to the
#: environment, as the sentence after it says ("the backend reads MEMCACHIER_*").
README_ENV = {
    "MEMCACHIER_USERNAME": DOCS_MEMCACHIER_CREDENTIALS[0],
    "MEMCACHIER_PASSWORD": DOCS_MEMCACHIER_CREDENTIALS[1],
}
CLEARED_ENV = [
    f"{family}_{name}"
    for family in ("MEMCACHE", "MEMCACHIER")
    for name in ("SERVERS", "USERNAME", "PASSWORD")
]


def _backend_problem() -> str | None:
    """Why the Django backend cannot be used here, or None when it can."""
    try:
        from django.utils.module_loading import import_string

        import_string(OUR_BACKEND)
    except ImportError as exc:
        return f"{OUR_BACKEND} is not importable ({exc})"
    return None


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the servers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_servers(
    tls_material: TLSMaterial,
    three_memcached_session: list[MemcachedProcess],
    tls_memcached_session: MemcachedProcess,
) -> Iterator[dict[str, Any]]:
    """The servers that accept the documentation's own credentials, a twemproxy, and
    configuration endpoints in front of the plain and the TLS servers."""
    group = ServerGroup()
    tls_args = tls_server_args(tls_material.server_cert_file, tls_material.server_key_file)
    with group:
        ascii_server = group.add(
            MemcachedProcess(credentials=DOCS_ASCII_CREDENTIALS, name="docs-ascii")
        )
        tls_ascii_server = group.add(
            MemcachedProcess(
                tls_args,
                ssl_context=tls_material.client_context(),
                credentials=DOCS_ASCII_CREDENTIALS,
                name="docs-tls-ascii",
            )
        )
        upstream = group.add(MemcachedProcess(name="docs-memcachier-upstream"))
        for process in group.processes:
            process.start()
        proxy = NutcrackerProcess(three_memcached_session, hash="md5", name="docs-twemproxy")
        with (
            contextlib.closing(proxy.start()),
            MemCachierGateway(upstream, *DOCS_MEMCACHIER_CREDENTIALS) as gateway,
            TLSTerminator(
                (gateway.host, gateway.port),
                cert_file=tls_material.server_cert_file,
                key_file=tls_material.server_key_file,
            ) as terminator,
            ConfigEndpoint(three_memcached_session) as endpoint,
            ConfigEndpoint(
                [("localhost", tls_memcached_session.host, tls_memcached_session.port)],
                ssl_context=_server_context(tls_material),
                upstream=(three_memcached_session[0].host, three_memcached_session[0].port),
            ) as tls_endpoint,
        ):
            yield {
                "processes": group.processes,
                "ascii": ascii_server.address,
                "tls_ascii": tls_ascii_server.address,
                "memcachier": gateway.address,
                "tls_memcachier": terminator.address,
                "twemproxy": proxy,
                "config_endpoint": endpoint.address,
                "tls_config_endpoint": f"localhost:{tls_endpoint.port}",
            }


def _server_context(material: TLSMaterial) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(material.server_cert_file, material.server_key_file)
    return context


@pytest.fixture
def world(
    docs_servers: dict[str, Any],
    three_memcached: list[MemcachedProcess],
    tls_memcached: MemcachedProcess,
    mtls_memcached: MemcachedProcess,
    tls_material: TLSMaterial,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """Placeholders -> clean test servers and files; a clean environment for samples."""
    for process in docs_servers["processes"]:
        process.ensure_running()
        process.flush()
    if not docs_servers["twemproxy"].is_running:
        docs_servers["twemproxy"].start()
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", tls_material.ca_file)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return World(
        servers={
            Profile(): [server.address for server in three_memcached],
            Profile(tls=True): [tls_memcached.address],
            Profile(tls=True, client_cert=True): [mtls_memcached.address],
            Profile(auth="ascii"): [docs_servers["ascii"]],
            Profile(tls=True, auth="ascii"): [docs_servers["tls_ascii"]],
            Profile(auth="memcachier"): [docs_servers["memcachier"]],
            Profile(tls=True, auth="memcachier"): [docs_servers["tls_memcachier"]],
        },
        files={
            "ca.pem": tls_material.ca_file,
            "other-ca.pem": tls_material.untrusted_ca_file,
            "client.pem": tls_material.client_cert_file,
            "client.key": tls_material.client_key_file,
        },
        twemproxy=docs_servers["twemproxy"].address,
        config_endpoints={
            Profile(): docs_servers["config_endpoint"],
            Profile(tls=True): docs_servers["tls_config_endpoint"],
        },
    )


# -- running a page ------------------------------------------------------------------------


def _literal(comment: str) -> str | None:
    """The literal a result comment states (``# True``, ``# {'a': 1}; prose``), if any."""
    text = comment.lstrip("#").strip().removeprefix("->").split(";")[0].strip()
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text


class _CheckResults(ast.NodeTransformer):
    """Turns ``expr  # literal`` statements into ``__docs_check__(expr, "literal", line)``."""

    def __init__(self, comments: dict[int, str], sample: Sample) -> None:
        self.comments = comments
        self.sample = sample
        self.checks = 0

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        comment = self.comments.get(node.end_lineno or node.lineno)
        expected = _literal(comment) if comment and node.lineno == node.end_lineno else None
        if expected is None:
            return node
        self.checks += 1
        where = f"{_rel(self.sample.path)}:{self.sample.line + node.lineno - 1}"
        call = ast.Call(
            func=ast.Name("__docs_check__", ast.Load()),
            args=[node.value, ast.Constant(expected), ast.Constant(where)],
            keywords=[],
        )
        return ast.copy_location(ast.Expr(call), node)


def _check(value: object, expected_text: str, where: str) -> None:
    expected = ast.literal_eval(expected_text)
    if type(value) is not type(expected) or value != expected:
        raise AssertionError(f"{where}: the comment says {expected_text}, the code gave {value!r}")


def _compile(sample: Sample, source: str) -> tuple[Any, ast.Module]:
    comments = {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    tree = _CheckResults(comments, sample).visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, sample.line - 1)
    return compile(tree, str(sample.path), "exec"), tree


def _assigns_caches(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(target, ast.Name) and target.id == "CACHES"
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
        for node in tree.body
    )


def _close(cache: Any) -> None:
    cache.close()
    client = getattr(cache, "client", None)
    if isinstance(client, Client):
        client.close()


def _exercise(caches: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """Build each cache of a CACHES sample as Django would, and round-trip a value."""
    from django.utils.module_loading import import_string

    for alias, entry in caches.items():
        if entry["BACKEND"] not in BUILT_BACKENDS:
            continue
        params = dict(entry)
        backend = import_string(params.pop("BACKEND"))
        cache = backend(params.pop("LOCATION", ""), params)
        try:
            key, value = f"docs-sample:{alias}", {"sample": where, "alias": alias}
            cache.set(key, value, 30)
            got = cache.get(key)
            assert got == value, f"{where}: CACHES[{alias!r}] stored {value!r}, read {got!r}"
            cache.delete(key)
        finally:
            _close(cache)


@contextlib.contextmanager
def _django_cache(caches: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """``django.core.cache.cache`` and ``caches`` built from ``caches``, for one sample."""
    from django.core import cache as cache_module
    from django.core.cache import DEFAULT_CACHE_ALIAS, CacheHandler
    from django.utils.connection import ConnectionProxy

    handler = CacheHandler({alias: dict(entry) for alias, entry in caches.items()})
    saved = cache_module.caches, cache_module.cache
    cache_module.caches = handler
    cache_module.cache = ConnectionProxy(handler, DEFAULT_CACHE_ALIAS)
    try:
        yield
    finally:
        cache_module.caches, cache_module.cache = saved
        for cache in handler.all(initialized_only=True):
            _close(cache)


@contextlib.contextmanager
def _django_settings(namespace: Mapping[str, Any]) -> Iterator[None]:
    """The :data:`DJANGO_SETTINGS` the page assigned so far, as Django's settings."""
    values = {name: namespace[name] for name in DJANGO_SETTINGS if name in namespace}
    if not values:
        yield
        return
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:  # running without tests/django, which configures them
        settings.configure(SECRET_KEY="layered-cache-docs-samples-only")
    with override_settings(**values):
        yield


_USES_DJANGO_CACHE = re.compile(
    r"^\s*(from django\.core\.cache import|import django\.core\.cache)", re.M
)


class _Page:
    """One page being run: its namespace, its latest CACHES, what went wrong."""

    def __init__(self, world: World, extra_env: Mapping[str, str]) -> None:
        self.world = world
        self.extra_env = extra_env
        self.backend_problem = _backend_problem()
        self.namespace: dict[str, Any] = {"__name__": "__docs__", "__docs_check__": _check}
        # Until the page shows its own CACHES: the quickstart's one-line configuration.
        self.caches: Mapping[str, Mapping[str, Any]] = {
            "default": {"BACKEND": OUR_BACKEND, "LOCATION": world.servers[Profile()][0]}
        }
        self.failures: list[str] = []
        self.skipped: list[str] = []

    def run(self, sample: Sample) -> None:
        env_text = " ".join(f"{name}={value}" for name, value in sample.env.items())
        code = code_only(sample.source) if sample.kind == "python" else sample.source
        profile = profile_of(f"{code}\n{env_text}")
        source = rewrite(sample.source, profile, self.world)
        env = {
            name: rewrite(value, profile, self.world)
            for name, value in {**self.extra_env, **sample.env}.items()
        }
        uses_django_cache = bool(_USES_DJANGO_CACHE.search(source))
        needs_backend = "layered_cache.django" in source
        if self.backend_problem and (needs_backend or uses_django_cache):
            self.skipped.append(sample.where)
            return
        with environment(env):
            if sample.kind == "doctest":
                failure = _run_doctest(sample, source, self.namespace)
                if failure:
                    self.failures.append(failure)
                return
            compiled, tree = _compile(sample, source)
            django = _django_cache(self.caches) if uses_django_cache else contextlib.nullcontext()
            with _django_settings(self.namespace), django:
                exec(compiled, self.namespace)  # noqa: S102 - running the docs is the point
            if _assigns_caches(tree):
                self.caches = self.namespace["CACHES"]
                with _django_settings(self.namespace):
                    _exercise(self.caches, sample.where)

    def close(self) -> None:
        for value in list(self.namespace.values()):
            if isinstance(value, Client):
                value.close()


def run_page(
    samples: list[Sample], world: World, *, extra_env: Mapping[str, str] | None = None
) -> None:
    """Run a page's samples in order in one namespace; fail with every problem found."""
    page = _Page(world, extra_env or {})
    refused: list[str] = []
    with loopback_only(refused):
        try:
            for sample in samples:
                page.run(sample)
        finally:
            page.close()
    assert not refused, f"samples tried to reach {refused}: add a placeholder for them"
    if page.failures:
        pytest.fail("\n".join(page.failures), pytrace=False)
    if page.skipped:
        pytest.skip(f"{page.backend_problem}: skipped the samples at {', '.join(page.skipped)}")


def _run_doctest(sample: Sample, source: str, namespace: dict[str, Any]) -> str | None:
    test = doctest.DocTestParser().get_doctest(
        source, namespace, sample.where, str(sample.path), sample.line - 1
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)
    return report.getvalue() if runner.failures else None


# -- the tests -----------------------------------------------------------------------------


def _pages_with_samples() -> list[Path]:
    return [page for page in PAGES if rst_samples(page)[0]]


@pytest.mark.parametrize("page", _pages_with_samples(), ids=_rel)
def test_page_samples(page: Path, world: World) -> None:
    samples, _ = rst_samples(page)
    run_page(samples, world)


def test_readme_samples(world: World) -> None:
    samples = markdown_samples(README)
    assert samples, "README.md has no python samples"
    run_page(samples, world, extra_env=README_ENV)


def _docstring_tests(module: Any, **extraglobs: Any) -> list[doctest.DocTest]:
    """The docstring examples of ``module``'s own functions and classes.

    doctest's finder probes every module attribute (``hasattr(value, "__wrapped__")``),
    which a lazy object such as Django's ``settings`` answers by raising. So it searches
    a stand-in holding only the module's functions and classes, found by their real type.
    """
    stand_in = types.ModuleType(module.__name__, module.__doc__)
    stand_in.__file__ = module.__file__
    for name, value in vars(module).items():
        kind = type(value)
        if kind is types.FunctionType or issubclass(kind, type) or name == "__test__":
            setattr(stand_in, name, value)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = finder.find(stand_in, module=module, globs=dict(vars(module)), extraglobs=extraglobs)
    return [test for test in tests if test.examples]


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(layered_cache.__path__, "layered_cache."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            names.append(info.name)  # the test says why
            continue
        if _docstring_tests(module):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name: str, memcached: MemcachedProcess) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if name.startswith("layered_cache.django"):
            pytest.skip(f"{name} is not importable: {exc}")
        raise
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    refused: list[str] = []
    with loopback_only(refused):
        for test in _docstring_tests(module, memcached_address=memcached.address):
            runner.run(test, out=report.write)
    assert not refused, f"docstring examples tried to reach {refused}"
    assert not runner.failures, report.getvalue()


# -- guards: nothing escapes the tests above -----------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_sample_is_collected(page: Path) -> None:
    """Code blocks are python (run) or a known other language; every >>> line is run."""
    samples, languages = rst_samples(page)
    unknown = languages - NOT_PYTHON - {"python"}
    assert not unknown, f"code blocks in {unknown}: use python (run) or one of {NOT_PYTHON}"
    prompts = sum(1 for line in page.read_text(encoding="utf-8").splitlines() if ">>>" in line)
    collected = sum(sample.source.count(">>>") for sample in samples)
    assert collected == prompts, f"{collected} of {prompts} '>>>' lines are in samples"


def test_inventory_sources_are_well_formed() -> None:
    """docs/_inventories/*.txt become objects.inv files; a bad line would break links."""
    for source in (DOCS / "_inventories").glob("*.txt"):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split(None, 4)
            assert len(fields) == 5, f"{source.name}:{number}: name role priority uri title"
            assert ":" in fields[1], f"{source.name}:{number}: role is domain:role"
            assert fields[2].lstrip("-").isdigit(), f"{source.name}:{number}: priority"
    python = (DOCS / "_inventories" / "python.inv").read_bytes()
    header, _, body = python.partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2")
    assert b"ssl.SSLContext" in zlib.decompress(body)


def test_docs_world_is_complete(world: World) -> None:
    """Every kind of sample has a server, and the TLS + MemCachier front really works."""
    from layered_cache.auth import MemCachierAuth
    from layered_cache.transport import TLSTransport

    assert all(world.servers.values())
    address = world.servers[Profile(tls=True, auth="memcachier")][0]
    transport = TLSTransport(ca_file=world.files["ca.pem"])
    auth = MemCachierAuth(*DOCS_MEMCACHIER_CREDENTIALS)
    with Client(address, transport=transport, auth=auth) as client:
        assert client.set("front", "ok")
        assert client.get("front") == "ok"
    assert os.environ["SSL_CERT_FILE"] == world.files["ca.pem"]
