"""Small HTML building blocks for a self-contained page: escaped text, tables, embedded images.

Every function returns a string of HTML. Text from files is always escaped; images are
embedded as base64 ``data:`` URIs so that the page opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

__all__ = ["esc", "fmt", "table", "mapping_table", "image", "not_available", "section", "page"]

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def esc(value) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A value for a table cell.

    Text (e.g. a CSV cell) is shown exactly as written; floats (from JSON) with 6 significant
    digits; lists joined with commas; None as a dash.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def table(rows: list[dict], columns: list[str] | None = None, caption: str | None = None) -> str:
    """An HTML table of ``rows`` (dicts); ``columns`` defaults to the keys of the first row."""
    if not rows:
        return not_available("the table is empty")
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def mapping_table(data: dict, caption: str | None = None) -> str:
    """A two-column table of a (possibly nested) mapping; nested mappings become nested tables."""
    if not data:
        return not_available("nothing recorded")
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            cell = mapping_table(value) if value else "-"
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            cell = table(value)
        else:
            cell = esc(fmt(value))
        rows.append(f"<tr><th>{esc(key)}</th><td>{cell}</td></tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="kv">{cap}<tbody>{"".join(rows)}</tbody></table>'


def image(path: Path, alt: str) -> str:
    """The image file at ``path`` embedded as a base64 data URI (a note when it is missing)."""
    path = Path(path)
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return not_available(f"{path.parent.name}/{path.name} was not written")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(alt)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{esc(alt)}</figcaption></figure>")


def not_available(reason: str) -> str:
    return f'<p class="na">Not available: {esc(reason)}.</p>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:72em;padding:0 1em;color:#111;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}table.kv>tbody>tr>th{background:#fafafa;font-weight:600}
td{font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:600;padding:.3em 0}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.85em;color:#444}
.na{color:#8a4b00;font-style:italic}.meta{color:#555}nav a{margin-right:1em}
.warn{color:#8a4b00}
.qcfail,.qcwarn{color:#b00000;font-weight:bold}
"""


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole page: a title, a table of contents and the ``(anchor, title, body)`` sections."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"meta\">{esc(subtitle)}</p><nav>{nav}</nav>{body}"
        "</body></html>\n"
    )
