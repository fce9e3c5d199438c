"""Regenerate the parts of docs/ drawn from code: ``python docs/generate.py``.

- state-machine.md: the transition table and diagram, from ``runkit.domain.states``;
- architecture.md: the wings and their imports, from the source (``architecture_graph``);
- http-reference.md: the HTTP reference, from the OpenAPI document of a server with
  runkit's default kinds (the environment does not change it: no plugins, no test kinds).
"""

from pathlib import Path

import architecture_graph

from runkit.domain.states import render_docs
from runkit_contrib._reference import reference_document, render_reference

docs = Path(__file__).parent

page = docs / "architecture.md"
page.write_text(architecture_graph.render(page.read_text(encoding="utf-8")), encoding="utf-8")

page = docs / "state-machine.md"
page.write_text(render_docs(page.read_text(encoding="utf-8")), encoding="utf-8")

(docs / "http-reference.md").write_text(render_reference(reference_document()), encoding="utf-8")
