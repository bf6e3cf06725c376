"""Small HTML building blocks for a self-contained, printable page.

Every function returns a string of HTML. Text from files is always escaped (:class:`Raw` marks
HTML built here); values pass through :func:`pipeline.report.numbers.plain_text`, so no Python or
JSON literal reaches the page. Images are embedded as base64 ``data:`` URIs so that the page
opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .numbers import plain_text, typographic
from .style import STYLE

__all__ = ["Raw", "esc", "cell", "table", "kv_table", "image", "not_available", "note", "section", "page"]

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


class Raw(str):
    """HTML built by this package: inserted as is (everything else is escaped)."""


def esc(value) -> str:
    """``value`` as escaped HTML text (text with typographic quotes, values through :func:`plain_text`)."""
    if isinstance(value, Raw):
        return value
    return html.escape(typographic(value) if isinstance(value, str) else plain_text(value), quote=True)


def cell(value) -> str:
    """The HTML of one table cell's content: :class:`Raw` as is, text escaped with typographic quotes."""
    if isinstance(value, Raw):
        return value
    return html.escape(plain_text(value), quote=True)


def table(rows: list[dict], columns=None, caption: str | None = None, css: str = "",
          numeric: tuple = ()) -> str:
    """An HTML table of ``rows`` (dicts).

    Parameters
    ----------
    rows : list of dict
        One dict per row; a missing key is shown as a dash.
    columns : list of str, optional
        Keys and headers, in order (default: the keys of the first row).
    caption : str, optional
        Caption above the table.
    css : str
        Extra class names of the table.
    numeric : tuple of str
        Columns aligned right (numbers).
    """
    if not rows:
        return not_available("the table is empty")
    columns = list(columns or rows[0].keys())
    num = ' class="num"'
    head = "".join(f"<th{num if c in numeric else ''}>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{num if c in numeric else ''}>{cell(row.get(c))}</td>" for c in columns)
        + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    cls = f' class="{esc(css)}"' if css else ""
    return f"<table{cls}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(pairs, caption: str | None = None) -> str:
    """A two-column table of ``(label, value)`` pairs; values through :func:`cell`."""
    pairs = [(k, v) for k, v in pairs if v is not None]
    if not pairs:
        return not_available("nothing recorded")
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{cell(v)}</td></tr>" for k, v in pairs)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="kv">{cap}<tbody>{rows}</tbody></table>'


def image(path: Path, alt: str, css: str = "") -> str:
    """The image file at ``path`` embedded as a base64 data URI (a note when it is missing)."""
    path = Path(path)
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return not_available(f"{path.parent.name}/{path.name} was not written")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cls = f' class="{esc(css)}"' if css else ""
    return (f'<figure{cls}><img alt="{esc(alt)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{esc(alt)}</figcaption></figure>")


def not_available(reason: str) -> str:
    """A note that a part is missing, and why."""
    return f'<p class="na">Not available: {esc(reason)}.</p>'


def note(text: str) -> str:
    """A small explanatory paragraph."""
    return f'<p class="note">{esc(text)}</p>'


def section(anchor: str, title: str, body: str, css: str = "") -> str:
    """One ``<section>`` with its heading."""
    cls = f' class="{esc(css)}"' if css else ""
    return f'<section id="{esc(anchor)}"{cls}><h2>{esc(title)}</h2>{body}</section>'


def _css_string(text: str) -> str:
    """``text`` as a CSS string literal's content (quotes, backslashes and angle brackets dropped)."""
    return "".join(ch for ch in str(text) if ch not in '"\\<>\n\r')


def page(title: str, header: str, sections: list, footer: str = "", print_label: str = "") -> str:
    """The whole page: title, header block, table of contents, the sections, the footer.

    Parameters
    ----------
    title : str
        Document title (also the ``<title>``).
    header : str
        HTML under the title (patient line, build time).
    sections : list of (anchor, title, html, css)
        The sections in order; ``css`` may be empty.
    footer : str
        HTML after the sections (the signature block).
    print_label : str
        Text at the bottom left of every printed page (patient, software version).
    """
    nav = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _, _ in sections)
    label = (f'@media print{{@page{{@bottom-left{{content:"{_css_string(print_label)}"}}}}}}'
             if print_label else "")
    body = "".join(section(a, t, b, c) for a, t, b, c in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{STYLE}{label}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{header}</header><nav>{nav}</nav>{body}{footer}"
        "</body></html>\n"
    )
