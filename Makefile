# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates .venv from requirements.txt the first time, and again whenever requirements.txt or
# pyproject.toml is newer than the last install (the stamp file, not the folder, records it).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)

.PHONY: help book test execute lint clean student pdf slides

help:
	@echo "make book     build the HTML book into _build/html (warnings are errors)"
	@echo "make test     lint, unit tests, doctests, nbval on every notebook, book build, browser check"
	@echo "make execute  re-execute every notebook in place (after changing a chapter or lmmbook)"
	@echo "make student  the student edition (every exercise, no solution) in _build/student/html,"
	@echo "              and the notebooks without solutions in _build/student/notebooks"
	@echo "make pdf      the whole book as one PDF, _build/pdf/lmmbook.pdf (needs TeX: see README)"
	@echo "make slides   one reveal.js deck per chapter into _build/slides (offline, no solutions)"
	@echo "make clean    remove _build"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going --all
	@echo "The book is in _build/html: open _build/html/index.html in a browser."

test: $(STAMP)
	$(BIN)/ruff check lmmbook tests benchmarks slides editions conftest.py
	$(BIN)/python -m pytest

# reveal.js comes from the npm registry (slides/package-lock.json), MathJax from the venv.
slides: $(STAMP)
	$(BIN)/python slides/build.py

# The editions for teaching: the book's _config.yml with editions/<edition>.yml merged in.
student: $(STAMP)
	$(BIN)/python editions/build.py student

pdf: $(STAMP)
	$(BIN)/python editions/build.py pdf

execute: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  $(BIN)/jupyter execute --inplace "$$nb" || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check lmmbook tests benchmarks slides editions conftest.py

clean:
	rm -rf _build
