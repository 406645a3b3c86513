"""The editions for teaching (issue 18): the student edition (`make student`: every exercise, no
solution, as pages and as notebooks) and the whole book as one PDF (`make pdf`), each built once
per session by editions/build.py, exactly as the Makefile builds it."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
STUDENT = ROOT / "_build" / "student" / "html"
STUDENT_NOTEBOOKS = ROOT / "_build" / "student" / "notebooks"
LEFT_OUT = yaml.safe_load((ROOT / "editions" / "student.yml").read_text())[
    "sphinx"]["config"]["leave_out_pages"]
REPOSITORY = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
PDF_DIR = ROOT / "_build" / "pdf"
PDF = PDF_DIR / "lmmbook.pdf"
LATEX = PDF_DIR / "latex"
CHAPTER = re.compile(r"^ch(\d+)-")
PAGES = [ROOT / f"{name}" for name in re.findall(r"(?:root|file):\s*(\S+)",
                                                 (ROOT / "_toc.yml").read_text())]
NOTEBOOKS = [p.with_suffix(".ipynb") for p in PAGES if p.with_suffix(".ipynb").exists()]
CHAPTERS = [p for p in NOTEBOOKS if CHAPTER.match(p.name)]


def build(edition):
    return subprocess.run([sys.executable, str(ROOT / "editions" / "build.py"), edition],
                          capture_output=True, text=True, cwd=ROOT)


def sphinx_warnings(done):
    output = done.stdout + done.stderr
    return [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]


# ---- the notebooks' exercises and solutions, read from their sources -------------------------

def cells(notebook):
    return json.loads(notebook.read_text())["cells"]


def outside_solutions(notebook):
    """The code cells of ``notebook`` that are not part of a gated solution, in order."""
    return [cell for cell, inside in solution_cells(notebook)
            if cell["cell_type"] == "code" and not inside]


def solution_cells(notebook):
    """(cell, inside a solution?) for every cell: a gated solution's cells lie between the
    markdown cell with ```{solution-start} and the one with ```{solution-end}."""
    inside, out = False, []
    for cell in cells(notebook):
        out.append((cell, inside))
        markers = re.findall(r"```\{solution-(start|end)\}", "".join(cell["source"]))
        if markers:  # one cell may end a solution and start the next
            inside = markers[-1] == "start"
    return out


def exercise_labels(notebook):
    text = "\n".join("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "markdown")
    labels = re.findall(r"```\{exercise(?:-start)?\}[^\n]*\n(?::[^\n]*\n)*?:label:\s*(\S+)", text)
    return labels


def code_lines(cell_list):
    """Distinctive lines of code: long enough not to occur by chance anywhere else."""
    return {line.strip() for cell in cell_list if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line.strip()) >= 30}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def page_text(path):
    """The visible text of an HTML page, tags removed (code keeps its spaces)."""
    parser = _Text()
    parser.feed(path.read_text())
    return html.unescape("".join(parser.parts))


# ---- the student edition -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def student():
    return build("student")


def test_student_edition_builds_without_warnings(student):
    warnings = sphinx_warnings(student)
    assert student.returncode == 0 and not warnings, (
        "\n".join(warnings) or (student.stdout + student.stderr)[-3000:])


def test_student_edition_has_every_page_of_the_book_but_the_teaching_page(student):
    assert LEFT_OUT == ["book/teaching"]
    built = {p.relative_to(STUDENT).with_suffix("") for p in (STUDENT / "book").glob("*.html")}
    listed = {p.relative_to(ROOT) for p in PAGES}
    assert built == listed - {Path(page) for page in LEFT_OUT}
    assert (STUDENT / "index.html").exists()
    # The introduction's reference to the teaching page is its title, with no link.
    intro = (STUDENT / "book" / "intro.html").read_text()
    assert "Teaching with this book" in page_text(STUDENT / "book" / "intro.html")
    assert "in the full book" in intro
    for page in STUDENT.rglob("*.html"):
        assert "teaching.html" not in page.read_text(), f"{page.name} links the teaching page"


def test_student_edition_links_neither_repository_nor_issues(student):
    assert REPOSITORY.startswith("https://github.com/")
    for page in STUDENT.rglob("*.html"):
        source = page.read_text()
        assert REPOSITORY not in source, f"{page.name} links the repository"
        assert "github.com" not in source, f"{page.name} links GitHub"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_pages_show_every_exercise_and_no_solution(student, notebook):
    page = STUDENT / notebook.relative_to(ROOT).with_suffix(".html")
    source = page.read_text()
    text = page_text(page)
    labels = exercise_labels(notebook)
    if CHAPTER.match(notebook.name):
        assert len(labels) >= 3, "every chapter has at least three exercises"
    for label in labels:
        assert f'id="{label}"' in source, f"exercise {label} is missing"
    assert source.count('class="exercise admonition"') == len(labels)
    # No solution: neither sphinx-exercise's box and title, nor the solution's code.
    classes = re.findall(r'class="([^"]*)"', source)
    assert not [c for c in classes if "solution" in c.split()], "a solution box is on the page"
    assert "Solution to" not in text
    split = solution_cells(notebook)
    hidden = code_lines([c for c, inside in split if inside])
    shown = code_lines([c for c, inside in split if not inside])
    hidden -= shown  # a line also used outside the solutions may well appear
    if labels:
        assert hidden, "no solution code found in the notebook: the check would prove nothing"
    lines = {line.strip() for line in text.splitlines()}
    assert not [line for line in hidden if line in lines], "solution code on the student page"
    # ... while the same search finds the code that is not a solution.
    missing = [line for line in shown if line not in lines]
    assert not missing, f"code outside the solutions not found (the search is broken?): {missing}"


def test_student_edition_offers_no_notebook_with_solutions(student):
    notebooks = sorted(STUDENT.rglob("*.ipynb"))
    assert not notebooks, notebooks
    for page in (STUDENT / "book").glob("*.html"):
        source = page.read_text()
        assert "mybinder.org/v2/" not in source, f"{page.name} has a Binder button"
        assert "_sources/" not in source, f"{page.name} links to its source"
        assert "Student edition" in source, f"{page.name} does not say it is the student edition"


# ---- the student notebooks ---------------------------------------------------------------------

def test_student_notebooks_are_every_chapter(student):
    assert sorted(p.name for p in STUDENT_NOTEBOOKS.glob("*.ipynb")) == sorted(
        nb.name for nb in CHAPTERS)


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebooks_keep_every_exercise_and_no_solution(student, notebook):
    copy = STUDENT_NOTEBOOKS / notebook.name
    nbformat.validate(nbformat.read(copy, as_version=4))
    assert exercise_labels(copy) == exercise_labels(notebook)
    assert exercise_labels(copy), "a chapter without exercises: the check would prove nothing"
    text = "\n".join("".join(c["source"]) for c in cells(copy))
    assert "{solution" not in text, "a solution marker is left"
    split = solution_cells(notebook)
    hidden = code_lines([c for c, inside in split if inside])
    hidden -= code_lines([c for c, inside in split if not inside])
    assert hidden, "no solution code found in the notebook: the check would prove nothing"
    assert not hidden & code_lines(cells(copy)), "solution code in the student notebook"
    # Every other code cell is there, in order, with its stored outputs.
    kept = [c for c in cells(copy) if c["cell_type"] == "code"]
    assert [(c["source"], c["outputs"]) for c in kept] == [
        (c["source"], c["outputs"]) for c in outside_solutions(notebook)]
    # The text outside the solutions stays: the headings, the summary among them.
    headings = [line for c in cells(notebook) for line in "".join(c["source"]).splitlines()
                if c["cell_type"] == "markdown" and line.startswith("## ")]
    assert "## Summary" in headings
    assert [line for line in text.splitlines() if line.startswith("## ")] == headings


def test_student_notebooks_run_on_their_own(student):
    """What the notebooks need beside them: the package, its requirements and the data they read."""
    requirements = (STUDENT_NOTEBOOKS / "requirements.txt").read_text().splitlines()
    assert "-e ." in requirements and (STUDENT_NOTEBOOKS / "pyproject.toml").exists()
    assert (STUDENT_NOTEBOOKS / "lmmbook" / "__init__.py").exists()
    assert (STUDENT_NOTEBOOKS / "runtime.txt").read_text() == (ROOT / "runtime.txt").read_text()
    shipped = {p.relative_to(ROOT / "lmmbook" / "data") for p in (ROOT / "lmmbook" / "data").rglob(
        "*") if p.is_file()}
    copied = {p.relative_to(STUDENT_NOTEBOOKS / "lmmbook" / "data")
              for p in (STUDENT_NOTEBOOKS / "lmmbook" / "data").rglob("*") if p.is_file()}
    assert shipped and shipped <= copied
    for notebook in CHAPTERS:
        for name in re.findall(r'"([\w.-]+\.csv)"', "".join(
                "".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code")):
            if (BOOK / "data" / name).exists():
                assert (STUDENT_NOTEBOOKS / "data" / name).exists(), name
    assert (STUDENT_NOTEBOOKS / "data" / "scale-timings.csv").exists()


# ---- the PDF -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pdf():
    missing = [tool for tool in ("latexmk", "xelatex", "pdftotext", "pdfinfo", "pdfimages")
               if shutil.which(tool) is None]
    if missing:
        message = (f"{', '.join(missing)} not installed; .ci/run installs TeX Live and "
                   "poppler-utils from Debian's packages")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return build("pdf")


def test_pdf_builds_without_warnings(pdf):
    warnings = sphinx_warnings(pdf)
    assert pdf.returncode == 0 and not warnings, (
        "\n".join(warnings) or (pdf.stdout + pdf.stderr)[-3000:])
    assert PDF.exists()


def test_latex_log_has_no_undefined_reference_and_no_missing_file(pdf):
    log = (LATEX / "lmmbook.log").read_text(errors="replace")
    problems = [line for line in log.splitlines() if re.search(
        r"undefined|not found|Missing character|^! ", line)
        and "\\pdfdraftmode not found" not in line]  # pdftexcmds under XeTeX: harmless
    assert not problems, "\n".join(problems[:30])
    assert "Output written on" in log


def pdf_text(first, last):
    done = subprocess.run(["pdftotext", "-f", str(first), "-l", str(last), str(PDF), "-"],
                          capture_output=True, text=True, check=True)
    return done.stdout


def normalised(text):
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").replace("\u2010", "-")).lower()


def chapter_pages():
    """Physical page of each chapter's first page, from the PDF's named destinations."""
    done = subprocess.run(["pdfinfo", "-dests", str(PDF)], capture_output=True, text=True,
                          check=True)
    pages = {}
    for line in done.stdout.splitlines():
        match = re.match(r'\s*(\d+)\s.*"(chapter|appendix)\.(\w+)"', line)
        if match:
            pages[match.group(3)] = int(match.group(1))
    return pages


def title(notebook):
    for cell in cells(notebook):
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    raise AssertionError(f"{notebook.name} has no title")


def test_pdf_has_every_chapter_under_its_number(pdf):
    pages = chapter_pages()
    numbers = [str(int(CHAPTER.match(nb.name).group(1))) for nb in CHAPTERS]
    assert sorted((n for n in pages if n.isdigit()), key=int) == sorted(numbers, key=int)
    for notebook, number in zip(CHAPTERS, numbers, strict=True):
        first = pages[number]
        heading = normalised(pdf_text(first, first))
        assert normalised(title(notebook)).replace("`", "") in heading, (
            f"chapter {number} ({notebook.name}) does not open page {first}")
    # The API reference is an appendix, the front matter (introduction, notation) is not numbered.
    assert "A" in pages and "0" not in pages


def test_every_chapter_of_the_pdf_has_figures(pdf):
    done = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True,
                          check=True)
    image_pages = [int(line.split()[0]) for line in done.stdout.splitlines()[2:]
                   if line.split()[2] == "image"]
    pages = chapter_pages()
    starts = sorted(pages.values()) + [10**6]
    for notebook in CHAPTERS:
        first = pages[str(int(CHAPTER.match(notebook.name).group(1)))]
        end = next(s for s in starts if s > first)
        assert any(first <= p < end for p in image_pages), f"no figure in {notebook.name}"
    # Every image Sphinx wrote into the LaTeX is included (none replaced by a placeholder).
    included = re.findall(r"\\sphinxincludegraphics(?:\[[^\]]*\])?\{\{([^}]*)\}(\.\w+)\}",
                          (LATEX / "lmmbook.tex").read_text())
    assert included
    for stem, suffix in included:
        assert (LATEX / f"{stem}{suffix}").exists(), f"{stem}{suffix} missing"


def test_pdf_numbers_equations_within_chapters(pdf):
    aux = (LATEX / "lmmbook.aux").read_text()
    for notebook in CHAPTERS:
        number = int(CHAPTER.match(notebook.name).group(1))
        doc = notebook.relative_to(ROOT).with_suffix("").as_posix()
        text = "\n".join("".join(c["source"]) for c in cells(notebook)
                         if c["cell_type"] == "markdown")
        labels = re.findall(r"```\{math\}\s*\n:label:\s*(\S+)", text)
        for label in labels:
            match = re.search(r"\\newlabel\{equation:" + re.escape(f"{doc}:{label}")
                              + r"\}\{\{([\d.]+)\}", aux)
            assert match, f"equation {label} of {notebook.name} has no number"
            assert match.group(1).startswith(f"{number}."), (label, match.group(1))


def test_pdf_bibliography_lists_every_cited_work(pdf):
    cited = set()
    for page in PAGES:
        path = page.with_suffix(".ipynb") if page.with_suffix(".ipynb").exists() else \
            page.with_suffix(".md")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in cells(path)
                             if c["cell_type"] == "markdown")
        else:
            text = path.read_text()
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited.update(key.strip() for key in keys.split(","))
    assert cited
    tex = (LATEX / "lmmbook.tex").read_text()
    entries = re.findall(r"\\bibitem\[", tex)
    assert len(entries) == len(cited)
    text = normalised(pdf_text(chapter_pages()["A"], 10**6))
    assert "bibliography" in text and "henderson" in text


def latex_text(tex):
    """The text of a short piece of Sphinx's LaTeX: markup of emphasis and hyphens removed."""
    tex = tex.replace("\\sphinxhyphen{}", "-")
    tex = re.sub(r"\\sphinxstyleemphasis\{([^{}]*)\}", r"\1", tex)
    return re.sub(r"\s+", " ", tex).strip()


def test_pdf_bibliography_labels_are_the_author_year_citations_of_the_text(pdf):
    tex = (LATEX / "lmmbook.tex").read_text()
    labels = dict((key, latex_text(label)) for label, key in re.findall(
        r"\\bibitem\[([^\]]*)\]\{([^}]*)\}", tex))
    assert labels
    assert len(set(labels.values())) == len(labels), "two entries share a label"
    for key, label in labels.items():
        assert re.fullmatch(r"[^\\{}]+, \d{4}[a-z]?", label), (key, label)
    # A parenthetical citation [Bates et al., 2015] links its entry with the entry's label.
    checked = 0
    for key, text in re.findall(r"\\hyperlink\{cite\.([^}]*)\}\{((?:[^{}]|\{[^{}]*\})*)\}", tex):
        text = latex_text(text)
        if re.search(r", \d{4}[a-z]?$", text):
            assert text == labels[key], (key, text, labels[key])
            checked += 1
    assert checked >= len(labels) // 2, "too few parenthetical citations found to compare"


def test_pdf_teaching_page_tables_fit_the_page(pdf):
    """No box of the teaching page (its semester plan above all) runs into the margin."""
    lines = (LATEX / "lmmbook.tex").read_text().splitlines()
    first = next(i for i, line in enumerate(lines, 1)
                 if "\\label{\\detokenize{book/teaching::doc}}" in line)
    last = next(i for i, line in enumerate(lines, 1) if i > first and "\\chapter" in line)
    log = (LATEX / "lmmbook.log").read_text(errors="replace")
    overfull = [(float(width), int(start)) for width, start in re.findall(
        r"Overfull \\hbox \(([\d.]+)pt too wide\) in (?:paragraph|alignment) at lines (\d+)", log)]
    on_page = [(w, s) for w, s in overfull if first <= s <= last and w > 1]
    assert not on_page, f"overfull boxes (pt, line of lmmbook.tex) on the teaching page: {on_page}"
    page = "\n".join(lines[first:last])
    table = page[page.index("\\begin{tabular"):page.index("\\end{tabular")]
    assert "Exercise" in table and "slides.html" not in table, "the slide deck column is in the PDF"
