"""Build one reveal.js slide deck per chapter of the book: ``make slides`` -> ``_build/slides/``.

Every notebook listed in ``_toc.yml`` becomes ``_build/slides/<notebook>.slides.html``, written by
nbconvert's SlidesExporter from the same stored outputs the book shows (nothing is executed).
reveal.js (pinned in ``slides/package-lock.json``, installed by ``npm ci``) and MathJax 3 (the copy
that ``sphinx-mathjax-offline`` ships for the book) are copied beside the decks, so a deck opened
from the folder, or from a USB stick in a lecture hall without a network, needs no other host.

What becomes a slide. A cell's ``slideshow.slide_type`` metadata (Jupyter's "Slide Type": slide,
subslide, fragment, -, notes, skip) is obeyed. A cell without it gets a default:

- markdown is cut at its headings: ``#`` and ``##`` start a slide, ``###`` and deeper a subslide
  (a heading straight under its parent shares the parent's slide). Display equations, lists,
  short paragraphs (up to ``SHORT`` characters), warnings and exercise statements are shown;
  longer prose and the margin notes become the speaker notes (press ``s``), and the whole
  sentences that open a long paragraph (up to ``SHORT`` characters) stay on the slide: a slide
  never ends in the middle of a sentence, and a paragraph that leads into an equation or a code
  cell ("... gives:") moves with it. A glued figure gets a
  subslide of its own with the first sentence of its caption. A slide whose content would not fit
  (about ``BUDGET`` lines) is continued on a subslide;
- a code cell with a figure shows the figure (its code hidden); a short code cell (up to
  ``SHORT_CODE`` lines) with a visible output is shown, code and output, on a subslide; the other
  code cells (setup, glue-only, long computations) are skipped. Shown code loses its
  ``glue(...)`` calls and ``from myst_nb import glue``, and shows at most ``MAX_CODE`` lines
  (whatever its metadata), cut after a whole statement. A relative link (``notation.md``) becomes
  its text, since the book's pages are not in the slides folder. Jupyter Book's tags
  ``remove-cell``, ``remove-input``/``hide-input`` and ``remove-output`` are obeyed too.

A cell with metadata is taken whole (its markdown is not cut at headings or sent to the notes).

Exercise solutions never reach a deck: everything between ``solution-start`` and ``solution-end``,
markdown and code, is dropped whatever its metadata says. MyST roles and directives, which
nbconvert does not know, are resolved here: glued numbers and figures from the stored outputs,
equation, figure and exercise numbers as in the book (which numbers them through all chapters),
``{cite}`` as author-year from ``book/references.bib``. A glue key that the
stored outputs lack stops the build, as it stops the book's.

Usage: ``python slides/build.py [NOTEBOOK ...]`` (default: every notebook in ``_toc.yml``).
"""

from __future__ import annotations

import argparse
import ast
import codecs
import copy
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec for author names)
import nbformat
import yaml
from nbconvert import SlidesExporter
from pybtex.database import parse_file
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "slides"
OUT = ROOT / "_build" / "slides"
CACHE = ROOT / "_build" / ".slides-assets"  # npm ci installs reveal.js here

SHORT = 300  # a paragraph up to this many characters is shown; a longer one goes to the notes
SHORT_LIST = 900  # the same for a list
SHORT_CODE = 12  # a code cell of up to this many lines is shown by default
MAX_CODE = 14  # a shown code cell (even one chosen by metadata) shows at most this many lines
BUDGET = 19  # rough height of a slide in lines of text, before it is continued on a subslide
LINE = 80  # characters in a line of slide text

PREFIX = "application/papermill.record/"
FENCE = re.compile(r"^(`{3,}|:{3,})\s*\{([\w:.-]+)\}\s*(.*?)\s*$")
PLAIN_FENCE = re.compile(r"^(`{3,})[\w+-]*\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
TARGET = re.compile(r"^\(([\w:.-]+)\)=\s*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
ROLE = re.compile(r"\{([\w:.-]+)\}`([^`]*)`")
TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)
SHOWN_TYPES = {"slide", "subslide", "fragment", "-"}
SLIDE_TYPES = SHOWN_TYPES | {"notes", "skip"}
LINK = re.compile(r"\[([^\]]+)\]\(([^()\s]+)\)")
SENTENCE_END = re.compile(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)(?<!\bvs)(?<!\bFig)(?<!\bEq)"
                          r"(?<!\bch)(?<!\bp)[.!?](?=\s|$)")


# ---- reading a chapter ----------------------------------------------------------------------

@dataclass
class Block:
    kind: str  # heading, math, directive, target, para, list, code
    text: str = ""
    level: int = 0
    name: str = ""
    arg: str = ""
    options: dict[str, str] = field(default_factory=dict)
    label: str = ""


def split_blocks(text: str) -> list[Block]:
    """Cut MyST markdown into headings, display math, directives, label targets and paragraphs."""
    lines = text.split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            mark, name, arg = fence.groups()
            j = i + 1
            while j < len(lines) and lines[j].strip() != mark:
                j += 1
            body = lines[i + 1:j]
            options = {}
            while body and re.match(r"^:[\w-]+:", body[0]):
                key, _, value = body.pop(0)[1:].partition(":")
                options[key.strip()] = value.strip()
            out.append(Block("directive", "\n".join(body).strip("\n"), name=name, arg=arg,
                             options=options))
            i = j + 1
            continue
        if PLAIN_FENCE.match(line):
            mark = PLAIN_FENCE.match(line).group(1)
            j = i + 1
            while j < len(lines) and lines[j].strip() != mark:
                j += 1
            out.append(Block("code", "\n".join(lines[i:j + 1])))
            i = j + 1
            continue
        if line.startswith("$$"):
            rest = line[2:]
            if "$$" in rest:  # $$ ... $$ (label) on one line
                tex, _, tail = rest.partition("$$")
                j = i
            else:
                j = i + 1
                while j < len(lines) and not lines[j].lstrip().startswith("$$"):
                    j += 1
                tex = "\n".join([rest] + lines[i + 1:j])
                tail = lines[j].lstrip()[2:] if j < len(lines) else ""
            label = re.match(r"^\s*\(([\w:.-]+)\)\s*$", tail)
            out.append(Block("math", tex.strip("\n"), label=label.group(1) if label else ""))
            i = j + 1
            continue
        target = TARGET.match(line)
        if target:
            out.append(Block("target", label=target.group(1)))
            i += 1
            continue
        heading = HEADING.match(line)
        if heading:
            out.append(Block("heading", heading.group(2), level=len(heading.group(1))))
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not (
                FENCE.match(lines[j]) or PLAIN_FENCE.match(lines[j]) or HEADING.match(lines[j])
                or lines[j].startswith("$$") or TARGET.match(lines[j])):
            j += 1
        kind = "list" if LIST_ITEM.match(line) else "para"
        chunk = "\n".join(lines[i:j])
        if kind == "list" and out and out[-1].kind == "list":  # a loose list: one block
            out[-1].text += "\n\n" + chunk
        elif kind == "para" and line.startswith(" ") and out and out[-1].kind == "list":
            out[-1].text += "\n\n" + chunk  # an indented paragraph inside a list item
        else:
            out.append(Block(kind, chunk))
        i = j
    return out


def _authors(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_clean(" ".join(p.prelast_names + p.last_names)) for p in people]
    if not names:
        return _clean(entry.fields.get("organization", entry.fields.get("title", "?")))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} & {names[1]}"
    return f"{names[0]} et al."


def _clean(tex: str) -> str:
    try:
        tex = codecs.decode(tex, "ulatex")
    except ValueError:
        pass
    return tex.replace("{", "").replace("}", "")


def read_bibliography(path: Path) -> dict[str, tuple[str, str]]:
    data = parse_file(str(path), "bibtex")
    return {key: (_authors(entry), entry.fields.get("year", "n.d."))
            for key, entry in data.entries.items()}


def page_titles() -> dict[str, str]:
    """The first heading of every page of the book, for ``{doc}`` links."""
    titles = {}
    for path in (ROOT / "book").glob("*"):
        if path.suffix == ".md":
            text = path.read_text()
        elif path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            text = "".join(cells[0]["source"]) if cells else ""
        else:
            continue
        heading = re.search(r"^#\s+(.*)$", text, re.M)
        titles[path.stem] = heading.group(1).strip() if heading else path.stem
    return titles


@dataclass
class Chapter:
    """What the MyST roles of one notebook refer to, numbered as on the book's page."""

    glue: dict[str, dict] = field(default_factory=dict)
    equations: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)
    exercises: dict[str, int] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    bib: dict[str, tuple[str, str]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, int] = field(default_factory=dict)  # equations of the other chapters
    first_exercise: int = 1

    @classmethod
    def read(cls, nb, bib, titles, before: tuple[int, int, int] = (0, 0, 0)) -> Chapter:
        """`before`: the equations, figures and exercises of the book's earlier chapters, which
        the book numbers on (its numbers run through the whole book)."""
        chapter = cls(bib=bib, titles=titles, first_exercise=before[2] + 1)
        n_eq, n_fig, n_ex = before
        for cell in nb.cells:
            if cell.cell_type == "code":
                for output in cell.get("outputs", []):
                    name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                    if name:
                        chapter.glue[name] = {k[len(PREFIX):]: v for k, v in
                                              output.get("data", {}).items()
                                              if k.startswith(PREFIX)}
                continue
            if cell.cell_type != "markdown":
                continue
            pending = None
            for block in split_blocks(cell.source):
                if block.kind == "target":
                    pending = block.label
                    continue
                if block.kind == "heading" and pending:
                    chapter.sections[pending] = block.text
                elif block.kind == "math" and block.label:
                    n_eq += 1
                    chapter.equations[block.label] = n_eq
                elif block.kind == "directive":
                    label = block.options.get("label") or block.options.get("name")
                    if block.name == "math" and label:
                        n_eq += 1
                        chapter.equations[label] = n_eq
                    elif block.name in ("glue:figure", "figure"):
                        n_fig += 1
                        chapter.figures[label or f"_figure{n_fig}"] = n_fig
                    elif block.name == "exercise":
                        n_ex += 1
                        chapter.exercises[label or f"_exercise{n_ex}"] = n_ex
                pending = None
        return chapter

    # -- roles --------------------------------------------------------------------------------

    def glued(self, key: str, markdown: bool = False) -> str:
        key, _, spec = key.partition(":")
        data = self.glue.get(key)
        if data is None:
            raise KeyError(f"nothing glued under {key!r}")
        if markdown and "text/markdown" in data:
            return self.inline(data["text/markdown"])
        text = data.get("text/plain", "")
        if spec:
            try:
                return format(ast.literal_eval(text), spec)
            except (ValueError, SyntaxError, TypeError):
                pass
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = ast.literal_eval(text)
        return text

    def cite(self, keys: str, textual: bool) -> str:
        found = []
        for key in (k.strip() for k in keys.split(",") if k.strip()):
            authors, year = self.bib.get(key, (key, "?"))
            found.append(f"{authors} ({year})" if textual else f"{authors} {year}")
        return ", ".join(found) if textual else "(" + "; ".join(found) + ")"

    def reference(self, role: str, content: str) -> str:
        titled = TITLED.match(content)
        text, label = (titled.group(1), titled.group(2)) if titled else ("", content)
        if role == "eq":  # numbered as on the book's page of the chapter that has it
            number = self.equations.get(label) or self.elsewhere.get(label)
            return f"({number})" if number else f"({label})"
        if role == "doc":
            return text or self.titles.get(Path(label).name, label)
        if role == "numref" and text and "%s" in text:
            number = self.figures.get(label) or self.exercises.get(label)
            return text.replace("%s", str(number))
        if text:
            return text
        if label in self.figures:
            return f"Fig. {self.figures[label]}"
        if label in self.exercises:
            return f"Exercise {self.exercises[label]}"
        if label in self.equations:
            return f"({self.equations[label]})"
        return self.sections.get(label, label)

    def inline(self, text: str) -> str:
        """Resolve the MyST roles of a piece of markdown."""

        def role(match: re.Match) -> str:
            name, content = match.groups()
            if name == "glue:text" or name == "glue":
                return self.glued(content)
            if name == "glue:md":
                return self.glued(content, markdown=True)
            if name in ("cite", "cite:p", "cite:ps", "cite:alp"):
                return self.cite(content, textual=False)
            if name in ("cite:t", "cite:ts", "cite:alt"):
                return self.cite(content, textual=True)
            if name == "math":
                return f"${content}$"
            if name in ("eq", "ref", "numref", "doc", "prf:ref", "term"):
                return self.reference(name, content)
            return f"`{content}`" if name in ("code", "samp") else content

        return LINK.sub(_link, ROLE.sub(role, text))

    def figure_html(self, key: str) -> str:
        data = self.glue.get(key, {})
        if "image/png" in data:
            return (f'<img src="data:image/png;base64,{data["image/png"].strip()}" '
                    f'alt="{html.escape(key)}">')
        if "text/html" in data:
            return data["text/html"]
        raise KeyError(f"the glued figure {key!r} has no image")


def _link(match: re.Match) -> str:
    """A link to another host stays; a relative one (a page of the book, ``notation.md``) would
    be dead in the slides folder, so it becomes its text."""
    text, target = match.groups()
    if re.match(r"(https?:|mailto:)", target):
        return match.group(0)
    return text


def strip_glue(source: str) -> str:
    """The code without ``from myst_nb import glue`` and the ``glue(...)`` calls, which only feed
    the book's prose. A loop or ``if`` whose body was nothing but glue goes with it."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: only whole-line calls
        return "\n".join(line for line in source.split("\n")
                         if not re.match(r"\s*(glue\(.*\)|from myst_nb import glue)\s*$", line))

    def plumbing(node) -> bool:
        if isinstance(node, ast.ImportFrom) and node.module == "myst_nb":
            return all(alias.name == "glue" for alias in node.names)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            return isinstance(node.value.func, ast.Name) and node.value.func.id == "glue"
        if isinstance(node, (ast.For, ast.While, ast.If, ast.With)):
            return all(plumbing(child) for child in node.body + getattr(node, "orelse", []))
        return False

    drop: set[int] = set()

    def walk(body) -> None:
        for node in body:
            if plumbing(node):
                drop.update(range(node.lineno, node.end_lineno + 1))
            else:
                for name in ("body", "orelse", "finalbody"):
                    if isinstance(getattr(node, name, None), list):
                        walk(getattr(node, name))
                for handler in getattr(node, "handlers", []):
                    walk(handler.body)

    walk(tree.body)
    lines = [line for number, line in enumerate(source.split("\n"), 1) if number not in drop]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def head_of_code(source: str, limit: int = MAX_CODE) -> str:
    """At most `limit` lines of the code, cut after a whole top-level statement when one ends
    there, and a comment that says how much the notebook has beyond."""
    lines = source.split("\n")
    if len(lines) <= limit:
        return source
    cut = limit - 1
    try:
        ends = [node.end_lineno for node in ast.parse(source).body]
        fitting = [end for end in ends if end <= limit - 1]
        if fitting and fitting[-1] >= limit // 2:
            cut = fitting[-1]
    except SyntaxError:
        pass
    head = "\n".join(lines[:cut]).rstrip()
    return f"{head}\n# ... {len(lines) - cut} more lines: the whole cell is in the notebook"


def list_items(text: str) -> list[str]:
    """The top-level items of a markdown list."""
    items: list[list[str]] = []
    for line in text.split("\n"):
        if LIST_ITEM.match(line) and not line.startswith(" ") or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return ["\n".join(item).strip("\n") for item in items]


def sentence_ends(text: str) -> list[int]:
    """Where the sentences of `text` end (after their full stop), outside inline math."""
    ends, in_math = [], False
    for i, char in enumerate(text):
        if char == "$" and (i == 0 or text[i - 1] != "\\"):
            in_math = not in_math
        elif not in_math and i >= 20 and SENTENCE_END.match(text, i):
            ends.append(i + 1)
    return ends


def first_sentence(text: str) -> str:
    bold = re.match(r"^\s*(\*\*.+?\*\*)", text, re.S)
    if bold:
        return bold.group(1)
    ends = sentence_ends(text)
    return text[:ends[0]] if ends else text


def lead(text: str, limit: int = SHORT) -> str:
    """The whole sentences that open `text`, up to `limit` characters ("" if the first is longer):
    a slide never ends in the middle of a sentence."""
    fitting = [end for end in sentence_ends(text) if end <= limit]
    return text[:fitting[-1]] if fitting else ""


# ---- slides -------------------------------------------------------------------------------

def _lines(markdown: str) -> float:
    """Rough height of rendered markdown in lines of slide text."""
    height = 0.0
    for line in markdown.split("\n"):
        heading = HEADING.match(line)
        if heading:  # h1 1.9em, h2 1.45em, h3 1.2em of the text's 0.9em, and their margins
            size = {1: 2.1, 2: 1.6}.get(len(heading.group(1)), 1.35)
            height += size * (1 + len(heading.group(2)) * size // LINE) + 0.5
        else:
            height += max(1.0, len(line) / LINE)
    return height


def _introduces(markdown: str) -> bool:
    """A paragraph of prose whose last sentence goes on in the next block (an equation, a list)."""
    text = markdown.rstrip()
    if not text or text.startswith(("#", "$$", "<", ">", "|")) or LIST_ITEM.match(text):
        return False
    return bool(re.search(r"([:,;]|[a-z])\**$", text))


def _code_lines(cell) -> float:
    height = len(cell.source.split("\n"))
    for output in cell.outputs:
        if output.output_type == "stream":
            height += output.text.count("\n") + 1
        elif "image/png" in output.get("data", {}):
            height += 18
        elif "text/html" in output.get("data", {}):
            height += output["data"]["text/html"].count("<tr")
        elif "text/plain" in output.get("data", {}):
            height += output["data"]["text/plain"].count("\n") + 1
    return height


class Deck:
    """Cells of the deck, built in order; visible content and notes of the current (sub)slide."""

    def __init__(self, chapter: Chapter):
        self.chapter = chapter
        self.cells: list = []
        self.visible: list[str] = []
        self.notes: list[str] = []
        self.kind = "slide"
        self.height = 0.0
        self.heading = ""
        self.level = 0
        self.fresh = False  # nothing but headings since the last heading

    def flush(self, next_kind: str = "subslide") -> None:
        if self.visible:
            self.cells.append(_markdown("\n\n".join(self.visible), self.kind))
        if self.notes:
            self.cells.append(_markdown("\n\n".join(self.notes), "notes"))
        self.visible, self.notes = [], []
        self.kind, self.height = next_kind, 0.0

    def start(self, kind: str, heading: str, level: int) -> None:
        if self.fresh and self.visible and level > self.level:
            # a heading right under a deeper one's parent: one slide for both (### under ##)
            self.visible.append(heading)
            self.height += 1
        else:
            self.flush(kind)
            self.show(heading, fits=True)
        self.heading, self.level, self.fresh = heading, level, True

    def show(self, markdown: str, fits: bool = False) -> None:
        height = _lines(markdown)
        if not fits and self.visible and self.height + height > BUDGET:
            # a paragraph that leads into what follows ("... is", "... gives:") goes with it
            carried = []
            if len(self.visible) > 1 and _introduces(self.visible[-1]):
                carried = [self.visible.pop()]
            self.flush("subslide")
            if self.heading:
                title = re.sub(r"^(#+)\s+", "", self.heading)
                self.show(f"### {title} (continued)", fits=True)
            for piece in carried:
                self.visible.append(piece)
                self.height += _lines(piece)
        self.visible.append(markdown)
        self.height += height
        if not fits:
            self.fresh = False

    def note(self, markdown: str) -> None:
        self.notes.append(markdown)
        self.fresh = False


def _markdown(source: str, kind: str):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["slideshow"] = {"slide_type": kind}
    return cell


def _math(block: Block, chapter: Chapter) -> str:
    tex = block.text
    label = block.label or block.options.get("label", "")
    if label in chapter.equations:
        tex = f"{tex}\n\\tag{{{chapter.equations[label]}}}"
    return f"$$\n{tex}\n$$"


class Builder:
    """Turns one notebook into the notebook nbconvert makes the deck of."""

    def __init__(self, nb, chapter: Chapter, title: str, number: int | None = None):
        self.nb = nb
        self.number = number
        self.chapter = chapter
        self.deck = Deck(chapter)
        self.title = title
        self.in_solution = False
        self.exercise = chapter.first_exercise - 1
        self.solutions_dropped = 0

    def build(self):
        for index, cell in enumerate(self.nb.cells):
            kind = cell.metadata.get("slideshow", {}).get("slide_type")
            if kind is not None and kind not in SLIDE_TYPES:
                raise ValueError(f"cell {index}: unknown slideshow.slide_type {kind!r}")
            if cell.cell_type == "markdown":
                self.markdown(cell, kind)
            elif cell.cell_type == "code":
                self.code(cell, kind)
        self.deck.flush()
        if self.in_solution:
            raise ValueError("a solution-start without its solution-end")
        nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(self.nb.metadata))
        nb.metadata.pop("widgets", None)
        nb.cells = self.deck.cells
        return nb

    # markdown -------------------------------------------------------------------------------

    def markdown(self, cell, kind: str | None) -> None:
        deck = self.deck
        explicit: list[str] = []
        for block in split_blocks(cell.source):
            if block.kind == "directive" and block.name == "solution-start":
                self.in_solution = True
                continue
            if block.kind == "directive" and block.name == "solution-end":
                self.in_solution = False
                self.solutions_dropped += 1
                continue
            if self.in_solution or block.kind == "target":
                continue
            if block.kind == "directive" and block.name in ("solution", "admonition") and (
                    block.name == "solution" or "solution" in block.arg.lower()):
                self.solutions_dropped += 1
                continue
            rendered = self.render(block)
            if rendered is None:
                continue
            visible, note = rendered
            if kind is not None:  # the cell's own slide type: the whole cell as one piece
                if block.kind in ("para", "list", "code"):
                    visible, note = visible or note, ""
                if visible:
                    explicit.append(visible)
                if note:
                    deck.note(note)
                continue
            if block.kind == "heading":
                deck.start("slide" if block.level <= 2 else "subslide", visible, block.level)
                if block.level == 1 and self.number:
                    deck.show(f"*{self.title}*, chapter {self.number}", fits=True)
                continue
            if block.kind == "directive" and block.name in ("glue:figure", "figure", "exercise"):
                deck.flush("subslide")
                deck.show(visible, fits=True)
                if note:
                    deck.note(note)
                deck.flush("subslide")
                continue
            if block.kind == "list":  # shown item by item, continued on a subslide if long
                for item in list_items(visible or note):
                    deck.show(item)
                continue
            if block.kind == "para" and note:
                opening = lead(note)  # the paragraph's opening sentences; all of it in the notes
                if opening:
                    deck.show(opening)
            if visible:
                deck.show(visible)
            if note:
                deck.note(note)
        if kind is None or kind == "skip":
            return
        deck.flush("subslide")
        if kind == "notes":
            if explicit:
                deck.cells.append(_markdown("\n\n".join(explicit), "notes"))
            return
        if explicit:
            deck.cells.append(_markdown("\n\n".join(explicit), kind))
        deck.flush("subslide")

    def render(self, block: Block) -> tuple[str, str] | None:
        """(what the slide shows, what goes to the speaker notes) for one block."""
        chapter = self.chapter
        if block.kind == "heading":
            return "#" * min(block.level, 3) + " " + chapter.inline(block.text), ""
        if block.kind == "math":
            return _math(block, chapter), ""
        if block.kind in ("para", "list", "code"):
            text = chapter.inline(block.text)
            limit = SHORT if block.kind == "para" else SHORT_LIST
            return (text, "") if len(block.text) <= limit else ("", text)
        if block.kind != "directive":
            return None
        name, body = block.name, block.text
        if name == "math":
            return _math(block, chapter), ""
        if name in ("margin", "sidebar", "seealso", "dropdown"):
            return "", chapter.inline(self.body(body))
        if name in ("glue:figure", "figure"):
            key = block.arg
            label = block.options.get("name", "")
            number = chapter.figures.get(label)
            image = (chapter.figure_html(key) if name == "glue:figure"
                     else f'<img src="{html.escape(key)}" alt="{html.escape(label)}">')
            caption = chapter.inline(self.body(body))
            head = f"**Fig. {number}.** " if number else ""
            shown = (f'<div class="lmm-figure">\n\n{image}\n\n{head}{first_sentence(caption)}'
                     '\n\n</div>')
            return shown, caption
        if name == "exercise":
            self.exercise += 1
            title = f": {chapter.inline(block.arg)}" if block.arg else ""
            return (f"### Exercise {self.exercise}{title}\n\n"
                    f'<div class="lmm-exercise">\n\n{chapter.inline(self.body(body))}\n\n</div>',
                    "")
        if name in ("glue:md", "glue:text", "glue"):
            return chapter.glued(block.arg, markdown=True), ""
        if name in ("code-cell", "raw", "only", "toctree", "bibliography"):
            return None
        # note, warning, tip, important, admonition, prf:*: a quoted box, shown
        title = block.arg or name.split(":")[-1].capitalize()
        inner = chapter.inline(self.body(body)).replace("\n", "\n> ")
        return f"> **{chapter.inline(title)}.** {inner}", ""

    def body(self, text: str) -> str:
        """The markdown inside a directive, with its own display math and nested blocks."""
        parts = []
        for block in split_blocks(text):
            if block.kind == "math":
                parts.append(_math(block, self.chapter))
            elif block.kind == "directive" and block.name == "math":
                parts.append(_math(block, self.chapter))
            elif block.kind == "heading":
                parts.append(f"**{block.text}**")
            elif block.kind in ("para", "list", "code"):
                parts.append(block.text)
            elif block.kind == "directive":
                parts.append(self.body(block.text))
        return "\n\n".join(parts)

    # code -----------------------------------------------------------------------------------

    def code(self, cell, kind: str | None) -> None:
        if self.in_solution:
            return
        cell = copy.deepcopy(cell)
        tags = set(cell.metadata.get("tags", []))
        if "remove-cell" in tags:
            return
        cell.outputs = [o for o in cell.outputs
                        if not o.get("metadata", {}).get("scrapbook")
                        and o.get("name") != "stderr"]
        if "remove-output" in tags:
            cell.outputs = []
        figure = any("image/png" in o.get("data", {}) for o in cell.outputs)
        cell.source = strip_glue(cell.source)
        lines = len(cell.source.strip().split("\n"))
        if kind is None:
            visible = [o for o in cell.outputs if o.output_type != "stream" or o.text.strip()]
            if figure:
                kind = "subslide"
                tags.add("hide-input")
            elif visible and lines <= SHORT_CODE:
                kind = "subslide"
            else:
                kind = "skip"
        if kind == "skip":
            return
        if tags & {"hide-input", "remove-input"}:
            cell.metadata["transient"] = {"remove_source": True}
        elif not cell.source.strip() and not cell.outputs:
            return  # nothing but glue
        else:
            cell.source = head_of_code(cell.source)
        deck = self.deck
        intro = None  # "... the table counts:" goes on the slide of what it introduces
        together = False
        if kind in ("slide", "subslide") and deck.visible and _introduces(deck.visible[-1]):
            # the slide is only (a heading and) the introduction: the code joins that slide
            together = len(deck.visible) == 1 or (
                len(deck.visible) == 2 and deck.visible[0].startswith("#"))
            if not together:
                intro = deck.visible.pop()
        deck.flush("subslide")
        if intro is not None:
            deck.cells.append(_markdown(intro, kind))
        if intro is not None or together:
            kind = "-"
        cell.metadata["slideshow"] = {"slide_type": kind}
        deck.cells.append(cell)


# ---- assets and the exporter ----------------------------------------------------------------

def chapters_in_toc() -> list[Path]:
    """Every notebook listed in _toc.yml, in the book's order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found: list[Path] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node and (ROOT / f"{node[key]}.ipynb").exists():
                    found.append(ROOT / f"{node[key]}.ipynb")
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def install_reveal() -> Path:
    """reveal.js at the version of slides/package-lock.json, installed once into _build."""
    lock = json.loads((HERE / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/reveal.js"]["version"]
    installed = CACHE / "node_modules" / "reveal.js"
    manifest = installed / "package.json"
    if not (manifest.exists() and json.loads(manifest.read_text())["version"] == version):
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("make slides needs npm (Node.js) to install reveal.js from the npm registry")
        CACHE.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(HERE / name, CACHE / name)
        # npm ci installs exactly the lock file's version and checks its integrity hash
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--loglevel=error"], cwd=CACHE, check=True)
    return installed


def mathjax_folder() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        sys.exit("sphinx-mathjax-offline (requirements.txt) is not installed")
    return Path(spec.origin).parent / "static" / "mathjax"


def copy_assets() -> None:
    reveal = install_reveal()
    target = OUT / "reveal.js"
    for part in ("dist", "plugin/notes"):
        shutil.copytree(reveal / part, target / part, dirs_exist_ok=True)
    shutil.copy2(reveal / "LICENSE", target / "LICENSE")
    shutil.copytree(mathjax_folder(), OUT / "mathjax", dirs_exist_ok=True)


def exporter() -> SlidesExporter:
    config = Config()
    config.TemplateExporter.extra_template_basedirs = [str(HERE / "templates")]
    config.SlidesExporter.template_name = "lmmbook"
    config.SlidesExporter.reveal_url_prefix = "reveal.js"
    config.SlidesExporter.reveal_theme = "white"  # "simple" imports fonts from a web service
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.reveal_number = "c/t"
    config.HTMLExporter.mathjax_url = "mathjax/tex-chtml.js"
    config.HTMLExporter.exclude_anchor_links = True
    config.TemplateExporter.exclude_input_prompt = True
    config.TemplateExporter.exclude_output_prompt = True
    return SlidesExporter(config=config)


def book_title() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text()).get("title", "the book")


@dataclass
class Numbering:
    """Equations, figures and exercises are numbered through the whole book, in _toc.yml's order."""

    before: dict[Path, tuple[int, int, int]]  # counts in the chapters before each one
    equations: dict[str, int]  # label -> number, every chapter

    @classmethod
    def of_book(cls) -> Numbering:
        before, equations, counts = {}, {}, (0, 0, 0)
        for path in chapters_in_toc():
            before[path] = counts
            chapter = Chapter.read(nbformat.read(path, as_version=4), {}, {}, counts)
            equations.update(chapter.equations)
            counts = (counts[0] + len(chapter.equations), counts[1] + len(chapter.figures),
                      counts[2] + len(chapter.exercises))
        return cls(before, equations)


def deck_notebook(path: Path, bib=None, titles=None, numbering: Numbering | None = None):
    """The notebook (cells with slide types) that nbconvert turns into the deck of `path`."""
    nb = nbformat.read(path, as_version=4)
    bib = read_bibliography(ROOT / "book" / "references.bib") if bib is None else bib
    numbering = Numbering.of_book() if numbering is None else numbering
    chapter = Chapter.read(nb, bib, page_titles() if titles is None else titles,
                           numbering.before.get(path.resolve(), (0, 0, 0)))
    chapter.elsewhere = numbering.equations
    number = re.match(r"ch(\d+)", path.stem)
    return Builder(nb, chapter, book_title(), int(number.group(1)) if number else None).build()


def write_index(decks: list[tuple[Path, str]]) -> None:
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(t)}</a></li>'
                      for p, t in decks)
    title = html.escape(book_title())
    (OUT / "index.html").write_text(
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}: slides</title></head>\n<body>\n<h1>{title}: slides</h1>\n"
        "<p>One deck per chapter. Arrow keys or space to move, <kbd>s</kbd> for the speaker "
        "notes, <kbd>f</kbd> for full screen, <kbd>Esc</kbd> for an overview; add "
        "<code>?print-pdf</code> to the address and print to get a PDF.</p>\n"
        f"<ol>\n{items}\n</ol>\n</body></html>\n")


def build(paths: list[Path]) -> list[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    copy_assets()
    bib = read_bibliography(ROOT / "book" / "references.bib")
    titles = page_titles()
    numbering = Numbering.of_book()
    css = (HERE / "slides.css").read_text()
    slides = exporter()
    written, decks = [], []
    for path in paths:
        try:
            nb = deck_notebook(path, bib, titles, numbering)
        except KeyError as error:  # a glue key: the stored outputs are older than the text
            sys.exit(f"{path.relative_to(ROOT)}: {error.args[0]} (glued values come from the "
                     "stored outputs: execute the notebook, make execute)")
        except ValueError as error:
            sys.exit(f"{path.relative_to(ROOT)}: {error}")
        body, _ = slides.from_notebook_node(
            nb, resources={"metadata": {"name": titles.get(path.stem, path.stem)},
                           "lmmbook_css": css})
        target = OUT / f"{path.stem}.slides.html"
        target.write_text(body)
        written.append(target)
        decks.append((target, titles.get(path.stem, path.stem)))
        print(f"{target.relative_to(ROOT)}: {body.count('<section')} sections")
    if len(paths) == len(chapters_in_toc()):
        write_index(decks)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to turn into decks (default: every one in _toc.yml)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or chapters_in_toc()
    build(paths)
    print(f"The decks are in {OUT.relative_to(ROOT)}: open index.html there in a browser.")


if __name__ == "__main__":
    main()
