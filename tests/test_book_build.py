"""Checks of the Jupyter Book configuration and, once it exists, of the built HTML.

The configuration tests always run. The tests of `_build/html` are skipped until the book
has been built (`make html` or `jupyter-book build .`), so that they can run in CI after
the build step. The browser checks (rendered equations, loaded images, screenshots) live in
`tools/check_book.py`, which needs Chromium; these tests need only the files.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
HTML = ROOT / "_build" / "html"
MATHJAX_SCRIPT = "_static/mathjax/tex-chtml.js"
# Extensions that Jupyter Book 1 loads by default and that reach other hosts.
NETWORK_EXTENSIONS = ("sphinx_thebe", "sphinx.ext.intersphinx")

requires_build = pytest.mark.skipif(
    not (HTML / "index.html").is_file(),
    reason=f"the book is not built ({HTML / 'index.html'} is missing); "
           "run `make html` or `jupyter-book build .` first",
)


def load_check_book():
    """Import tools/check_book.py, whose HTML and CSS scanners these tests reuse."""
    if "check_book" in sys.modules:
        return sys.modules["check_book"]
    spec = importlib.util.spec_from_file_location("check_book", ROOT / "tools" / "check_book.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body is executed.
    sys.modules["check_book"] = module
    spec.loader.exec_module(module)
    return module


def toc_docnames() -> list[str]:
    from sphinx_external_toc.parsing import parse_toc_yaml

    return list(parse_toc_yaml(TOC).keys())


def source_of(docname: str) -> Path | None:
    for suffix in (".md", ".ipynb"):
        path = ROOT / f"{docname}{suffix}"
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="module")
def sphinx_config() -> dict:
    """The Sphinx configuration that Jupyter Book derives from _config.yml."""
    from jupyter_book.config import get_final_config

    # The two values that `jupyter-book build` passes on its command line for an HTML build.
    cli_config = {"latex_individualpages": False, "external_toc_path": str(TOC)}
    config, _ = get_final_config(user_yaml=CONFIG, sourcedir=ROOT, cli_config=cli_config)
    return config


# ---------------------------------------------------------------------------------------
# Configuration and table of contents


def test_config_matches_schema():
    from jupyter_book.config import validate_yaml

    validate_yaml(yaml.safe_load(CONFIG.read_text()), raise_on_errors=True)


def test_config_never_executes_notebooks(sphinx_config):
    assert sphinx_config["nb_execution_mode"] == "off"


def test_config_numbers_figures(sphinx_config):
    assert sphinx_config["numfig"] is True


def test_config_enables_math_syntax(sphinx_config):
    extensions = set(sphinx_config["myst_enable_extensions"])
    assert {"dollarmath", "amsmath", "colon_fence"} <= extensions


def test_config_bundles_mathjax(sphinx_config):
    assert "sphinx-mathjax-offline" in sphinx_config["extensions"]


def test_config_drops_network_extensions(sphinx_config):
    for name in NETWORK_EXTENSIONS:
        assert name not in sphinx_config["extensions"], f"{name} is loaded"


def test_config_keeps_widget_scripts_out(sphinx_config):
    assert sphinx_config["nb_ipywidgets_js"] == {}


def test_config_has_no_launch_or_repository_buttons(sphinx_config):
    theme = sphinx_config["html_theme_options"]
    launch = theme.get("launch_buttons", {})
    for key in ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url"):
        assert not launch.get(key), f"launch_buttons.{key} is set"
    assert launch.get("thebe") is False
    for key in ("use_repository_button", "use_edit_page_button", "use_issues_button"):
        assert not theme.get(key), f"{key} is on"


def test_config_extensions_importable(sphinx_config):
    for name in sphinx_config["extensions"]:
        importlib.import_module(name)


def test_bibliography_file_exists(sphinx_config):
    assert sphinx_config["bibtex_bibfiles"] == ["references.bib"]
    assert (ROOT / "references.bib").is_file()


def test_toc_root_is_introduction():
    assert toc_docnames()[0] == "book/intro"


def test_toc_entries_exist():
    missing = [docname for docname in toc_docnames() if source_of(docname) is None]
    assert not missing, f"_toc.yml lists pages with no .md or .ipynb file: {missing}"


def test_toc_lists_every_chapter_notebook():
    listed = set(toc_docnames())
    notebooks = sorted(path.relative_to(ROOT).with_suffix("").as_posix()
                       for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    unlisted = [name for name in notebooks if name not in listed]
    assert not unlisted, f"chapter notebooks missing from _toc.yml: {unlisted}"


def test_book_has_one_bibliography_directive():
    directive = re.compile(r"^[`:]{3,}\s*\{bibliography\}", re.MULTILINE)
    found = []
    for docname in toc_docnames():
        path = source_of(docname)
        if path is None:
            continue
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            text = "\n".join("".join(cell["source"]) for cell in cells
                             if cell["cell_type"] == "markdown")
        else:
            text = path.read_text()
        found += [docname] * len(directive.findall(text))
    assert found == ["book/discussion"]


# ---------------------------------------------------------------------------------------
# Built HTML


def built_page(docname: str) -> Path:
    return HTML / f"{docname}.html"


@requires_build
def test_built_chapter_pages_present():
    missing = [docname for docname in toc_docnames() if not built_page(docname).is_file()]
    assert not missing, f"pages missing from {HTML}: {missing}"


@requires_build
def test_built_notebooks_have_figures():
    check_book = load_check_book()
    without = []
    for docname in toc_docnames():
        if not docname.startswith("notebooks/") or not built_page(docname).is_file():
            continue
        images = [url for kind, url in check_book.parse_page(built_page(docname)).resources
                  if kind == "img src"]
        if not images:
            without.append(docname)
    assert not without, f"chapter pages without any <img>: {without}"


@requires_build
def test_built_images_resolve():
    check_book = load_check_book()
    broken = []
    for page in check_book.built_pages(HTML):
        for kind, url in check_book.parse_page(page).resources:
            if kind != "img src":
                continue
            failure = check_book.check_resource(HTML, page, kind, url)
            if failure:
                broken.append(f"{page.relative_to(HTML)}: {failure}")
    assert not broken, "\n".join(broken)


@requires_build
def test_built_pages_load_nothing_external():
    check_book = load_check_book()
    external = []
    for page in check_book.built_pages(HTML):
        for failure in check_book.static_page_failures(HTML, page):
            if "another host" in failure:
                external.append(f"{page.relative_to(HTML)}: {failure}")
    for path, failures in check_book.stylesheet_failures(HTML).items():
        external += [f"{path}: {failure}" for failure in failures if "another host" in failure]
    assert not external, "\n".join(external)


@requires_build
def test_built_links_and_resources_resolve():
    check_book = load_check_book()
    broken = []
    for page in check_book.built_pages(HTML):
        broken += [f"{page.relative_to(HTML)}: {failure}"
                   for failure in check_book.static_page_failures(HTML, page)]
    assert not broken, "\n".join(broken)


@requires_build
def test_built_mathjax_is_bundled():
    assert (HTML / MATHJAX_SCRIPT).is_file()
    assert (HTML / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()


@requires_build
def test_built_math_pages_load_bundled_mathjax():
    check_book = load_check_book()
    wrong = []
    for page in check_book.built_pages(HTML):
        parsed = check_book.parse_page(page)
        scripts = [url for kind, url in parsed.resources if kind == "script src"]
        mathjax = [url for url in scripts if "mathjax" in url.lower()]
        paths = [url.split("?", 1)[0] for url in mathjax]
        if parsed.has_math and not any(path.endswith(MATHJAX_SCRIPT) for path in paths):
            wrong.append(f"{page.relative_to(HTML)} has math but loads {mathjax or 'no MathJax'}")
        for url in mathjax:
            if check_book.is_external(url):
                wrong.append(f"{page.relative_to(HTML)} loads MathJax from {url}")
    assert not wrong, "\n".join(wrong)
