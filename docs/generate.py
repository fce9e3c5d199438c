"""Regenerate the parts of docs/ drawn from code: ``python docs/generate.py``."""

from pathlib import Path

from runkit._states import render_docs

page = Path(__file__).with_name("state-machine.md")
page.write_text(render_docs(page.read_text(encoding="utf-8")), encoding="utf-8")
