"""What the studies' figure tests check of a drawn figure: how tall its smallest text is drawn in the book's column
(from the facts its record would hold), whether texts run into each other, and whether a legend covers a bar."""
import io

from glowlib.results import figure_facts
from glowlib.studies.base import LEGIBLE_PX, drawn_text_px  # noqa: F401  (the tests compare with it)


def drawn_px(fig, dpi: int = 120) -> float:
    """The height (px) ``fig``'s smallest text is drawn at in the book's column, saved as ``Recorder.figure`` does."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return drawn_text_px(figure_facts(fig, buffer.getvalue(), dpi))


def overlapping(texts) -> list[tuple[str, str]]:
    """The pairs of drawn ``texts`` (e.g. an axis's tick labels) whose boxes overlap, by their words."""
    drawn = [t for t in texts if t.get_visible() and t.get_text().strip()]
    renderer = drawn[0].figure.canvas.get_renderer() if drawn else None
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def legends_over_bars(fig) -> list[str]:
    """The labels of the legends of ``fig`` (its own and its panels') whose box covers part of a bar."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import Bbox
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    # each bar as drawn: clipped to its panel (on a log axis a bar from zero reaches far below it)
    bars = [Bbox.intersection(p.get_window_extent(renderer), ax.bbox) for ax in fig.axes for p in ax.patches
            if isinstance(p, Rectangle) and p.get_visible() and p.get_width() and p.get_height()]
    return [" / ".join(t.get_text() for t in legend.get_texts()) for legend in legends
            if any(bar is not None and legend.get_window_extent(renderer).overlaps(bar) for bar in bars)]
