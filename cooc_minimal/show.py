"""Display helpers for the book's notebooks: real HTML tables and the library's own source.

The book is built with myst-nb, which shows Markdown *outputs* as plain text, so a
table printed with ``display(Markdown(...))`` arrives as raw pipes. These helpers
display HTML instead, with inline styles only, so they need no extra CSS and render the
same in Jupyter, in the built book and offline.

- ``show_table(rows, columns=None, caption=None, floatfmt="{:.3g}")``
- ``show_source(obj)``: the highlighted source of a function, class or method, read
  from the file at call time (so the chapter shows the code as it is now).
- ``show_figure(fig)``: a matplotlib ``Figure`` (as ``cooc_minimal.viz`` returns them, not
  tied to pyplot) displayed as a PNG, whatever the notebook's matplotlib backend;
- ``show_text(text)``: one line of prose made by code, with ``$...$`` inline math,
  ``*italic*``, ``**bold**`` and ```code```, as HTML whose math MathJax typesets (use it
  instead of ``display(Markdown(...))``, whose ``$`` myst-nb leaves as raw text).
"""

from __future__ import annotations

import html
import inspect
import numbers
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["show_figure", "show_source", "show_table", "show_text", "source_html", "table_html",
           "text_html"]

_TABLE_STYLE = "border-collapse:collapse;margin:0.5em 0;font-size:0.9em"
_CELL_STYLE = "border:1px solid #ccc;padding:0.2em 0.6em"
_HEAD_STYLE = _CELL_STYLE + ";background:#f3f3f3;font-weight:bold;text-align:center"
# Figures line up on the right and stay on one line (a mean ± std split after its "±" reads
# as two numbers); words read from the left and stay whole (book/_static/cooc.css), except a
# long name, path or hash, which may break anywhere or it would widen its table past the page.
_FIGURE_STYLE = ";text-align:right;white-space:nowrap"
_WORDS_STYLE = ";text-align:left"
_LONG_WORD_STYLE = _WORDS_STYLE + ";overflow-wrap:anywhere"
_LONG_TOKEN = 12
# a figure written as text: "84.6 ± 0.3", "0.913 ± 0.002", "91.8%", "-1.5e-3"
_FIGURE_TEXT = re.compile(r"[-+]?[\d.,]+(e[-+]?\d+)?%?( ± [\d.,]+(e[-+]?\d+)?%?)?")
_CAPTION_STYLE = "font-weight:bold;margin:0.6em 0 0.2em 0"


def _format_cell(value: Any, floatfmt: str) -> str:
    """One cell as escaped text: floats (and 0-d tensors/arrays) through `floatfmt`."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = floatfmt.format(float(value))
    else:
        text = str(value)
    return html.escape(text)


def _is_figure(value: Any) -> bool:
    """A real number, or text that is one (possibly with a ``± spread`` and ``%``)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, str):
        return any(c.isdigit() for c in value) and bool(_FIGURE_TEXT.fullmatch(value.strip()))
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _cell_html(value: Any, floatfmt: str) -> str:
    """One ``<td>``: its text (:func:`_format_cell`) and the style its kind asks for."""
    text = _format_cell(value, floatfmt)
    if _is_figure(value):
        style = _FIGURE_STYLE
    elif any(len(token) > _LONG_TOKEN for token in html.unescape(text).split()):
        style = _LONG_WORD_STYLE
    else:
        style = _WORDS_STYLE
    return f'<td style="{_CELL_STYLE}{style}">{text}</td>'


def table_html(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Sequence[str] | None = None,
    caption: str | None = None,
    floatfmt: str = "{:.3g}",
) -> str:
    """HTML of a table; rows are dicts (columns = their keys, in order) or sequences.

    For dict rows, `columns` picks and orders the keys (default: the keys in order of first
    appearance). For sequence rows, `columns` gives the header (default: no header row).
    Real numbers are formatted with `floatfmt`; every cell is HTML-escaped.
    """
    rows = list(rows)
    if not isinstance(floatfmt, str) or "{" not in floatfmt:
        raise ValueError(f"floatfmt must be a format string such as '{{:.3g}}', got {floatfmt!r}.")
    if rows and all(isinstance(r, Mapping) for r in rows):
        if columns is None:
            columns = list(dict.fromkeys(k for r in rows for k in r))
        body = [[r.get(c, "") for c in columns] for r in rows]
    elif all(isinstance(r, Sequence) and not isinstance(r, str) for r in rows):
        body = [list(r) for r in rows]
        if columns is not None and any(len(r) != len(columns) for r in body):
            raise ValueError(
                f"each row must have {len(columns)} cells, one per column; "
                f"got rows of lengths {sorted({len(r) for r in body})}."
            )
    else:
        raise ValueError(
            "rows must be a list of dicts or a list of lists/tuples, not a mix or strings."
        )
    parts = ['<div class="cooc-table">']
    if caption:  # a paragraph, not <caption>: a caption is as narrow as its table
        parts.append(f'<p class="cooc-caption" style="{_CAPTION_STYLE}">'
                     f'{html.escape(caption)}</p>')
    parts.append(f'<table style="{_TABLE_STYLE}">')
    if columns is not None:
        heads = "".join(f'<th style="{_HEAD_STYLE}">{html.escape(str(c))}</th>' for c in columns)
        parts.append(f"<thead><tr>{heads}</tr></thead>")
    parts.append("<tbody>")
    for r in body:
        parts.append(f"<tr>{''.join(_cell_html(v, floatfmt) for v in r)}</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def show_table(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Sequence[str] | None = None,
    caption: str | None = None,
    floatfmt: str = "{:.3g}",
) -> None:
    """Display `rows` as an HTML table in a notebook (see `table_html`); returns None."""
    from IPython.display import HTML, display

    display(HTML(table_html(rows, columns=columns, caption=caption, floatfmt=floatfmt)))


def _qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or inspect.getmodule(obj).__name__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}.{name}"


def source_html(obj: Any) -> str:
    """HTML of `obj`'s source (function, class or method), highlighted with inline styles.

    The source is read from its file now (`inspect.getsource` after clearing the line
    cache), so an edit to the library shows up on the next call.
    """
    import linecache

    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    target = inspect.unwrap(obj.__func__ if inspect.ismethod(obj) else obj)
    if isinstance(target, property):
        target = target.fget
    try:
        filename = inspect.getsourcefile(target)
        if filename:
            linecache.checkcache(filename)
        source = inspect.getsource(target)
    except (TypeError, OSError):
        raise ValueError(
            f"show_source needs a Python function, class or method defined in a file; "
            f"{obj!r} has no source to show."
        ) from None
    source = textwrap.dedent(source)
    formatter = HtmlFormatter(noclasses=True, nowrap=False, style="default")
    code = highlight(source, PythonLexer(), formatter)
    caption = html.escape(_qualified_name(target))
    return (
        '<div class="cooc-source" style="margin:0.5em 0">'
        f'<div style="font-size:0.85em;color:#555;font-family:monospace">source: {caption}</div>'
        f'<div style="overflow-x:auto;font-size:0.85em">{code}</div></div>'
    )


def show_source(obj: Any) -> None:
    """Display the highlighted source of a library function, class or method; returns None."""
    from IPython.display import HTML, display

    display(HTML(source_html(obj)))


_INLINE_MATH = re.compile(r"\$([^$\n]+)\$")
_MARKUP = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"\*([^*]+)\*"), r"<em>\1</em>"),
)


def text_html(text: str) -> str:
    """HTML of one paragraph: ``$...$`` becomes an inline math element, the rest is escaped.

    Inline math is written as Sphinx writes it, ``<span class="math">\\(...\\)</span>``,
    which MathJax typesets in the built book and Jupyter typesets in a notebook.
    ``**bold**``, ``*italic*`` and ```code``` work outside the math. A lone ``$`` raises.
    """
    if not isinstance(text, str):
        raise ValueError(f"show_text takes a string, got a {type(text).__name__}.")
    pieces, last = [], 0
    for match in _INLINE_MATH.finditer(text):
        pieces.append(_markup(text[last:match.start()]))
        pieces.append('<span class="math notranslate nohighlight">\\('
                      f"{html.escape(match.group(1))}\\)</span>")
        last = match.end()
    rest = text[last:]
    if "$" in rest:
        raise ValueError(f"text has an unpaired '$' in {rest!r}: close the math with '$', "
                         f"or write 'dollars'.")
    pieces.append(_markup(rest))
    return f'<p class="cooc-text">{"".join(pieces)}</p>'


def _markup(plain: str) -> str:
    escaped = html.escape(plain)
    for pattern, replacement in _MARKUP:
        escaped = pattern.sub(replacement, escaped)
    return escaped


def show_text(text: str) -> None:
    """Display one paragraph with ``$...$`` math as HTML (see `text_html`); returns None."""
    from IPython.display import HTML, display

    display(HTML(text_html(text)))


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib figure, cropped to its drawn content."""
    import io

    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise ValueError(f"show_figure takes a matplotlib Figure, got a {type(fig).__name__}.")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def show_figure(fig: Any, dpi: int = 100) -> None:
    """Display a matplotlib ``Figure`` as a PNG image; returns None.

    Works for figures made without pyplot (``matplotlib.figure.Figure(...)``, as the
    functions of ``cooc_minimal.viz`` return them), which a notebook would otherwise print
    as ``<Figure size ... with 1 Axes>``.
    """
    from IPython.display import Image, display

    display(Image(data=figure_png(fig, dpi), format="png"))
