"""Sphinx extension: bibliography labels in the author-year form of the citations in the text.

The book cites author-year (``bibtex_reference_style: author_year``: "[Bates et al., 2015]"),
but sphinxcontrib-bibtex's default bibliography style, ``alpha``, labels the entries "[BMBW15]",
and mangles a name with an accent ("[BMachlerBW15]" for Bates, M{\\"a}chler, Bolker and Walker).
In the HTML the labels sit only on the bibliography page; the PDF prints them before every entry,
next to citations of the other form. The style registered here, ``author_year_alpha``, is
``alpha`` (the same entries, formatted and sorted the same) with labels written as the text cites:
"Henderson, 1975", "Mrode and Pocrnic, 2023", "Bates et al., 2015" (the von part kept, LaTeX
accents decoded); two entries that would share a label get "a", "b", ... Select it with
``bibtex_default_style: author_year_alpha``.
"""

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx


def _last_name(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year_label(entry) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = Text.from_latex(entry.fields.get("key", entry.key)).render_as("text")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2 and names[1] != "others":
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = Text.from_latex(entry.fields.get("year", "n.d.")).render_as("text")
    return f"{who}, {year}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year_label(entry) for entry in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearAlphaStyle(AlphaStyle):
    default_label_style = "author_year"


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "author_year_alpha", AuthorYearAlphaStyle)


def setup(app: Sphinx) -> dict:
    return {"parallel_read_safe": True, "parallel_write_safe": True}
