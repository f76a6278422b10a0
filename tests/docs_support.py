"""What ``tests/test_docs.py`` needs: the samples of a page, and the servers they run against.

Samples
    In reStructuredText pages, ``.. code-block:: python`` blocks and doctest blocks
    (paragraphs starting with ``>>>``); in Markdown files, fenced ```` ```python ````
    blocks. An rst comment ``.. test-env: NAME=value ...`` just before a sample gives it
    environment variables (the page's prose says where they come from).

Placeholders
    Samples are written as a user would write them, with example hosts and file paths.
    Before running, :func:`rewrite` replaces them with the test servers and files:

    - ``mc1.example.com``, ``mc2.example.com``, ``mc3.example.com`` (port optional),
      ``10.0.0.1:11211`` ... ``10.0.0.3:11211`` and ``127.0.0.1:11211`` /
      ``localhost:11211`` become the address of a local server;
    - ``127.0.0.1:22121`` / ``localhost:22121`` (twemproxy's usual port) becomes a local
      twemproxy in front of the plain servers;
    - an ElastiCache configuration endpoint (``<name>.<id>.cfg.<region>.cache.amazonaws.com:11211``)
      and ``10.0.0.100:11211`` (a Memorystore discovery endpoint) become a local
      configuration endpoint (:class:`tests.cluster_endpoint.ConfigEndpoint`) listing the
      local servers (TLS ones, named ``localhost``, for TLS samples);
    - a string literal naming ``ca.pem``, ``other-ca.pem``, ``client.pem`` or
      ``client.key`` (in any directory) becomes the test CA, an unrelated CA, or the
      client certificate and key.

    Anything else a sample connects to is refused: while samples run, :func:`loopback_only`
    lets sockets connect to loopback addresses (and UNIX sockets) only.

    Which server a host becomes depends on what the sample asks for (:func:`profile_of`):
    TLS or not, a client certificate or not, and MemCachier, ASCII or no authentication.
    The docs' credentials are ``user``/``secret`` for MemCachier and ``app``/``secret``
    for memcached's ASCII authentication; the servers started here accept exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import ipaddress
import os
import re
import socket
import ssl
import textwrap
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.harness import STOP_TIMEOUT, Link, ThreadedProxy, pump

__all__ = [
    "DOCS_ASCII_CREDENTIALS",
    "DOCS_MEMCACHIER_CREDENTIALS",
    "Profile",
    "Sample",
    "SampleError",
    "TLSTerminator",
    "World",
    "code_only",
    "environment",
    "loopback_only",
    "markdown_samples",
    "profile_of",
    "rewrite",
    "rst_samples",
]

#: The credentials the documentation's MemCachier samples use.
DOCS_MEMCACHIER_CREDENTIALS = ("user", "secret")
#: The credentials the documentation's memcached ``-Y`` samples use.
DOCS_ASCII_CREDENTIALS = ("app", "secret")


class SampleError(Exception):
    """A page's samples cannot be extracted or placed (a mistake in the page)."""


# -- extraction ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One code sample of a page."""

    path: Path
    #: 1-based line of the sample's first line in ``path``.
    line: int
    kind: Literal["python", "doctest"]
    source: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


_CODE_BLOCK = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\S*)\s*$")
_TEST_ENV = re.compile(r"^\s*\.\. test-env:(?P<pairs>.*)$")
_OPTION = re.compile(r"^\s+:[\w-]+:")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_env(text: str, where: str) -> dict[str, str]:
    env = {}
    for pair in text.split():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SampleError(f"{where}: test-env wants NAME=value pairs, not {pair!r}")
        env[name] = value
    return env


def _code_block(lines: list[str], i: int, indent: int) -> tuple[int, int]:
    """``(first, end)`` lines of the content of the code block whose directive is line i-1."""
    while i < len(lines) and _OPTION.match(lines[i]):
        i += 1
    start = i
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    while start < i and not lines[start].strip():
        start += 1
    return start, i


def rst_samples(path: Path) -> tuple[list[Sample], set[str]]:
    """The samples of an rst page, in order, and the languages of all its code blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    samples: list[Sample] = []
    languages: set[str] = set()
    pending_env: dict[str, str] | None = None
    i = 0
    while i < len(lines):
        env_match = _TEST_ENV.match(lines[i])
        block = _CODE_BLOCK.match(lines[i])
        kind: Literal["python", "doctest"] | None = None
        if env_match:
            if pending_env is not None:
                raise SampleError(f"{path.name}:{i + 1}: two test-env lines for one sample")
            pending_env = _parse_env(env_match["pairs"], f"{path.name}:{i + 1}")
            i += 1
            continue
        if block:
            language = block["language"] or "(none)"
            languages.add(language)
            start, i = _code_block(lines, i + 1, len(block["indent"]))
            if language == "python":
                kind = "python"
            elif pending_env is not None:
                raise SampleError(f"{path.name}:{start}: test-env before a {language} block")
        elif lines[i].lstrip().startswith(">>>"):
            start = i
            while i < len(lines) and lines[i].strip():
                i += 1
            kind = "doctest"
        else:
            i += 1
            continue
        if kind is not None:
            samples.append(
                Sample(path, start + 1, kind, _dedent(lines[start:i]), pending_env or {})
            )
        pending_env = None
    if pending_env is not None:
        raise SampleError(f"{path.name}: a test-env line is not followed by a sample")
    return samples, languages


_FENCE = re.compile(r"^```(?P<language>\w*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def markdown_samples(path: Path) -> list[Sample]:
    """The fenced ``python`` blocks of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [
        Sample(path, text.count("\n", 0, match.start("body")) + 1, "python", match["body"])
        for match in _FENCE.finditer(text)
        if match["language"] == "python"
    ]


def _dedent(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return textwrap.dedent("\n".join(lines)) + "\n"


# -- placing samples on servers ------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What a sample needs from its server."""

    tls: bool = False
    client_cert: bool = False
    auth: Literal["none", "memcachier", "ascii"] = "none"

    def __str__(self) -> str:
        transport = "mTLS" if self.client_cert else "TLS" if self.tls else "TCP"
        return f"{transport} + {self.auth} auth"


def _quoted(word: str) -> re.Pattern[str]:
    return re.compile(rf"""["']{word}["']""")


_TLS = _quoted("tls")
_ASCII = _quoted("ascii")
_MEMCACHIER = _quoted("memcachier")
_CREDENTIALS = re.compile(r"""USERNAME|["']username["']""")


def code_only(source: str) -> str:
    """``source`` without its comments (a comment listing alternatives is no request)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    return tokenize.untokenize(
        (token.type, token.string) for token in tokens if token.type != tokenize.COMMENT
    )


def profile_of(text: str) -> Profile:
    """The server a sample (its code and its test-env) is written for."""
    tls = "TLSTransport" in text or bool(_TLS.search(text))
    client_cert = "cert_file" in text
    ascii_auth = "AsciiAuth" in text or bool(_ASCII.search(text))
    memcachier = "MemCachierAuth" in text or bool(_MEMCACHIER.search(text))
    if ascii_auth and memcachier:
        raise SampleError("a sample uses both ASCII and MemCachier authentication: split it")
    if not ascii_auth and _CREDENTIALS.search(text):
        memcachier = True  # credentials without an auth named mean MemCachier's
    auth: Literal["none", "memcachier", "ascii"] = (
        "ascii" if ascii_auth else "memcachier" if memcachier else "none"
    )
    return Profile(tls=tls or client_cert, client_cert=client_cert, auth=auth)


@dataclass
class World:
    """The servers and files that placeholders are rewritten to."""

    servers: dict[Profile, list[str]]
    files: dict[str, str]
    #: the local twemproxy that ``127.0.0.1:22121`` stands for
    twemproxy: str = ""
    #: the local configuration endpoints that cluster endpoints stand for, by profile
    config_endpoints: dict[Profile, str] = field(default_factory=dict)


_HOST = re.compile(
    r"\b(?:(?P<cfg>[\w-]+\.\w+\.cfg\.\w+\.cache\.amazonaws\.com:11211|10\.0\.0\.100:11211)"
    r"|mc(?P<n>[1-3])\.example\.com(?::11211)?|10\.0\.0\.(?P<ip>[1-3]):11211"
    r"|(?:127\.0\.0\.1|localhost):(?P<port>11211|22121))(?![\w.])"
)
_FILE = re.compile(
    r"""(?P<q>["'])(?:[^"'\s]*/)?(?P<name>other-ca\.pem|ca\.pem|client\.pem|client\.key)(?P=q)"""
)


def rewrite(text: str, profile: Profile, world: World) -> str:
    """Replace the placeholder hosts and files of ``text`` for a ``profile`` sample."""

    def host(match: re.Match[str]) -> str:
        if match["cfg"]:
            endpoint = world.config_endpoints.get(profile)
            if endpoint is None:
                raise SampleError(f"no test configuration endpoint for a {profile} sample")
            return endpoint
        if match["port"] == "22121":
            if not world.twemproxy:
                raise SampleError("no test twemproxy for a 127.0.0.1:22121 sample")
            return world.twemproxy
        servers = world.servers.get(profile)
        if not servers:
            raise SampleError(f"no test server for a {profile} sample")
        index = int(match["n"] or match["ip"] or 1) - 1
        if index >= len(servers):
            raise SampleError(
                f"{profile} samples can use {len(servers)} server(s), not mc{index + 1}"
            )
        return servers[index]

    def path(match: re.Match[str]) -> str:
        return repr(world.files[match["name"]])

    return _FILE.sub(path, _HOST.sub(host, text))


# -- a TLS front for the MemCachier gateway ------------------------------------------------


class TLSTerminator(ThreadedProxy[Link]):
    """Accepts TLS on ``127.0.0.1:<port>`` and relays the plain bytes to an upstream.

    Puts TLS in front of the harness's MemCachier gateway, for the samples that use TLS
    with MemCachier authentication. Runs its own event loop in a daemon thread (a
    :class:`~tests.harness.ThreadedProxy`); use as a context manager.
    """

    def __init__(self, upstream: tuple[str, int], *, cert_file: str, key_file: str) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        super().__init__(upstream, name="tls-terminator", ssl_context=context)

    def new_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Link:
        """A TLS connection from a client."""
        return Link(client_reader=reader, client=writer)

    async def serve(self, link: Link) -> None:
        """Relay both ways; TLS cannot half-close, so either end closes both."""
        try:
            up_reader, up_writer = await self.connect_upstream(link, STOP_TIMEOUT)
        except (OSError, TimeoutError):
            return
        await asyncio.gather(
            pump(link.client_reader, up_writer, close=True),
            pump(up_reader, link.client, close=True),
            return_exceptions=True,
        )


@contextlib.contextmanager
def loopback_only(refused: list[str]) -> Iterator[None]:
    """Let sockets connect to loopback addresses and UNIX sockets only, in every thread.

    A sample whose placeholder was not rewritten must never reach the network: the
    attempt is refused (``ConnectionRefusedError``) and recorded in ``refused``.
    """
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = str(address[0]).split("%")[0]
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            refused.append(f"{host}:{address[1]}")
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"documentation samples may only reach loopback, not {host}"
            )

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
