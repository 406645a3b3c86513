"""`make slides`: one reveal.js deck per chapter, without solutions, that works with no network.

The rules of `slides/build.py` are checked on small made-up notebooks; the decks of the book are
built once (a few seconds) and opened in headless Chromium with every host name unresolvable,
like the book's pages in test_book.py: MathJax typeset the equations, every image decoded, reveal.js
started, and nothing was requested from another host. The same check must fail on a copy of a deck
whose MathJax comes from a CDN and on one with a broken figure.
"""

import html as html_module
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from browser_check import _page_requests

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "slides"
CDN_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"

_spec = importlib.util.spec_from_file_location("slides_build", ROOT / "slides" / "build.py")
build = importlib.util.module_from_spec(_spec)
sys.modules["slides_build"] = build  # dataclasses look their module up there
_spec.loader.exec_module(build)

CHAPTERS = build.chapters_in_toc()


# ---- the rules, on made-up notebooks ----------------------------------------------------------

def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = list(cells)
    return nb


def _code(source, *outputs, slide_type=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = list(outputs)
    if slide_type:
        cell.metadata["slideshow"] = {"slide_type": slide_type}
    return cell


def _md(source, slide_type=None):
    cell = nbformat.v4.new_markdown_cell(source)
    if slide_type:
        cell.metadata["slideshow"] = {"slide_type": slide_type}
    return cell


def _glue(name, text):
    return nbformat.v4.new_output(
        "display_data", data={f"{build.PREFIX}text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": build.PREFIX}})


def _deck(nb, bib=None):
    chapter = build.Chapter.read(nb, bib or {}, {"notation": "Notation"})
    return build.Builder(nb, chapter, "The Book", 3).build()


def _types(deck):
    return [(c.cell_type, c.metadata["slideshow"]["slide_type"]) for c in deck.cells]


def test_headings_start_slides_and_long_prose_goes_to_the_notes():
    long = "A long paragraph of prose. " + "word " * 100
    deck = _deck(_notebook(_md(f"# Title\n\n{long}\n\n## Part\n\nShort.\n\n### Sub\n\n{long}")))
    assert _types(deck) == [("markdown", "slide"), ("markdown", "notes"),
                            ("markdown", "slide"), ("markdown", "subslide"),
                            ("markdown", "notes")]
    title, notes, part, sub, sub_notes = (c.source for c in deck.cells)
    assert title.startswith("# Title") and "*The Book*, chapter 3" in title
    assert "A long paragraph of prose." in title and "word word" not in title  # topic sentence
    assert "word word" in notes and part == "## Part\n\nShort."
    assert sub == "### Sub\n\nA long paragraph of prose." and "word word" in sub_notes


def test_a_markdown_cell_with_metadata_is_taken_whole():
    long = "A long paragraph of prose. " + "word " * 100
    nb = _notebook(_md("# T"), _md(f"## Part\n\n{long}\n\n### Sub\n\n$$\nx\n$$",
                                   slide_type="fragment"),
                   _md("```{margin}\nFor R users\n```\n\nText.", slide_type="subslide"))
    deck = _deck(nb)
    assert _types(deck) == [("markdown", "slide"), ("markdown", "fragment"),
                            ("markdown", "notes"), ("markdown", "subslide")]
    assert deck.cells[1].source == f"## Part\n\n{long}\n\n### Sub\n\n$$\nx\n$$"
    assert deck.cells[2].source == "For R users" and deck.cells[3].source == "Text."


def test_solutions_never_reach_a_deck_whatever_their_metadata():
    nb = _notebook(
        _md("## Exercises\n\n```{exercise}\n:label: ex-a\n\nCompute $x$.\n```\n\n"
            "```{solution-start} ex-a\n:class: dropdown\n```\n\nSECRET reasoning"),
        _code("secret_answer = 42", nbformat.v4.new_output("stream", text="42\n"),
              slide_type="slide"),
        _md("SECRET markdown", slide_type="slide"),
        _md("```{solution-end}\n```\n\nAfter the solution."),
    )
    text = json.dumps(_deck(nb))
    assert "SECRET" not in text and "secret_answer" not in text
    assert "Compute $x$." in text and "After the solution." in text
    assert "### Exercise 1" in text


def test_an_unclosed_solution_is_refused():
    nb = _notebook(_md("```{solution-start} ex-a\n:class: dropdown\n```\n\ntext"))
    with pytest.raises(ValueError, match="solution-start without its solution-end"):
        _deck(nb)


def test_an_unknown_slide_type_is_refused():
    with pytest.raises(ValueError, match="cell 0: unknown slideshow.slide_type 'sldie'"):
        _deck(_notebook(_md("# T", slide_type="sldie")))


def test_myst_roles_are_resolved_from_the_notebook_and_the_bibliography():
    nb = _notebook(
        _md("# T\n\n$$\na = b\n$$ (eq-first)\n\n$$\nc = d\n$$ (eq-second)"),
        _code("glue(...)", _glue("h2", "0.41234"), _glue("name", "'V11'")),
        _md("By {eq}`eq-second`, h2 = {glue:text}`h2:.2f` for {glue:text}`name`; see "
            "{cite:t}`Smith2001` and {cite}`Smith2001,Doe2003`, and the {doc}`notation` page."),
    )
    bib = {"Smith2001": ("Smith & Jones", "2001"), "Doe2003": ("Doe et al.", "2003")}
    text = "\n".join(c.source for c in _deck(nb, bib).cells)
    assert "a = b\n\\tag{1}" in text and "c = d\n\\tag{2}" in text
    assert ("By (2), h2 = 0.41 for V11; see Smith & Jones (2001) and "
            "(Smith & Jones 2001; Doe et al. 2003), and the Notation page.") in text


def test_a_missing_glue_key_is_an_error():
    with pytest.raises(KeyError, match="nothing glued under 'missing'"):
        _deck(_notebook(_md("# T\n\nvalue {glue:text}`missing`")))


def test_code_cells_by_default_and_by_metadata():
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                       "text/plain": "<Figure>"})
    printed = nbformat.v4.new_output("stream", text="result\n")
    long_source = "\n".join(f"x{i} = {i}" for i in range(30))
    nb = _notebook(
        _md("# T"),
        _code("import numpy as np"),                           # no output: skipped
        _code("print('result')", printed),                     # short with output: shown
        _code(long_source, printed),                           # long: skipped
        _code(long_source, png),                               # figure: shown, code hidden
        _code(long_source, printed, slide_type="fragment"),    # chosen: shown as it says
        _code("print('result')", printed, slide_type="skip"),  # chosen: skipped
    )
    deck = _deck(nb)
    assert _types(deck) == [("markdown", "slide"), ("code", "subslide"), ("code", "subslide"),
                            ("code", "fragment")]
    assert not deck.cells[1].metadata.get("transient")
    assert deck.cells[2].metadata["transient"] == {"remove_source": True}


def test_glue_calls_are_stripped_from_the_code_shown():
    source = ("import numpy as np\nfrom myst_nb import glue\n\nx = np.arange(3)\n"
              "glue(\"x\", float(x.sum()), display=False)\nfor k in range(2):\n"
              "    glue(f\"k{k}\", k, display=False)\nfor k in range(2):\n    print(k)\n"
              "    glue(\"last\", k,\n         display=False)\nprint(x)")
    shown = build.strip_glue(source)
    assert "glue" not in shown and "myst_nb" not in shown
    assert shown == ("import numpy as np\n\nx = np.arange(3)\nfor k in range(2):\n"
                     "    print(k)\nprint(x)")
    compile(shown, "shown", "exec")  # still valid code
    nb = _notebook(_md("# T"), _code(source, nbformat.v4.new_output("stream", text="3\n"),
                                     slide_type="subslide"),
                   _code("glue('x', 1, display=False)", _glue("x", "1")))
    deck = _deck(nb)
    assert [c.source for c in deck.cells if c.cell_type == "code"] == [shown]


def test_a_long_code_cell_shows_its_first_lines_whatever_its_metadata():
    source = "\n".join(f"x{i} = {i}" for i in range(8)) + "\nfor i in range(3):\n" + "\n".join(
        f"    y{i} = {i}" for i in range(10)) + "\nprint(x0)"
    nb = _notebook(_md("# T"), _code(source, nbformat.v4.new_output("stream", text="0\n"),
                                     slide_type="subslide"))
    shown = [c.source for c in _deck(nb).cells if c.cell_type == "code"][0]
    lines = shown.split("\n")
    # cut after the last whole statement that fits (the 8 assignments), not inside the loop
    assert lines[:8] == source.split("\n")[:8] and len(lines) == 9
    assert lines[-1] == "# ... 12 more lines: the whole cell is in the notebook"
    assert len(lines) <= build.MAX_CODE


def test_slides_keep_whole_sentences_and_relative_links_become_text():
    long = ("First sentence with $a.b$ inside, e.g. this. Second one ends here. "
            + "Third sentence goes on and on " * 12 + "until it ends.")
    nb = _notebook(_md("# T\n\nShort. See the [notation page](notation.md) and "
                       "[the site](https://example.org).\n\n## Part\n\nIntro.\n\n" + long))
    text = "\n".join(c.source for c in _deck(nb).cells if c.metadata.slideshow.slide_type
                     != "notes")
    assert "See the notation page and [the site](https://example.org)." in text
    assert "First sentence with $a.b$ inside, e.g. this. Second one ends here." in text
    assert "Third" not in text  # the sentence that does not fit goes to the notes, whole
    assert build.lead("One sentence that goes on " * 20 + "and ends.") == ""
    assert build.lead("As in Fig. 2 and ch. 3, e.g. here, it ends. " + "More " * 80) == (
        "As in Fig. 2 and ch. 3, e.g. here, it ends.")


def test_a_paragraph_that_introduces_code_or_an_equation_stays_with_it():
    printed = nbformat.v4.new_output("stream", text="result\n")
    filler = "\n\n".join(f"Line {i} of prose that fills the slide." for i in range(14))
    nb = _notebook(_md(f"# T\n\n## Part\n\n{filler[:200]}.\n\nThe table counts the plots:"),
                   _code("print('result')", printed, slide_type="subslide"),
                   _md(f"## Next\n\n{filler}\n\nThe random effects have\n\n$$\n"
                       + "x = 1\\\\\n" * 12 + "$$"))
    deck = _deck(nb)
    kinds = _types(deck)
    at = kinds.index(("code", "-"))  # the code joins the slide of its introduction
    assert deck.cells[at - 1].source == "The table counts the plots:"
    assert kinds[at - 1] == ("markdown", "subslide")
    shown = [c.source for c in deck.cells if c.metadata.slideshow.slide_type != "notes"]
    # no slide ends on "have": it is continued with the equation it introduces
    assert not [s for s in shown if s.rstrip().endswith("have")]
    assert [s for s in shown if s.startswith("### Next (continued)\n\nThe random effects have")]


def _deck_text(deck):
    """The text of a deck as a reader sees it, code included (tags removed, not spaced)."""
    page = deck.read_text()
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return html_module.unescape(re.sub(r"<[^>]+>", "", page))


def test_every_notebook_in_the_toc_is_a_chapter_deck():
    toc = (ROOT / "_toc.yml").read_text()
    listed = [f for f in re.findall(r"(?:root|file):\s*(\S+)", toc)
              if (ROOT / f"{f}.ipynb").exists()]
    assert [str(p.relative_to(ROOT).with_suffix("")) for p in CHAPTERS] == listed
    assert len(CHAPTERS) >= 11 and all(re.match(r"ch\d\d-", p.name) for p in CHAPTERS)


# ---- the decks of the book ----------------------------------------------------------------

@pytest.fixture(scope="session")
def decks():
    done = subprocess.run([sys.executable, str(ROOT / "slides" / "build.py")],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0 and "npm" in done.stderr and not os.environ.get("CI"):
        pytest.skip(f"reveal.js could not be installed with npm: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return {p: OUT / f"{p.stem}.slides.html" for p in CHAPTERS}


class _Text(HTMLParser):
    """All text of a deck (slides and speaker notes), outside scripts and styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.parts = []

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style") and self.skip > 0

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _plain(text):
    return re.sub(r"\s+", " ", text).strip()


def _snippets(source):
    """Runs of plain words (no math, markup or roles) long enough to be unmistakable."""
    return [_plain(s) for s in re.findall(r"[A-Za-z][A-Za-z ,;'()-]{45,}", source)]


def _solutions(path):
    """Texts of the exercises and of their gated solutions (markdown and code) of a chapter;
    a line of a solution that the chapter also has outside the solutions is left out."""
    nb = nbformat.read(path, as_version=4)
    exercises, solutions, outside, inside = [], [], [], False
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines = [_plain(line) for line in cell.source.split("\n") if len(line.strip()) > 30]
            (solutions if inside else outside).extend(lines)
            continue
        for part in re.split(r"(```\{solution-(?:start|end)\}[^`]*```)", cell.source):
            if part.startswith("```{solution-start}"):
                inside = True
            elif part.startswith("```{solution-end}"):
                inside = False
            elif inside:
                solutions += _snippets(part)
            else:
                outside.append(_plain(part))
                for exercise in re.findall(r"```\{exercise\}.*?```", part, re.S):
                    exercises += _snippets(exercise)
    elsewhere = " ".join(outside)
    return exercises, [s for s in solutions if s not in elsewhere]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_deck_has_the_exercises_no_solution_and_no_myst_markup(decks, notebook):
    deck = decks[notebook]
    parser = _Text()
    parser.feed(deck.read_text())
    text = _plain(" ".join(parser.parts))
    leftovers = [m for m in ("```", ":::", "{glue", "{eq}", "{cite", "{ref}", "{numref}",
                             "{doc}", ":label:", ":class:", "solution-start") if m in text]
    assert not leftovers, f"MyST markup left in {deck.name}: {leftovers}"
    exercises, solutions = _solutions(notebook)
    if not solutions:
        pytest.skip(f"{notebook.name} has no gated solutions yet")
    # the same search finds the exercise statements: it would find a solution too
    assert [s for s in exercises if s in text] == exercises
    leaked = [s for s in solutions if s in text]
    assert not leaked, f"solution text in {deck.name}: {leaked[:3]}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_decks_number_equations_figures_and_exercises_as_the_book(decks, notebook):
    """The book numbers them through all chapters; a deck must quote the same numbers. Compared
    with the book's page when a build newer than the notebook is there (make test builds it)."""
    page = ROOT / "_build" / "html" / notebook.relative_to(ROOT).with_suffix(".html")
    if not page.exists() or page.stat().st_mtime < notebook.stat().st_mtime:
        pytest.skip(f"no build of {notebook.name} newer than the notebook (make book)")
    book, deck = page.read_text(), decks[notebook].read_text()
    for in_book, in_deck in (
            (r'<span class="eqno">\((\d+)\)', r"\\tag\{(\d+)\}"),
            (r'<span class="caption-number">Fig\. (\d+)', r"<strong>Fig\. (\d+)\.</strong>"),
            (r'<span class="caption-number">Exercise (\d+)', r"<h3>Exercise (\d+)")):
        numbers = {int(n) for n in re.findall(in_deck, deck)}
        known = {int(n) for n in re.findall(in_book, book)}
        # a deck lacks what stands in a solution, and has nothing the page does not have
        assert numbers <= known, (in_deck, sorted(numbers), sorted(known))
        if known and not in_deck.startswith("<strong>"):  # a figure may open in a solution
            assert numbers and min(numbers) == min(known), (in_deck, sorted(numbers))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_deck_shows_no_book_plumbing_no_dead_link_and_short_code(decks, notebook):
    deck = decks[notebook]
    text = _deck_text(deck)
    assert "glue(" not in text and "myst_nb" not in text, deck.name
    targets = re.findall(r'<(?:a|link|script|img)\b[^>]*(?:href|src)="([^"#][^"]*)"',
                         deck.read_text())
    dead = [t for t in targets if not re.match(r"(https?:|mailto:|data:)", t)
            and not (deck.parent / t.split("?")[0]).exists()]
    assert not dead, f"{deck.name} links to {dead}"
    nb = build.deck_notebook(notebook)
    shown = [c.source for c in nb.cells if c.cell_type == "code"
             and not c.metadata.get("transient", {}).get("remove_source")]
    long = [s.split("\n")[0] for s in shown if len(s.split("\n")) > build.MAX_CODE]
    assert not long, f"{deck.name}: code slides of more than {build.MAX_CODE} lines: {long}"


def test_decks_and_the_offline_assets_are_in_the_built_folder(decks):
    assert all(deck.exists() for deck in decks.values())
    for asset in ("reveal.js/dist/reveal.js", "reveal.js/dist/reveal.css",
                  "reveal.js/dist/theme/white.css", "reveal.js/plugin/notes/notes.js",
                  "mathjax/tex-chtml.js", "index.html"):
        assert (OUT / asset).is_file(), asset
    index = (OUT / "index.html").read_text()
    assert all(deck.name in index for deck in decks.values())
    for deck in decks.values():
        page = deck.read_text()
        sources = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="([^"]+)"', page)
        assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)], sources
        assert page.count('<aside class="notes">') >= 5  # the chapter's prose, for the lecturer


# ---- in a real browser --------------------------------------------------------------------

PROBE = """<script>
window.addEventListener('load', function () {
  function report() {
    var images = Array.prototype.slice.call(document.images);
    var probe = document.createElement('div');
    probe.id = 'slides-probe';
    probe.setAttribute('data-math', document.querySelectorAll('mjx-container').length);
    probe.setAttribute('data-images', images.length);
    probe.setAttribute('data-decoded', images.filter(function (i) {
      return i.complete && i.naturalWidth > 0; }).length);
    var ready = typeof Reveal !== 'undefined' && Reveal.isReady();
    probe.setAttribute('data-slides', ready ? Reveal.getTotalSlides() : -1);
    // every slide shown in turn: one taller than the deck's height scrolls on the screen and
    // spills onto a second page in print
    var tall = [];
    if (ready) {
      var limit = Reveal.getConfig().height;
      Reveal.getSlides().forEach(function (slide) {
        var at = Reveal.getIndices(slide);
        Reveal.slide(at.h, at.v);
        if (slide.scrollHeight > limit + 1) {
          tall.push(at.h + '/' + (at.v || 0) + ':' + slide.scrollHeight);
        }
      });
      Reveal.slide(0, 0);
    }
    probe.setAttribute('data-tall', tall.join(' '));
    document.body.appendChild(probe);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, report);
  } else {
    report();
  }
});
</script>
"""


class _Rendered(HTMLParser):
    """The probe's numbers and the visible text (outside scripts and typeset math)."""

    HIDDEN = {"script", "style", "mjx-container"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.text = []
        self.probe = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "slides-probe":
            self.probe = {k[5:]: v if k == "data-tall" else int(v)
                          for k, v in attrs.items() if k.startswith("data-")}
        self.hidden += tag in self.HIDDEN

    def handle_endtag(self, tag):
        self.hidden -= tag in self.HIDDEN and self.hidden > 0

    def handle_data(self, data):
        if not self.hidden:
            self.text.append(data)


def open_deck(deck, chromium, edit=None):
    """Render a copy of `deck` (beside it, so its relative links hold) with the probe added."""
    page = deck.read_text()
    if edit is not None:
        edited = edit(page)
        assert edited != page, "the edit did not apply: the test would prove nothing"
        page = edited
    copy = deck.with_name(f"zz-probe-{deck.name}")
    copy.write_text(page.replace("</body>", PROBE + "</body>", 1))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            net_log = Path(tmp) / "net.json"
            done = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp}/profile", "--host-resolver-rules=MAP * ~NOTFOUND",
                 f"--log-net-log={net_log}", "--net-log-capture-mode=Default",
                 "--virtual-time-budget=15000", "--window-size=1280,900", "--dump-dom",
                 copy.as_uri()],
                capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=tmp))
            assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-500:]
            requests = _page_requests(net_log) if net_log.exists() else []
    finally:
        copy.unlink()
    rendered = _Rendered()
    rendered.feed(done.stdout)
    outside = [u for u in requests if re.match(r"https?:", u)]
    return rendered.probe, _plain(" ".join(rendered.text)), outside


@pytest.fixture(scope="session")
def rendered(decks, chromium):
    """Every deck rendered once, two Chromiums at a time (the CI machine has two cores)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {nb: pool.submit(open_deck, deck, chromium) for nb, deck in decks.items()}
        return {nb: future.result() for nb, future in futures.items()}


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_deck_works_offline(decks, rendered, notebook):
    deck = decks[notebook]
    probe, text, outside = rendered[notebook]
    assert probe, f"{deck.name}: the page did not finish loading"
    assert not outside, f"{deck.name} requested {outside}"
    assert probe["slides"] >= 15, f"{deck.name}: reveal.js shows {probe['slides']} slides"
    assert probe["math"] > 30, f"{deck.name}: {probe['math']} typeset equations"
    raw = [tex for tex in ("$$", "\\begin{", "\\mathbf{", "\\frac{") if tex in text]
    assert not raw, f"{deck.name}: raw TeX left in the text: {raw}"
    assert probe["images"] >= 1 and probe["decoded"] == probe["images"], probe
    # "h/v:height" of every slide taller than the deck (it would scroll, and print on two pages)
    assert not probe["tall"], f"{deck.name}: slides taller than the deck: {probe['tall']}"


@pytest.fixture(scope="session")
def chapter_1(decks):
    return decks[CHAPTERS[0]]


def test_check_fails_when_mathjax_comes_from_a_cdn(chapter_1, chromium):
    probe, text, outside = open_deck(chapter_1, chromium, lambda page: page.replace(
        'src="mathjax/tex-chtml.js"', f'src="{CDN_MATHJAX}"'))
    assert outside == [CDN_MATHJAX]
    assert probe["math"] == 0 and "$$" in text


def test_check_fails_when_a_figure_is_broken(chapter_1, chromium):
    probe, _, _ = open_deck(chapter_1, chromium, lambda page: page.replace(
        'src="data:image/png;base64,iVBORw0KGgo', 'src="data:image/png;base64,AAAA', 1))
    assert probe["images"] >= 1 and probe["decoded"] == probe["images"] - 1



def test_a_deck_prints_one_page_per_slide(decks, rendered, chromium):
    """`?print-pdf` is how a lecturer gets a handout: a page per slide, not the scrolling text,
    and no slide spilling onto a second page (chapter 4 had tables on pages of their own)."""
    chapter = next((p for p in CHAPTERS if p.name.startswith("ch04")), CHAPTERS[0])
    deck = decks[chapter]
    slides = rendered[chapter][0]["slides"]
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "deck.pdf"
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             f"--user-data-dir={tmp}/profile", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--virtual-time-budget=15000", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf}", deck.as_uri() + "?print-pdf"],
            capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=tmp))
        assert done.returncode == 0 and pdf.exists(), done.stderr[-500:]
        pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
        if shutil.which("pdftotext") is None:
            pytest.skip("pdftotext (poppler-utils, which .ci/run installs) reads the pages back")
        done = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                              text=True, check=True)
    # Chromium ends the PDF with one empty page after reveal.js's last one; every other page is
    # a slide, and a slide taller than the page would add a page of its own
    written = [page for page in done.stdout.split("\f") if page.strip()]
    assert slides >= 15 and len(written) == slides and pages <= slides + 1, (
        f"{len(written)} pages with text, {pages} in all, for {slides} slides")
