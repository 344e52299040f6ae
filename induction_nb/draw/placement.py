"""Where figures.py puts text that must not collide: a legend above the axes (clear of every axis label,
tick label and data point) and point labels that overlap neither each other nor the points they name.

Both measure in display units after the figure's layout has run (``draw_without_rendering``), so call
them once the axes' limits and the figure's other parts are final: offsets are kept in points, and
points, fonts and a constrained layout all scale together, so a save at another dpi keeps them apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InputError

__all__ = ["legend_above", "label_points"]

# Beside the point, in this order: the diagonals first, since they keep a label clear of its marker with
# the least offset.
_BESIDE = ((1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_HA = {1: "left", 0: "center", -1: "right"}
_VA = {1: "bottom", 0: "center", -1: "top"}
_COLUMN_PT = 14.0  # how far from its point a label on a leader sits: a leader short but visible
_SLOTS = 15  # label slots above and below the point in such a column: a whole one-column axes' height
_GAP_PT = 3.0  # space between a legend and the axes frame or y offset text below it


def legend_above(
    axes: Sequence[Any], handles: list | None = None, labels: list[str] | None = None, **kwargs: Any
) -> Any:
    """One legend for ``axes`` above their frames, in as many columns as fit: ``handles`` and ``labels``,
    else the axes' labelled artists, one entry per label (panels whose lines share names). Panels side by
    side in a constrained layout: a figure legend in a row of its own at the top, which the layout keeps
    clear. Otherwise (one frame, its twins, or no constrained layout) centred above the first frame,
    within its width: there it covers no data and meets no y tick label or y label (those lie left and
    right of the frame), and titles are raised above it."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.transforms import ScaledTranslation

    if handles is None:
        handles, labels = _labelled(axes)
    if not handles:
        raise InputError("nothing to put in a legend: no line, point or patch of these axes has a label")
    host = axes[0]
    fig = host.get_figure(root=True)
    kwargs = {"handlelength": 1.5, "columnspacing": 1.2, **kwargs}
    fig.draw_without_rendering()  # run the layout: the widths and offset texts measured below are final
    if len({a.get_position().bounds for a in axes}) > 1 and isinstance(
        fig.get_layout_engine(), ConstrainedLayoutEngine
    ):
        return _fit(
            lambda n: fig.legend(handles, labels, loc="outside upper center", ncols=n, **kwargs),
            fig.bbox.width,
            len(handles),
        )
    lift = _lift(axes, fig)
    anchor = host.transAxes + ScaledTranslation(0, lift / 72, fig.dpi_scale_trans)
    legend = _fit(
        lambda n: host.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            bbox_transform=anchor,
            ncols=n,
            borderaxespad=0.0,
            **kwargs,
        ),
        host.bbox.width,
        len(handles),
    )
    pad = lift + legend.get_window_extent().height * 72 / fig.dpi + _GAP_PT
    for ax in axes:  # a title stays at its default place (its own pad) unless the legend needs the room
        for loc in ("left", "center", "right"):
            if ax.get_title(loc):
                ax.set_title(ax.get_title(loc), loc=loc, pad=pad)
    return legend


def _labelled(axes: Sequence[Any]) -> tuple[list, list[str]]:
    """The labelled artists of ``axes``, one per label (panels whose lines share names)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def _lift(axes: Sequence[Any], fig: Any) -> float:
    """Points above the frame where a legend can start: past a y offset text ("1e-3"), which sits just
    above the frame where the legend would go."""
    offsets = [
        a.yaxis.offsetText.get_window_extent().height * 72 / fig.dpi
        for a in axes
        if a.yaxis.offsetText.get_visible() and a.yaxis.offsetText.get_text()
    ]
    return _GAP_PT + max(offsets, default=0.0)


def _fit(make: Any, width: float, n: int) -> Any:
    """The legend ``make(ncols)`` with the fewest rows whose width fits ``width`` (one column at least)."""
    for ncols in range(n, 0, -1):
        legend = make(ncols)
        if ncols == 1 or legend.get_window_extent().width <= width:
            return legend
        legend.remove()


def label_points(
    ax: Any,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    *,
    marker_pt: float = 2.0,
    avoid: Sequence[Any] = (),
    **text_kwargs: Any,
) -> list[Any]:
    """Annotate each data point with its text, in order (earlier labels get the nearer places). Each goes
    to the first free place (see ``_places``): inside the axes, over no earlier label and no labelled
    point's marker (``marker_pt`` half-width) and no artist in ``avoid`` (e.g. a threshold line), crossed
    by no earlier leader line, its own leader crossing no earlier label. When none is free, the place that
    overlaps least. Non-finite points get no label."""
    fig = ax.get_figure(root=True)
    fig.draw_without_rendering()  # limits and layout final: the display positions below are those saved
    px = fig.dpi / 72
    keep = [(p, t) for p, t in zip(points, texts) if all(v is not None and math.isfinite(float(v)) for v in p)]
    anchors = [tuple(ax.transData.transform(p)) for p, _ in keep]
    markers = [(x - marker_pt * px, y - marker_pt * px, x + marker_pt * px, y + marker_pt * px) for x, y in anchors]
    for artist in avoid:  # one pixel wider: an axvline's box has no width, and would overlap nothing
        x0, y0, x1, y1 = artist.get_window_extent().extents
        markers.append((x0 - 1, y0 - 1, x1 + 1, y1 + 1))
    boxes: list[tuple] = []  # the labels placed so far, and their leaders below
    leaders: list[tuple[tuple[float, float], tuple[float, float]]] = []
    placed = []
    for (point, text), xy in zip(keep, anchors):
        w, h = _text_size(ax, text, text_kwargs)
        side = -1 if xy[0] > (ax.bbox.x0 + ax.bbox.x1) / 2 else 1  # toward the middle: the more room
        best, least = None, math.inf
        for off, sx, sy, leader in _places((h + 3) / px, marker_pt + 1.5, side):  # 1 px of air each side, 1 between
            box = _box(xy[0] + off[0] * px, xy[1] + off[1] * px, w, h, sx, sy)
            # the leader leaves from the label's side facing the point, not from its centre (matplotlib's
            # default), so it runs beside the labels stacked next to this one, not through them
            relpos = ((1 - sx) / 2, (1 - sy) / 2)
            end = (box[0] + (box[2] - box[0]) * relpos[0], box[1] + (box[3] - box[1]) * relpos[1])
            cost = _cost(box, ax.bbox, boxes, markers, leaders) + (_crossings_of(end, xy, boxes) if leader else 0)
            if cost < least:
                best, least = (off, sx, sy, leader, box, end, relpos), cost
            if cost == 0:
                break
        off, sx, sy, leader, box, end, relpos = best
        arrow = dict(arrowstyle="-", color="#5d6d7e", linewidth=0.4, shrinkA=0, shrinkB=0, relpos=relpos)
        placed.append(
            ax.annotate(
                text,
                point,
                xytext=off,
                textcoords="offset points",
                ha=_HA[sx],
                va=_VA[sy],
                arrowprops=arrow if leader else None,
                annotation_clip=False,
                **text_kwargs,
            )
        )
        boxes.append(box)
        if leader:
            leaders.append((xy, end))
    return placed


def _places(line_pt: float, near_pt: float, side: int) -> Iterator[tuple[tuple[float, float], int, int, bool]]:
    """Candidate places as (offset in points, horizontal side, vertical side, leader?): first just beside
    the point, ``near_pt`` off it (no leader); then slots ``line_pt`` apart in a column ``_COLUMN_PT`` to
    the ``side``, nearest height first, then in one to the other side, each joined to its point by a
    leader. A column, unlike rings of places around the point, never closes a crowd in (tried: the first
    three labels walled the rest off): every leader runs in the gap between the column and the points,
    where no label of that column lies."""
    for sx, sy in _BESIDE:
        yield (sx * near_pt, sy * near_pt), sx, sy, False
    for column in (side, -side):
        for k in sorted(range(-_SLOTS, _SLOTS + 1), key=abs):
            yield (column * _COLUMN_PT, k * line_pt), column, 0, True


def _cost(box: tuple, frame: Any, boxes: list, markers: list, leaders: list) -> float:
    """0 for a free place; else how much it overlaps (infinite outside the frame)."""
    if not (frame.x0 <= box[0] and frame.y0 <= box[1] and box[2] <= frame.x1 and box[3] <= frame.y1):
        return math.inf
    return sum(_area(box, b) for b in boxes + markers) + _crossings(box, leaders)


def _text_size(ax: Any, text: str, kwargs: dict) -> tuple[float, float]:
    probe = ax.text(0, 0, text, **kwargs)
    box = probe.get_window_extent()
    probe.remove()
    return box.width, box.height


def _box(x: float, y: float, w: float, h: float, sx: int, sy: int) -> tuple[float, float, float, float]:
    x0 = x if sx > 0 else x - w if sx < 0 else x - w / 2
    y0 = y if sy > 0 else y - h if sy < 0 else y - h / 2
    return (x0 - 1, y0 - 1, x0 + w + 1, y0 + h + 1)  # one pixel of air around the text


def _area(a: tuple, b: tuple) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _inside(p: tuple[float, float], box: tuple) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _samples(a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    # a point every pixel or two finds any label box (several pixels high) the line crosses
    n = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1])))
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(1, n)]


def _crossings(box: tuple, leaders: list) -> int:
    """How many earlier leader lines pass through ``box``."""
    return sum(any(_inside(p, box) for p in _samples(a, b)) for a, b in leaders)


def _crossings_of(a: tuple[float, float], b: tuple[float, float], boxes: list) -> int:
    """How many of ``boxes`` (earlier labels) a new leader from ``a`` to ``b`` passes through."""
    return sum(any(_inside(p, box) for p in _samples(a, b)) for box in boxes)
