"""How the notebooks show what they computed: tables a reader can take in, and the paper's numbers beside ours.

* :func:`readable`: a table for reading, not for further computing: only the columns a reader needs, each number
  with sensible decimals (integers with thousands separators), a mean and its 95% interval in one cell
  (``"3.412 [3.398, 3.426]"``), units in the headers. The complete table stays in its CSV.
* :func:`csv_link`: the Markdown link to that CSV, relative to the notebook (the Recorder writes ``<name>.csv``
  beside the executed notebook; ``book/build.py`` copies the file into the book's HTML and points the link there).
* :func:`show`: both at once in a notebook's display cell, the table without its row index.
* :func:`paper_line`, :func:`beside_paper`, :func:`scale_words`: the paper's number on our figure or as a row of
  our table, marked as the paper's, with the difference in scale (data, parameters, images seen) said in words.
* :func:`image_explorer` (with :func:`image_pixels`, :func:`image_trace`, :func:`add_slider`): the book's
  interactive figures, a plotly slider over recorded images, written into the page as HTML.

Display only: nothing here changes what a study computes or writes. No torch.
"""
from __future__ import annotations

import math
import re
from numbers import Integral, Real

import pandas as pd

MISSING = "–"
PAPER_STYLE = {"color": "black", "linestyle": ":", "linewidth": 1.2}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, Real) and math.isnan(value)) or value is pd.NA


def number(value, decimals: int = 3) -> str:
    """One value as text: integers (and whole floats of integer columns) with thousands separators, other
    numbers with ``decimals`` decimals, missing values as a dash, anything else as it is."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{value:,}"
    if isinstance(value, Real):
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:,.{decimals}f}"
    return str(value)


def interval(mean, low, high, decimals: int = 3) -> str:
    """``"mean [low, high]"``: a mean and its interval in one cell (the mean alone where the interval is missing)."""
    if _is_missing(mean):
        return MISSING
    if _is_missing(low) or _is_missing(high):
        return number(mean, decimals)
    return f"{number(mean, decimals)} [{number(low, decimals)}, {number(high, decimals)}]"


def percentage(fraction, decimals: int = 1) -> str:
    """A fraction as a percentage: ``decimals`` decimals from 1% up, two significant digits below (0.0075%)."""
    if _is_missing(fraction):
        return MISSING
    value = 100 * fraction
    return f"{value:.{decimals}f}%" if abs(value) >= 1 or value == 0 else f"{value:.2g}%"


def _decimals_of(decimals, column: str) -> int:
    return decimals.get(column, 3) if isinstance(decimals, dict) else decimals


def _integer_column(series: pd.Series) -> bool:
    """Integers, or floats that are all whole (counts that a missing value or a join turned into floats)."""
    values = series.dropna()
    return (pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)) or (
        pd.api.types.is_float_dtype(series) and len(values) > 0 and bool((values == values.round()).all())
        and bool(values.abs().max() < 2 ** 53))


def readable(df: pd.DataFrame, columns=None, intervals=None, decimals=3, units=None, names=None,
             percent=()) -> pd.DataFrame:
    """A copy of ``df`` for reading, every cell text.

    ``intervals``: ``{column: (low_column, high_column)}``: the column becomes ``"mean [low, high]"`` and the two
    bound columns are dropped. ``columns``: the columns to keep, in this order (default: all that are left).
    ``decimals``: one number for every column, or ``{column: decimals}`` (3 for the others); integer columns (and
    float columns whose values are all whole, unless named in ``decimals``) get thousands separators instead.
    ``units``: ``{column: unit}``, shown in the header as ``"column (unit)"``. ``names``: ``{column: header}``.
    ``percent``: columns holding fractions, shown as percentages (:func:`percentage`: ``0.0123`` -> ``"1.2%"``
    with ``decimals`` - 2 decimals, at least 1; ``0.000075`` -> ``"0.0075%"``).
    """
    intervals, units, names = dict(intervals or {}), dict(units or {}), dict(names or {})
    if any(n is not None for n in df.index.names):       # a grouped or pivoted table: its keys become columns
        df = df.reset_index()
    missing = [c for c in list(intervals) + [c for pair in intervals.values() for c in pair] if c not in df.columns]
    if missing:
        raise KeyError(f"readable(): no column {missing} in the table (it has {list(df.columns)})")
    bounds = {c for pair in intervals.values() for c in pair}
    keep = list(columns) if columns is not None else [c for c in df.columns if c not in bounds]
    absent = [c for c in keep if c not in df.columns]
    if absent:
        raise KeyError(f"readable(): no column {absent} in the table (it has {list(df.columns)})")
    out = {}
    for column in keep:
        d = _decimals_of(decimals, column)
        if column in percent:
            text = [percentage(v, max(d - 2, 1)) for v in df[column]]
        elif column in intervals:
            low, high = intervals[column]
            text = [interval(m, lo, hi, d) for m, lo, hi in zip(df[column], df[low], df[high])]
        elif _integer_column(df[column]) and not (isinstance(decimals, dict) and column in decimals):
            text = [number(int(v) if not _is_missing(v) else v, d) for v in df[column]]
        else:
            text = [number(v, d) for v in df[column]]
        header = names.get(column, column.replace("_", " "))
        if column in intervals:
            header += " [95% CI]"
        if column in units:
            header += f" ({units[column]})"
        out[header] = text
    return pd.DataFrame(out, index=range(len(df)))


def csv_link(name: str, what: str = "the full table, every column and row") -> str:
    """Markdown linking ``<name>.csv`` beside the notebook (its results folder; the book's page points the link
    at its copy of the file): ``"CSV: [name.csv](name.csv) (what)."``."""
    file = name if name.endswith(".csv") else f"{name}.csv"
    if "/" in file or "\\" in file:
        raise ValueError(f"csv_link({name!r}): a table's name, not a path (the CSV lies beside the notebook)")
    return f"CSV: [{file}]({file}) ({what})."


NUMERIC_TEXT = re.compile(r"^[-−–+\d.,\[\] %∞e]*$")


def styled(table: pd.DataFrame):
    """``table`` as a pandas Styler without its row index (the rows are the observations, not numbers), its
    columns of numbers (a mean and its interval among them) kept on one line each, its words free to wrap."""
    numeric = [c for c in table.columns if all(NUMERIC_TEXT.match(str(v)) for v in table[c])]
    style = table.style.hide(axis="index").set_table_attributes('class="readable"')
    return style.set_properties(subset=numeric, **{"white-space": "nowrap", "text-align": "right"}) if numeric \
        else style


def show(df: pd.DataFrame, csv: str | None = None, **readable_options) -> None:
    """Display :func:`readable` of ``df`` without its index and, when ``csv`` names the recorded table, the link
    to the complete CSV below it."""
    from IPython.display import Markdown, display
    display(styled(readable(df, **readable_options)))
    if csv:
        display(Markdown(csv_link(csv)))


# ------------------------------------------------------------------------------------------- the paper's numbers
def scale_words(ours: dict, paper: dict) -> str:
    """What differs in scale, as one sentence: each of ``data``, ``parameters``, ``images_seen`` that ``ours`` and
    ``paper`` give, ours first (numbers with thousands separators, and our share of the paper's where both are
    numbers)."""
    words = {"data": "data", "parameters": "parameters", "images_seen": "images seen in training"}
    parts = []
    for key, word in words.items():
        if key not in ours or key not in paper:
            continue
        a, b = ours[key], paper[key]
        if isinstance(a, Real) and isinstance(b, Real) and not isinstance(a, bool) and b:
            parts.append(f"{word} {number(int(a))} against {number(int(b))} ({a / b:.2%} of the paper's)")
        else:
            parts.append(f"{word} {a} against {b}")
    return ("Ours against the paper's: " + "; ".join(parts) + ".") if parts else ""


def paper_line(fig, value: float, label: str, axes=None) -> None:
    """Mark the paper's ``value`` on each of ``axes`` (default: every axes of ``fig``) as a dotted horizontal line
    labelled ``"paper: <label>"`` in the legend."""
    for ax in (axes if axes is not None else fig.axes):
        ax.axhline(value, label=f"paper: {label}", **PAPER_STYLE)
        ax.legend(fontsize="small")


def beside_paper(ours: pd.DataFrame, paper: pd.DataFrame, label: str = "model") -> pd.DataFrame:
    """Our rows, then the paper's rows for the same quantity, with a ``source`` column saying whose each row is
    (``"ours"``, or ``"ours: <its source>"`` where ``ours`` has a ``source`` column; the paper's words from
    ``paper["source"]`` prefixed with ``"paper: "``). Both tables keep their own columns; a column one of them
    lacks is left empty."""
    mine = ours.assign(source=[f"ours: {s}" for s in ours["source"]] if "source" in ours else "ours")
    theirs = paper.assign(source=[f"paper: {s}" for s in (paper["source"] if "source" in paper
                                                           else ["published"] * len(paper))])
    both = pd.concat([mine, theirs], ignore_index=True)
    first = [label, "source"] if label in both else ["source"]
    return both[first + [c for c in both.columns if c not in first]]


# ------------------------------------------------------------------------------------------ interactive figures
# The book's explorers (the temperature's, the interpolation's): a slider over recorded images, drawn by plotly
# from pixels written into the page, so the HTML needs no server (book/build.py loads plotly's script offline).


def image_pixels(path) -> list:
    """A recorded image's pixels (0-255), top row first: rows of grey values, or of [r, g, b] where the image has
    colour."""
    from PIL import Image
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        bands = rgb.split()
        grey = all(band.tobytes() == bands[0].tobytes() for band in bands[1:])
        return pixel_rows(rgb.convert("L").tobytes() if grey else rgb.tobytes(), rgb.size, 1 if grey else 3)


def pixel_rows(data: bytes, size: tuple[int, int], channels: int) -> list:
    """Raw pixels (row-major, ``channels`` per pixel) of an image of ``size`` (width, height) as nested rows."""
    width, height = size
    values = list(data)
    if channels == 1:
        return [values[r * width:(r + 1) * width] for r in range(height)]
    return [[values[(r * width + c) * channels:(r * width + c + 1) * channels] for c in range(width)]
            for r in range(height)]


def image_trace(pixels: list):
    """The plotly trace of one image from :func:`image_pixels`: a grey heatmap without a colour bar, or an RGB
    image; drawn square, without hover."""
    import plotly.graph_objects as go
    if pixels and pixels[0] and isinstance(pixels[0][0], list):
        return go.Image(z=pixels, hoverinfo="skip")
    return go.Heatmap(z=pixels, colorscale="gray", zmin=0, zmax=255, showscale=False, hoverinfo="skip")


def add_slider(fig, labels: list[str], frames: list[dict], start: int, prefix: str, pad_top: int = 30) -> None:
    """Give ``fig`` one animation frame per label (``frames``: the ``go.Frame`` arguments besides the name) and a
    slider over them that opens at ``start`` and jumps, without transition, to the frame it is dragged to."""
    import plotly.graph_objects as go
    fig.frames = [go.Frame(name=label, **frame) for label, frame in zip(labels, frames, strict=True)]
    fig.update_layout(sliders=[dict(
        active=start, currentvalue=dict(prefix=prefix), pad=dict(t=pad_top),
        steps=[dict(label=label, method="animate",
                    args=[[label], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                        transition=dict(duration=0))]) for label in labels])])


def image_axes(fig, row=None, col=None) -> None:
    """The axes of an image panel: no ticks or grid, the first row at the top, pixels square."""
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=row, col=col)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed", scaleanchor="x",
                     scaleratio=1, constrain="domain", row=row, col=col)


def explorer_html(fig, div_id: str) -> str:
    """The figure as an HTML fragment for a page that loads plotly's script itself (never from the network)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, auto_play=False,
                       config={"responsive": True, "displaylogo": False})


def image_explorer(images: list, labels: list[str], prefix: str, title: str, div_id: str, start: int = 0,
                   height: int = 520) -> str:
    """A slider over precomputed images (each as :func:`image_pixels` gives it), one frame per label, opening at
    ``start``; the panel's title names the frame shown (``title`` formatted with ``label``)."""
    import plotly.graph_objects as go
    if not images or len(images) != len(labels):
        raise ValueError(f"{len(images)} images for {len(labels)} labels: one image per label is needed")
    fig = go.Figure(image_trace(images[start]))
    add_slider(fig, labels, [dict(data=[image_trace(image)], traces=[0],
                                  layout=dict(title=dict(text=title.format(label=label))))
                             for image, label in zip(images, labels)], start, prefix)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=title.format(label=labels[start])))
    image_axes(fig)
    return explorer_html(fig, div_id)
