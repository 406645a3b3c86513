"""Sphinx extension of the PDF edition: the book's chapter numbers and exercise references in LaTeX.

Things the HTML book gets right and Sphinx's LaTeX builder does not, fixed here for LaTeX
builds only (HTML builds are untouched): chapter numbers, references to another page's exercise,
long tables (see LongTableWidths) and the teaching page's column of slide decks (see
DropSlideDeckColumn).

1. **Chapter numbers.** Sphinx makes every section of the root page (the introduction) and every
   page a numbered LaTeX chapter, so chapter 1 of the book would be chapter 6 of the PDF while the
   prose says "chapter 5" for ``ch05-...``. Here the pages before the first chapter (introduction,
   notation) are unnumbered front matter, a page ``book/chNN-...`` is chapter NN (the number in a
   chapter's file name is the chapter's, as everywhere in the book), and the pages after the last
   chapter (API reference, bibliography) are appendices A, B, ... Equations and figures are
   numbered within these chapter numbers (exercises keep the book's running numbers). The
   bibliography page gives only its entries, which Sphinx lists at the end under "Bibliography".
2. **References to an exercise of another page.** In LaTeX sphinx-exercise labels an exercise
   ``exercise:<label>`` and rewrites a reference to it from the same page into a link to that
   label, with the number as text. A reference from another page (chapter 7's
   ``{ref}`ex-new-animals``` to chapter 6's exercise) is left to Sphinx, which links to
   ``<page>:<label>`` and prints the number with ``\\ref``: neither exists, and the PDF shows
   "Exercise ??" with an "undefined reference" warning (sphinx-exercise 1.2.1). Such references
   are rewritten as sphinx-exercise does within a page, with the number Sphinx resolved (the one
   the exercise's own title shows).
"""

import re

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.nodes import exercise_enumerable_node, exercise_latex_number_reference

CHAPTER = re.compile(r"(?:^|/)ch(\d+)-[^/]*$")


def _latex(text: str) -> nodes.raw:
    return nodes.raw("", text + "\n", format="latex")


class ChapterNumbers(SphinxPostTransform):
    """On the whole book, assembled as one tree with a start_of_file node per page."""

    default_priority = 40
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        pages = list(self.document.findall(addnodes.start_of_file))
        numbers = [CHAPTER.search(page["docname"]) for page in pages]
        if not any(numbers):
            return
        # Front matter: LaTeX numbers no chapter while secnumdepth is below 0.
        self.document.insert(0, _latex(
            r"\makeatletter\edef\lmmbooksecnumdepth{\the\c@secnumdepth}\makeatother"
            r"\setcounter{secnumdepth}{-1}"))
        last = max(i for i, number in enumerate(numbers) if number)
        for page in pages:
            citations = list(page.findall(nodes.citation))
            if citations:
                # Sphinx gathers every citation at the end of the PDF under its own heading,
                # "Bibliography": the page's heading and text would be an empty chapter before it.
                for citation in citations:
                    citation.parent.remove(citation)
                page.children = []
                page.extend(citations)
        for i, (page, number) in enumerate(zip(pages, numbers, strict=True)):
            if number:
                page.insert(0, _latex(
                    r"\setcounter{secnumdepth}{\lmmbooksecnumdepth}"
                    rf"\setcounter{{chapter}}{{{int(number.group(1)) - 1}}}"))
            elif i == last + 1:
                page.insert(0, _latex(r"\appendix"))


class ExerciseReferencesAcrossPages(SphinxPostTransform):
    """After Sphinx resolved the references (priority 10), before the LaTeX writer."""

    default_priority = 30
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", {})
        for node in list(self.document.findall(addnodes.number_reference)):
            label = node.get("refuri", "").rpartition("#")[2]
            target = registry.get(label)
            if node.get("refid") or target is None:
                continue
            if not isinstance(target.get("node"), exercise_enumerable_node):
                continue
            new = exercise_latex_number_reference(refid=label)
            new += nodes.Text(node.astext())
            node.replace_self(new)


class LongTableWidths(SphinxPostTransform):
    """A table of more than 30 rows (a LaTeX longtable) gets columns as wide as their text.

    Sphinx sets a longtable's columns with LaTeX's ``l``, which never wraps: the notation page's
    table ran off the page. Widths from the cells' text (the 90th percentile of a column's cell
    lengths, between 6 and 60 characters; TeX source of math counted at a third, since it prints
    shorter) make Sphinx write wrapping ``p`` columns instead."""

    default_priority = 40
    formats = ("latex",)

    @staticmethod
    def _length(entry: nodes.Element) -> float:
        math = sum(len(m.astext()) for m in entry.findall(nodes.math))
        return len(entry.astext()) - math + math / 3

    def run(self, **kwargs) -> None:
        for table in self.document.findall(nodes.table):
            rows = list(table.findall(nodes.row))
            colspecs = list(table.findall(nodes.colspec))
            if len(rows) <= 30 or "colwidths-given" in table["classes"] or not colspecs:
                continue
            lengths = [[] for _ in colspecs]
            for row in rows:
                for k, entry in enumerate(row.findall(nodes.entry)):
                    if k < len(lengths):
                        lengths[k].append(self._length(entry))
            for colspec, column in zip(colspecs, lengths, strict=True):
                column = sorted(column) or [0]
                p90 = column[min(len(column) - 1, int(0.9 * len(column)))]
                colspec["colwidth"] = int(min(60, max(6, round(p90))))
            table["classes"].append("colwidths-given")


class DropSlideDeckColumn(SphinxPostTransform):
    """A table column headed "slide deck ..." (the semester plan of the teaching page) is left out.

    The deck names (``ch01-mixed-model-equations.slides.html``) are literals that LaTeX cannot
    break: with them the semester plan ran past the right margin of the page and cut them off.
    The decks are opened in a browser, not from paper, and each is named after its chapter's
    file, as the page says. The columns kept get fixed widths (wrapping ``p`` columns) that add
    up to about the text width in characters (``LINE``): each at least its longest word and the
    space between columns, the rest shared in proportion to the 90th percentile of its cells'
    lengths, so that no column (the narrow "week") is squeezed below its header."""

    LINE = 90  # characters of 10 pt text in the text width of an A4 page of Sphinx's "manual"
    GAP = 5  # characters: a column's two \tabcolsep and a little room

    default_priority = 35
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        for table in list(self.document.findall(nodes.table)):
            head = next(table.findall(nodes.thead), None)
            if head is None:
                continue
            header = [entry.astext().strip().lower() for entry in next(head.findall(nodes.row))
                      .children]
            drop = [k for k, text in enumerate(header) if text.startswith("slide deck")]
            if not drop:
                continue
            group = next(table.findall(nodes.tgroup))
            colspecs = [c for c in group.children if isinstance(c, nodes.colspec)]
            for k in reversed(drop):
                group.remove(colspecs[k])
                for row in table.findall(nodes.row):
                    row.remove(row.children[k])
            group["cols"] = len(colspecs) - len(drop)
            self._set_widths(table, [c for k, c in enumerate(colspecs) if k not in drop])

    def _set_widths(self, table: nodes.table, colspecs: list) -> None:
        columns = [[] for _ in colspecs]
        for row in table.findall(nodes.row):
            for k, entry in enumerate(row.children[:len(columns)]):
                columns[k].append(entry.astext())
        low = [max(len(w) for text in col for w in text.split() or [""]) + self.GAP
               for col in columns]
        wish = [sorted(len(t) for t in col)[int(0.9 * (len(col) - 1))] for col in columns]
        extra = [max(0, w - lo) for w, lo in zip(wish, low, strict=True)]
        room = max(0, self.LINE - sum(low))
        share = min(1.0, room / sum(extra)) if sum(extra) else 0.0
        for colspec, lo, ex in zip(colspecs, low, extra, strict=True):
            colspec["colwidth"] = int(round(lo + ex * share))
        table["classes"].append("colwidths-given")


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_exercise")
    app.add_post_transform(ExerciseReferencesAcrossPages)
    app.add_post_transform(ChapterNumbers)
    app.add_post_transform(LongTableWidths)
    app.add_post_transform(DropSlideDeckColumn)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
