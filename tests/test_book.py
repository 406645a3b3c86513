"""The book as a whole: notebooks fit for nbval, a warning-free build, and pages a reader can read
offline (typeset math, figures present, no request to another host)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser_check import check_page

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
HTML = ROOT / "_build" / "html"
NOTEBOOKS = sorted(BOOK.rglob("*.ipynb"))
CHAPTER_1 = HTML / "book" / "ch01-mixed-model-equations.html"
CDN_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"


# ---- notebooks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_fully_executed_in_order(path):
    """nbval silently skips a code cell that was never executed; refuse such a notebook."""
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    counts = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        counts.append(cell["execution_count"])
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"cell {index} stores an error"
            assert out.get("name") != "stderr", (
                f"cell {index} writes to stderr (a warning?): fix its cause"
            )
    assert None not in counts, f"{counts.count(None)} code cell(s) never executed: run make execute"
    assert counts == list(range(1, len(counts) + 1)), "cells not executed top to bottom once"


def test_toc_lists_every_page():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"(?:root|file):\s*(\S+)", toc))
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in BOOK.rglob("*")
             if p.suffix in (".ipynb", ".md") and ".ipynb_checkpoints" not in p.parts}
    assert pages == listed, f"not in _toc.yml: {pages - listed}; missing files: {listed - pages}"


# ---- the build -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def built_book():
    """Build the whole book once, from scratch (--all: an unchanged rebuild hides warnings)."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going", "--all"],
        capture_output=True, text=True, cwd=ROOT,
    )
    return done


def test_book_builds_without_warnings(built_book):
    output = built_book.stdout + built_book.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert built_book.returncode == 0 and not warnings, "\n".join(warnings) or output[-3000:]
    assert CHAPTER_1.exists()


def test_every_chapter_has_a_binder_button(built_book):
    for path in NOTEBOOKS:
        page = HTML / path.relative_to(ROOT).with_suffix(".html")
        html = page.read_text()
        assert "mybinder.org/v2/gh/" in html, f"{page.name} has no Binder launch button"
        assert path.name in html  # the button opens this notebook


def test_api_reference_documents_the_package(built_book):
    html = (HTML / "book" / "api.html").read_text()
    for name in ("lmmbook.solve_mme", "lmmbook.incidence", "lmmbook.MMEResult",
                 "lmmbook.errors.UnknownIdError"):
        assert f'id="{name}"' in html, f"{name} missing from the API reference"


# ---- in a real browser ---------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_reads_offline(built_book, chromium, notebook):
    page = HTML / notebook.relative_to(ROOT).with_suffix(".html")
    report = check_page(page, chromium)
    assert not report.problems, "\n".join(report.problems)
    assert report.math_elements > 20  # every chapter has many equations; all of them typeset
    figures = [src for src in report.images if "_images/" in src]
    assert len(figures) >= 1, report.images
    if page == CHAPTER_1:
        assert report.math_elements > 50 and len(figures) >= 3


def _variant(tmp_name, edit):
    """A copy of the chapter page beside the original (so relative links still work), edited."""
    html = CHAPTER_1.read_text()
    edited = edit(html)
    assert edited != html, "the edit did not apply: the test would prove nothing"
    page = CHAPTER_1.with_name(tmp_name)
    page.write_text(edited)
    return page


def test_check_fails_when_mathjax_comes_from_a_cdn(built_book, chromium):
    page = _variant("zz-cdn-mathjax.html", lambda h: re.sub(
        r'src="[^"]*mathjax/tex-chtml\.js[^"]*"', f'src="{CDN_MATHJAX}"', h))
    try:
        report = check_page(page, chromium)
    finally:
        page.unlink()
    assert any("no typeset math" in p for p in report.problems), report.problems
    assert any("raw TeX" in p for p in report.problems), report.problems
    assert any(CDN_MATHJAX in p for p in report.problems), report.problems


def test_check_fails_when_a_figure_is_missing(built_book, chromium):
    page = _variant("zz-missing-figure.html",
                    lambda h: h.replace('src="../_images/', 'src="../_images/missing-', 1))
    try:
        report = check_page(page, chromium)
    finally:
        page.unlink()
    assert any("image file missing" in p for p in report.problems), report.problems
