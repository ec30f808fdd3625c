"""The API's docs page at /docs, rendered on the server from the OpenAPI schema: no script,
no CDN (the server may well have no internet access), readable as is."""

from __future__ import annotations

import html
import json
from typing import Any


def docs_page(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(str(info.get('title', 'API')))} API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}"
        "pre{padding:.6rem;overflow:auto}h2{margin-top:2rem;border-top:1px solid #ddd;"
        "padding-top:1rem}.m{font-weight:bold;text-transform:uppercase}</style></head><body>",
        f"<h1>{html.escape(str(info.get('title', 'API')))} HTTP API</h1>",
        f"<p>{html.escape(str(info.get('description', '')))}</p>",
        "<p>The machine-readable schema: <a href='/openapi.json'>/openapi.json</a>. "
        "With tokens configured, send <code>Authorization: Bearer TOKEN</code>. Send request "
        "bodies as <code>Content-Type: application/json</code>; requests from web pages of "
        "other origins, and Host names the server does not serve, are refused.</p>",
    ]
    for path, methods in sorted(schema.get("paths", {}).items()):
        for method, op in methods.items():
            if not isinstance(op, dict):
                continue
            title = f"<span class='m'>{html.escape(method)}</span> {html.escape(path)}"
            parts.append(f"<h2>{title}</h2>")
            if op.get("summary"):
                parts.append(f"<p><b>{html.escape(op['summary'])}</b></p>")
            if op.get("description"):
                parts.append(f"<p>{html.escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<p>Parameters:</p><ul>")
                for p in params:
                    where, name = html.escape(p.get("in", "")), html.escape(p.get("name", ""))
                    parts.append(f"<li><code>{name}</code> ({where})</li>")
                parts.append("</ul>")
            body = op.get("requestBody")
            if body:
                parts.append("<p>Request body:</p>" + _pre(body))
            for status, response in sorted(op.get("responses", {}).items()):
                parts.append(f"<p>Response {html.escape(status)}:</p>" + _pre(response))
    comps = schema.get("components", {}).get("schemas", {})
    if comps:
        parts.append("<h2>Schemas</h2>")
        for name, body in sorted(comps.items()):
            parts.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3>" + _pre(body))
    parts.append("</body></html>")
    return "\n".join(parts)


def _pre(value: Any) -> str:
    return f"<pre>{html.escape(json.dumps(value, indent=2, sort_keys=True))}</pre>"
