"""Build an edition of the book for teaching: ``student`` (HTML without solutions) or ``pdf``.

    .venv/bin/python editions/build.py student   # -> _build/student/html/index.html
    .venv/bin/python editions/build.py pdf       # -> _build/pdf/lmmbook.pdf

Each edition is the book's ``_config.yml`` with the overlay ``editions/<edition>.yml`` merged into
it (mappings key by key; lists and values replaced), built by Jupyter Book's own Sphinx entry point
as ``jupyter-book build . -W -n --keep-going --all`` builds the HTML book: from scratch, warnings
are errors, the notebooks are not executed (their stored outputs are used). Each edition has its
own output and doctree folders under ``_build/<edition>/``, so building one never touches
``_build/html`` or another edition. The PDF is then made by latexmk from the LaTeX that Sphinx
writes (``_build/pdf/latex``) and copied to ``_build/pdf/lmmbook.pdf``; the LaTeX log stays in
``_build/pdf/latex/lmmbook.log``.

The exit status is non-zero when Sphinx warned or latexmk failed.
"""

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
    out = BUILD / edition / "_config.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def sphinx_build(edition: str) -> int:
    """Run Sphinx for ``edition`` (in this process); return its status (0: no warning)."""
    from jupyter_book.sphinx import build_sphinx

    builder = BUILDERS[edition]
    out = BUILD / edition / builder
    # From nothing: a file left by an earlier build (a copied notebook) must not stay.
    shutil.rmtree(out, ignore_errors=True)
    result = build_sphinx(
        ROOT,
        out,
        noconfig=True,
        path_config=str(edition_config(edition)),
        confoverrides={
            "external_toc_path": (ROOT / "_toc.yml").as_posix(),
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
        print(f"The student edition is in {(BUILD / edition / 'html').relative_to(ROOT)}: "
              "open index.html in a browser.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
