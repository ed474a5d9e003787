"""Self-contained HTML: figures as base64 PNG, reportlets as inline SVG, no external files.

A report must survive being mailed or moved out of the output folder, so nothing in it
points to a local file: every image is inlined and every link is an in-page anchor or
an external web address.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bidsapp import __version__
from bidsapp.io import write_text

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #444; }
h2 { margin-top: 2em; border-bottom: 1px solid #999; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
img, svg { max-width: 100%; height: auto; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; }
figcaption { font-size: 0.9em; color: #444; }
h3.run { background: #eef3f8; padding: 0.2em 0.5em; border-left: 4px solid #4a78a8; }
.verdict { background: #e8f4ea; border-left: 4px solid #2e7d32; padding: 0.5em 0.8em;
           font-size: 1.05em; }
.verdict.null { background: #f3f3f3; border-left-color: #666; }
ul.toc { columns: 2; font-size: 0.9em; }
ul.files { font-family: monospace; font-size: 0.85em; }
"""

_XML_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>", re.IGNORECASE)
_EXTERNAL_REF = re.compile(r"""(?:xlink:)?href\s*=\s*["'](?!#|data:|https?://)([^"']+)["']""")


def escape(value: object) -> str:
    """Return ``value`` as text safe inside HTML."""
    return html.escape(str(value), quote=True)


def figure_to_data_uri(fig: Figure, dpi: int = 90, close: bool = True) -> str:
    """Render a matplotlib figure as a ``data:image/png;base64,...`` URI.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    dpi : int, optional
        Resolution; 90 keeps a report with a dozen figures at a few megabytes.
    close : bool, optional
        Close the figure afterwards, releasing its memory.

    Returns
    -------
    str
        The data URI.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(fig: Figure, caption: str, alt: str | None = None) -> str:
    """Return a ``<figure>`` with the figure inlined and a caption."""
    uri = figure_to_data_uri(fig)
    return (f'<figure><img src="{uri}" alt="{escape(alt or caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def inline_svg(path: str | Path) -> str:
    """Return an SVG file's markup for inlining, or a warning if it cannot be inlined.

    The XML prolog and doctype are removed, which HTML does not accept inside a
    document.  An SVG that links to a local file (``href`` other than ``#...``, a
    ``data:`` URI or a web address) would break once the report moves, so it is embedded
    as a base64 image instead, where such links are simply not followed.

    Parameters
    ----------
    path : str or Path
        An SVG file, e.g. a preprocessing reportlet.

    Returns
    -------
    str
        HTML: the ``<svg>`` element, an ``<img>`` with a data URI, or a warning paragraph
        when the file is missing or not SVG.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f'<p class="warning">Reportlet {escape(path.name)} could not be read ({exc}).</p>'
    text = _XML_PROLOG.sub("", text).strip()
    if "<svg" not in text:
        return f'<p class="warning">Reportlet {escape(path.name)} is not an SVG file.</p>'
    if _EXTERNAL_REF.search(text):
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        return f'<img src="data:image/svg+xml;base64,{encoded}" alt="{escape(path.name)}">'
    return text


def table_html(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """Return an HTML table of escaped cells."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def mapping_table(values: Mapping[str, object]) -> str:
    """Return a two-column table of a mapping's keys and values."""
    return table_html(values.items(), header=("parameter", "value"))


def warnings_html(warnings: Sequence[str]) -> str:
    """Return the warnings as highlighted paragraphs, or a note that there are none."""
    if not warnings:
        return '<p class="note">No warnings.</p>'
    return "\n".join(f'<p class="warning">{escape(w)}</p>' for w in warnings)


def page(title: str, body: Sequence[str]) -> str:
    """Return a complete HTML document with the report style."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="note">Generated by bidsapp {escape(__version__)}.</p>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_page(path: str | Path, title: str, body: Sequence[str]) -> Path:
    """Atomically write a complete report page and return its path."""
    return write_text(path, page(title, body))
