"""A self-contained HTML page listing the OpenAPI document (``/docs``): no script or
stylesheet from the internet, so it works offline."""

from __future__ import annotations

import html
import json
from typing import Any


def docs_page(doc: dict[str, Any]) -> str:
    """A readable listing of the operations and schemas; works offline, no JavaScript."""
    esc = html.escape
    rows: list[str] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", ()))
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><b>{esc(method.upper())}</b></td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op.get('summary', ''))}</td><td>{esc(params)}</td>"
                f"<td>{esc(codes)}</td></tr>"
            )
    schemas = "".join(
        f"<h3 id='{esc(name)}'>{esc(name)}</h3><pre>{esc(json.dumps(schema, indent=2))}</pre>"
        for name, schema in doc["components"]["schemas"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>runkit API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .6em;"
        "border-bottom:1px solid #ddd;text-align:left}pre{background:#f6f6f6;padding:1em}</style>"
        f"</head><body><h1>{esc(doc['info']['title'])}</h1>"
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>. Credentials: "
        "<code>Authorization: Bearer</code>, <code>X-API-Key</code> or cookie "
        "<code>vai_token</code>.</p><table><tr><th>method</th><th>path</th><th>summary</th>"
        f"<th>parameters</th><th>responses</th></tr>{''.join(rows)}</table>"
        f"<h2>Schemas</h2>{schemas}</body></html>"
    )
