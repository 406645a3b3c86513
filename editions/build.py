"""Build an edition of the book for teaching: ``student`` (HTML without solutions) or ``pdf``.

    .venv/bin/python editions/build.py student   # -> _build/student/html/index.html
    .venv/bin/python editions/build.py pdf       # -> _build/pdf/lmmbook.pdf

Each edition is the book's ``_config.yml`` with the overlay ``editions/<edition>.yml`` merged into
it (mappings key by key; lists and values replaced), built by Jupyter Book's own Sphinx entry point
as ``jupyter-book build . -W -n --keep-going --all`` builds the HTML book: from scratch, warnings
are errors, the notebooks are not executed (their stored outputs are used). Each edition has its
own output and doctree folders under ``_build/<edition>/``, so building one never touches
``_build/html`` or another edition. A page listed under ``leave_out_pages`` in an overlay's
``sphinx: config:`` is taken out of that edition's table of contents
(``_build/<edition>/_toc.yml``) and not read (see leave_out_pages.py). The PDF is then made by
latexmk from the LaTeX that Sphinx writes (``_build/pdf/latex``) and copied to
``_build/pdf/lmmbook.pdf``; the LaTeX log stays in ``_build/pdf/latex/lmmbook.log``. The student
edition also writes every chapter's notebook without its solutions into
``_build/student/notebooks/`` (see ``student_notebooks``).

The exit status is non-zero when Sphinx warned or latexmk failed.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EDITIONS = ROOT / "editions"
BUILD = ROOT / "_build"
BUILDERS = {"student": "html", "pdf": "latex"}
PDF_NAME = "lmmbook"
CHAPTER = re.compile(r"^ch\d+-.*\.ipynb$")
# A gated solution's markers, as MyST directives with their options (":class: dropdown").
SOLUTION_MARKER = re.compile(r"^```\{solution-(start|end)\}[^\n]*\n(?::[^\n]*\n)*```[ \t]*$",
                             re.MULTILINE)


def merged(base: dict, overlay: dict) -> dict:
    """``base`` updated by ``overlay``: nested mappings merged key by key, all else replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def edition_config(edition: str) -> Path:
    """Write the merged configuration of ``edition`` to ``_build/<edition>/_config.yml``."""
    base = yaml.safe_load((ROOT / "_config.yml").read_text())
    overlay_path = EDITIONS / f"{edition}.yml"
    overlay = yaml.safe_load(overlay_path.read_text()) or {}
    # A local extension's path is relative to the overlay; the merged file lives elsewhere.
    local = overlay.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((overlay_path.parent / path).resolve())
    config = merged(base, overlay)
    left_out = left_out_pages(config)
    if left_out:
        config["exclude_patterns"] = list(config.get("exclude_patterns", [])) + [
            f"{page}.*" for page in left_out]
    out = BUILD / edition / "_config.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def left_out_pages(config: dict) -> list[str]:
    return list(config.get("sphinx", {}).get("config", {}).get("leave_out_pages") or [])


def edition_toc(edition: str, config_path: Path) -> Path:
    """The book's ``_toc.yml``, or a copy without the pages the edition leaves out."""
    left_out = set(left_out_pages(yaml.safe_load(config_path.read_text())))
    if not left_out:
        return ROOT / "_toc.yml"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    if toc["root"] in left_out:
        raise ValueError(f"the {edition} edition cannot leave out the root page {toc['root']}")
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part["chapters"] if c.get("file") not in left_out]
    toc["parts"] = [part for part in toc.get("parts", []) if part["chapters"]]
    out = BUILD / edition / "_toc.yml"
    out.write_text(yaml.safe_dump(toc, sort_keys=False))
    return out


def without_solutions(notebook: dict) -> dict:
    """``notebook`` (nbformat JSON) with every gated solution removed: the text of a markdown cell
    from ```{solution-start} on, every cell after it, and the text of a markdown cell up to and
    including ```{solution-end}. The exercises, all other cells and their outputs are kept; a
    cell left with no text is dropped."""
    inside, kept = False, []
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or not SOLUTION_MARKER.search(source):
            if not inside:
                kept.append(cell)
            continue
        pieces, start = [], 0
        for marker in SOLUTION_MARKER.finditer(source):
            if not inside:
                pieces.append(source[start:marker.start()])
            if (marker.group(1) == "start") == inside:
                raise ValueError(f"solution-{marker.group(1)} without its "
                                 f"solution-{'end' if inside else 'start'}")
            inside = marker.group(1) == "start"
            start = marker.end()
        if not inside:
            pieces.append(source[start:])
        text = "\n\n".join(piece.strip("\n") for piece in pieces if piece.strip())
        if text:
            kept.append({**cell, "source": text.splitlines(keepends=True)})
    if inside:
        raise ValueError("a solution-start without its solution-end")
    return {**notebook, "cells": kept}


STUDENT_README = """\
# Notebooks of the student edition

Every chapter of the book as a Jupyter notebook with its exercises and without their solutions,
made by `make student` in the book's repository. The folder runs on its own (the `lmmbook`
package and the data the chapters read are in it), on Binder once pushed to a repository of its
own, or on a machine with Python 3.11:

    python3.11 -m venv .venv && .venv/bin/pip install -r requirements.txt jupyterlab
    .venv/bin/jupyter lab
"""


def student_notebooks() -> list[Path]:
    """Every chapter's notebook without its solutions, into ``_build/student/notebooks/``: the
    notebooks students run while the book's repository holds the solutions. The stored outputs
    of the cells kept stay. Beside them is what the notebooks need to run, so that the folder can
    be handed out or pushed as a repository of its own for Binder: the data they read
    (``book/data`` as ``data``), the package with its data sets (``lmmbook/``, ``pyproject.toml``,
    ``LICENSE``), ``requirements.txt`` and ``runtime.txt`` (Binder's Python), and a README."""
    import nbformat

    out_dir = BUILD / "student" / "notebooks"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info")
    shutil.copytree(ROOT / "lmmbook", out_dir / "lmmbook", ignore=ignore)
    if (ROOT / "book" / "data").is_dir():
        shutil.copytree(ROOT / "book" / "data", out_dir / "data", ignore=ignore)
    for name in ("pyproject.toml", "LICENSE", "requirements.txt", "runtime.txt"):
        shutil.copy2(ROOT / name, out_dir / name)
    (out_dir / "README.md").write_text(STUDENT_README)
    written = []
    for source in sorted((ROOT / "book").glob("ch*.ipynb")):
        if not CHAPTER.match(source.name):
            continue
        notebook = nbformat.from_dict(without_solutions(json.loads(source.read_text())))
        nbformat.validate(notebook)
        out = out_dir / source.name
        nbformat.write(notebook, out)
        written.append(out)
    return written


def sphinx_build(edition: str) -> int:
    """Run Sphinx for ``edition`` (in this process); return its status (0: no warning)."""
    from jupyter_book.sphinx import build_sphinx

    builder = BUILDERS[edition]
    out = BUILD / edition / builder
    # From nothing: a file left by an earlier build (a copied notebook) must not stay.
    shutil.rmtree(out, ignore_errors=True)
    config = edition_config(edition)
    result = build_sphinx(
        ROOT,
        out,
        noconfig=True,
        path_config=str(config),
        confoverrides={
            "external_toc_path": edition_toc(edition, config).as_posix(),
            "latex_individualpages": False,
            "nitpicky": True,
        },
        doctreedir=BUILD / edition / ".doctrees",
        builder=builder,
        freshenv=True,
        warningiserror=True,
        keep_going=True,
    )
    if isinstance(result, Exception):
        return 1
    return int(result)


def latex_to_pdf() -> int:
    """latexmk on the LaTeX that Sphinx wrote; the PDF is copied to ``_build/pdf/``."""
    latex = BUILD / "pdf" / "latex"
    # The Makefile and latexmkrc Sphinx wrote (xelatex, makeindex), as `jupyter-book build
    # --builder pdflatex` runs them, but never waiting for input at a LaTeX error.
    done = subprocess.run(
        ["make", "all-pdf", "LATEXMKOPTS=-interaction=nonstopmode -halt-on-error"],
        cwd=latex, stdout=subprocess.DEVNULL,
    )
    if done.returncode == 0:
        shutil.copy2(latex / f"{PDF_NAME}.pdf", BUILD / "pdf" / f"{PDF_NAME}.pdf")
    return done.returncode


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BUILDERS:
        print(f"usage: build.py {{{' | '.join(BUILDERS)}}}", file=sys.stderr)
        return 2
    edition = argv[0]
    status = sphinx_build(edition)
    if status:
        print(f"Sphinx warned while building the {edition} edition: see above", file=sys.stderr)
        return status
    if edition == "pdf":
        if shutil.which("latexmk") is None or shutil.which("xelatex") is None:
            print("latexmk and xelatex are needed: see the README (For lecturers)", file=sys.stderr)
            return 1
        status = latex_to_pdf()
        log = BUILD / "pdf" / "latex" / f"{PDF_NAME}.log"
        if status:
            print(f"latexmk failed: see {log.relative_to(ROOT)}", file=sys.stderr)
            return status
        print(f"The PDF is {(BUILD / 'pdf' / f'{PDF_NAME}.pdf').relative_to(ROOT)}")
    else:
        notebooks = student_notebooks()
        print(f"{len(notebooks)} notebooks without solutions are in "
              f"{(BUILD / edition / 'notebooks').relative_to(ROOT)}")
        print(f"The student edition is in {(BUILD / edition / 'html').relative_to(ROOT)}: "
              "open index.html in a browser.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
