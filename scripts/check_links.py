"""Offline link check of the built HTML documentation: every internal link must land.

Sphinx's ``-n`` build checks cross-references, and its ``linkcheck`` builder checks
external URLs (which need the network). This checks what falls between them: each
``href`` of every page (search page, source pages of ``viewcode`` and all) that points
inside the documentation must name a file that exists, and its ``#anchor`` an ``id``
on that page. External links (``https:``, ``mailto:``, ...) are not followed.

Usage: python scripts/check_links.py docs/_build/html
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class _Page(HTMLParser):
    """Collects the ids and the links of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.ids.add(str(values[name]))
        if tag in ("a", "link") and values.get("href"):
            self.links.append(str(values["href"]))


def broken_links(root: Path) -> list[str]:
    """``"page: link (what is wrong)"`` for every internal link under ``root`` that fails."""
    pages: dict[Path, _Page] = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = page
    problems = []
    for path, page in pages.items():
        for link in page.links:
            if _EXTERNAL.match(link) or link.startswith("//"):
                continue
            parts = urlsplit(link)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            where = f"{path.relative_to(root.resolve())}: {link}"
            if not target.exists():
                problems.append(f"{where} (no such file)")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in pages[target].ids
            ):
                problems.append(f"{where} (no such anchor)")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    root = Path(argv[0])
    if not (root / "index.html").is_file():
        print(f"{root}: no index.html; build the HTML documentation first", file=sys.stderr)
        return 2
    problems = broken_links(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = sum(1 for _ in root.rglob("*.html"))
    print(f"internal links: {count} pages, {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
