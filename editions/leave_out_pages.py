"""Sphinx extension of an edition that leaves pages out (the student edition: the teaching page).

``leave_out_pages`` (a list of docnames, e.g. ``["book/teaching"]``) is read by editions/build.py,
which takes the pages out of the edition's table of contents and out of what Sphinx reads. A
reference to such a page from another one ({doc}`teaching` in the introduction) would then be an
"unknown document" warning; here it becomes the page's title as plain text, followed by "(in the
full book)", with no link.
"""

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def _title(app: Sphinx, docname: str) -> str:
    for suffix in (".md", ".ipynb", ".rst"):
        path = app.srcdir / f"{docname}{suffix}"
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return docname.rpartition("/")[2]


def _resolve_left_out(app: Sphinx, env: BuildEnvironment, node, contnode):
    if node.get("reftype") != "doc":
        return None
    left_out = set(app.config.leave_out_pages)
    target = node.get("reftarget", "")
    # A {doc} target is relative to the referring page's folder unless it starts with "/".
    folder = node.get("refdoc", "").rpartition("/")[0]
    docname = target.lstrip("/") if target.startswith("/") or not folder else f"{folder}/{target}"
    if docname not in left_out:
        return None
    return nodes.inline("", f"“{_title(app, docname)}” (in the full book)")


def setup(app: Sphinx) -> dict:
    app.add_config_value("leave_out_pages", [], "env")
    app.connect("missing-reference", _resolve_left_out)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
