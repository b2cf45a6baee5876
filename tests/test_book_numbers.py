"""The numbers quoted on the book's markdown pages are the chapters' own glued values.

The abstract, the results summary and the discussion quote chapter numbers through
cross-document glue references, ``{glue:text}`../notebooks/NAME.ipynb::key:s```. These
tests check that every such key exists in the committed notebook, and, once the book is
built, that the rendered page shows exactly the notebook's value.
"""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
BUILT = ROOT / "_build" / "html"
REFERENCE = re.compile(r"\{glue:text\}`([^`:]+\.ipynb)::([A-Za-z0-9_]+)(?::[^`]*)?`")


def glued_values(notebook: Path) -> dict[str, str]:
    """Return every value the notebook glued, as the text the book renders."""
    values = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook", {})
            name = record.get("name")
            text = output.get("data", {}).get(f"{record.get('mime_prefix', '')}text/plain")
            if name and text is not None:
                try:
                    values[name] = str(ast.literal_eval(text))
                except (SyntaxError, ValueError):
                    values[name] = text
    return values


def references(page: Path) -> list[tuple[Path, str]]:
    return [((page.parent / path).resolve(), key)
            for path, key in REFERENCE.findall(page.read_text())]


def page_text(page: Path) -> str:
    built = BUILT / "book" / f"{page.stem}.html"
    raw = re.sub(r"<[^>]+>", "", built.read_text())
    return " ".join(html.unescape(raw).split())


PAGES_WITH_NUMBERS = [page for page in BOOK_PAGES if references(page)]


def test_summary_pages_quote_chapters():
    names = {page.name for page in PAGES_WITH_NUMBERS}
    assert "intro.md" in names
    assert "results.md" in names


@pytest.mark.parametrize("page", PAGES_WITH_NUMBERS, ids=lambda page: page.name)
def test_quoted_keys_exist(page):
    for notebook, key in references(page):
        assert notebook.is_file(), f"{page.name} cites {notebook}, which does not exist"
        assert key in glued_values(notebook), f"{page.name} cites {key!r}, not glued in {notebook.name}"


@pytest.mark.parametrize("page", PAGES_WITH_NUMBERS, ids=lambda page: page.name)
def test_built_page_shows_values(page):
    built = BUILT / "book" / f"{page.stem}.html"
    if not built.is_file():
        pytest.skip(f"{built} is missing; run `make html` first")
    text = page_text(page)
    for notebook, key in references(page):
        value = " ".join(glued_values(notebook)[key].split())
        assert value in text, f"{page.name}: {notebook.name}::{key} = {value!r} not shown"
