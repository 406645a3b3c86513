"""Sphinx extension of the student edition: with ``hide_solutions``, no solution is written.

sphinx-exercise's ``hide_solutions`` drops a solution written as one ``{solution}`` directive, but
of a gated solution (``{solution-start}`` ... cells ... ``{solution-end}``, the form the chapters
use so that the solution's code runs under nbval) it drops only the start marker: the solution's
cells stay on the page and the build stops at the orphaned end marker ("unknown node type:
solution_end_node"; executablebooks/sphinx-exercise#89, open for sphinx-exercise 1.2.1).

This extension takes the switch over: when ``hide_solutions`` is on, it turns sphinx-exercise's
own switch off (so every gated solution is read and merged into one solution node, as in the
full book) and then removes every solution node, with its title, cells, figures and labels,
from the page before Sphinx records its labels. The exercises are untouched.
"""

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.transforms import SphinxTransform
from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node


def _take_over_switch(app: Sphinx, config: Config) -> None:
    config.student_edition = bool(config.hide_solutions)
    config.hide_solutions = False


class RemoveSolutions(SphinxTransform):
    """Remove every solution once sphinx-exercise has merged the gated ones (its priority 10)."""

    default_priority = 11

    def apply(self) -> None:
        if not self.config.student_edition:
            return
        document = self.document
        for node in list(document.findall(solution_node)):
            for inner in node.findall(nodes.Element):
                for node_id in inner["ids"]:
                    document.ids.pop(node_id, None)
                for name in inner["names"]:
                    document.nameids.pop(name, None)
                    document.nametypes.pop(name, None)
            node.parent.remove(node)
        leftovers = list(document.findall(solution_start_node))
        leftovers += list(document.findall(solution_end_node))
        if leftovers:
            raise RuntimeError(
                f"{self.env.docname}: {len(leftovers)} solution-start/-end marker(s) left after "
                "sphinx-exercise merged the gated solutions: check that each solution-start has "
                "its solution-end"
            )


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_exercise")
    app.add_config_value("student_edition", False, "env")
    # After sphinx-exercise's own config-inited handler (priority 500).
    app.connect("config-inited", _take_over_switch, priority=800)
    app.add_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
