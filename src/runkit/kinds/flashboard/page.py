"""The dashboard as one self-contained HTML file: Vega, Vega-Lite and Vega-Embed inlined
(the offline bundle of ``vl-convert-python``, BSD-3-Clause, like the libraries it packs),
the specs as JSON in a ``<script type="application/json">``, and a few lines that draw each
one. Nothing is fetched: the page's Content-Security-Policy allows no network at all.

Escaping: titles go through :func:`html.escape`; the specs' JSON has ``<``, ``>``, ``&`` and
the JavaScript line separators written as ``\\uXXXX`` escapes, so no value in it (a title, a
column name, a cell) can close the script element or open a comment.
"""

from __future__ import annotations

import functools
import html
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

#: No fetch, XHR, image or font from anywhere; Vega compiles its expressions with
#: ``Function`` (hence ``'unsafe-eval'``); the page's own script and styles are inline.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_JSON_ESCAPES["\u2029"] = "\\u2029"

STYLE = """
:root { color-scheme: light; --ink: #111827; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: var(--ink);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 20px 28px 4px; }
h1 { margin: 0; font-size: 22px; font-weight: 650; }
header p { margin: 4px 0 0; color: var(--muted); font-size: 12px; }
main { display: grid; gap: 16px; padding: 16px 28px 28px; align-items: start;
  grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; min-width: 0; overflow-x: auto; }
figure.wide { grid-column: 1 / -1; }
.chart { width: 100%; }
.failed { color: #b91c1c; }
"""

SCRIPT = """
(function () {
  "use strict";
  var specs = JSON.parse(document.getElementById("runkit-specs").textContent);
  var drawn = specs.map(function (spec, i) {
    var el = document.getElementById("chart-" + i);
    return vegaEmbed(el, spec, { actions: false, renderer: "svg" }).then(
      function () { el.setAttribute("data-rendered", "true"); },
      function (error) {
        el.setAttribute("data-rendered", "failed");
        el.className += " failed";
        el.textContent = "This chart could not be drawn: " + error;
        console.error(error);
      }
    );
  });
  Promise.all(drawn).then(function () { document.body.setAttribute("data-ready", "true"); });
})();
"""


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


_bundle_lock = threading.Lock()
#: The bundle's own snippet: the three libraries as globals, for the page's script.
GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


@functools.cache
def _bundle() -> str:
    import vl_convert

    script: str = vl_convert.javascript_bundle(GLOBALS)
    if "</script" in script.lower() or "<!--" in script:  # cannot be inlined as it is
        raise RuntimeError("vl-convert's JavaScript bundle cannot be inlined in a script element")
    return script


def javascript_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed in one offline script (``vegaEmbed`` a global). The
    first call in a process builds it (about 3 s); later ones return it at once. Blocking:
    call it in a worker thread."""
    with _bundle_lock:
        return _bundle()


def library_versions() -> dict[str, str]:
    import vl_convert

    return {
        "vega": vl_convert.get_vega_version(),
        "vega-lite": vl_convert.get_vegalite_versions()[-1],
        "vega-embed": vl_convert.get_vega_embed_version(),
    }


def render(
    title: str, charts: Sequence[Mapping[str, Any]], generated: datetime, bundle: str
) -> str:
    """The page for ``charts`` (``{"title", "type", "spec"}`` each), with the script
    ``bundle`` (:func:`javascript_bundle`) inlined."""
    figures = "\n".join(
        f'<figure class="{"wide" if chart["type"] == "table" else "plot"}" '
        f'aria-label="{html.escape(str(chart["title"]))}">'
        f'<div class="chart" id="chart-{i}" data-type="{html.escape(str(chart["type"]))}"></div>'
        "</figure>"
        for i, chart in enumerate(charts)
    )
    count = f"{len(charts)} chart{'' if len(charts) == 1 else 's'}"
    stamp = generated.strftime("%Y-%m-%d %H:%M UTC")
    specs = script_json([chart["spec"] for chart in charts])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="runkit create_flashboard">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
<script>{bundle}</script>
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>{count} · generated {stamp}</p></header>
<main>
{figures}
</main>
<script type="application/json" id="runkit-specs">{specs}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
