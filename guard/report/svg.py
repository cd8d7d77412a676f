"""A few inline-SVG pieces for the Backups page: marks of distinct shapes, bars, a trend line.

Every function returns SVG markup as a string; every text it is given is escaped here
(``esc``), so callers pass plain (already masked) text. Shapes differ as well as colours, so
the charts read without colour; each mark carries a ``<title>`` (its text alternative).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def esc(text: object) -> str:
    """Text for an HTML/SVG element or a double-quoted attribute."""
    return escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _points(pairs: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{_num(x)},{_num(y)}" for x, y in pairs)


# shape -> how it is drawn; the legend and the timeline use the same names.
SHAPES = ("circle", "square", "cross", "triangle", "triangle-down", "diamond", "ring")


def shape(kind: str, x: float, y: float, r: float, css: str) -> str:
    """One mark centred on (x, y), about 2r wide, of class ``css``."""
    if kind == "circle":
        return f'<circle class="{esc(css)}" cx="{_num(x)}" cy="{_num(y)}" r="{_num(r)}"/>'
    if kind == "ring":
        return f'<circle class="{esc(css)} hollow" cx="{_num(x)}" cy="{_num(y)}" r="{_num(r * 0.85)}"/>'
    if kind == "square":
        side = r * 1.7
        return (f'<rect class="{esc(css)}" x="{_num(x - side / 2)}" y="{_num(y - side / 2)}" '
                f'width="{_num(side)}" height="{_num(side)}"/>')
    if kind == "cross":
        d = r * 0.95
        return (f'<path class="{esc(css)} stroke" d="M{_num(x - d)},{_num(y - d)} L{_num(x + d)},{_num(y + d)} '
                f'M{_num(x - d)},{_num(y + d)} L{_num(x + d)},{_num(y - d)}"/>')
    if kind == "triangle":
        pts = [(x, y - r * 1.1), (x + r, y + r * 0.8), (x - r, y + r * 0.8)]
    elif kind == "triangle-down":
        pts = [(x, y + r * 1.1), (x + r, y - r * 0.8), (x - r, y - r * 0.8)]
    elif kind == "diamond":
        pts = [(x, y - r * 1.2), (x + r, y), (x, y + r * 1.2), (x - r, y)]
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return f'<polygon class="{esc(css)}" points="{_points(pts)}"/>'


def titled(inner: str, title: str, *, href: str | None = None) -> str:
    """``inner`` in a group with a tooltip/text alternative, optionally a link."""
    group = f"<g><title>{esc(title)}</title>{inner}</g>"
    if href is None:
        return group
    return f'<a href="{esc(href)}" aria-label="{esc(title)}">{group}</a>'


def legend_mark(kind: str, css: str) -> str:
    """A 14x14 inline SVG of one mark, for legends and tables (decorative: text follows)."""
    return (f'<svg class="mark" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
            f"{shape(kind, 7, 7, 5, css)}</svg>")


def stacked_bar(parts: Sequence[tuple[str, float, str]], *, label: str, width: int = 360) -> str:
    """A horizontal bar of ``(name, value, css class)`` parts with a text alternative;
    each part is labelled with its value inside when it is wide enough."""
    total = sum(max(v, 0) for _n, v, _c in parts)
    out = [f'<svg class="bar" role="img" aria-label="{esc(label)}" width="{width}" height="22" '
           f'viewBox="0 0 {width} 22"><title>{esc(label)}</title>']
    x = 0.0
    for name, value, css in parts:
        w = width * max(value, 0) / total if total else 0
        if w <= 0:
            continue
        out.append(f'<rect class="{esc(css)}" x="{_num(x)}" y="0" width="{_num(w)}" height="22">'
                   f"<title>{esc(name)}: {esc(_num(value))}</title></rect>")
        if w > 30:
            out.append(f'<text class="bar-text" x="{_num(x + 6)}" y="15">{esc(_num(value))}</text>')
        x += w
    if not total:
        out.append(f'<rect class="empty" x="0" y="0" width="{width}" height="22"/>')
    out.append("</svg>")
    return "".join(out)


def trend(points: Sequence[tuple[str, float | None, bool]], *, label: str, width: int = 360,
          height: int = 80) -> str:
    """A small line chart of ``(name, value, passed)``: a circle per passed point, a cross
    per failed one; points without a value sit on the axis as crosses."""
    values = [v for _n, v, _ok in points if v is not None]
    top = max(values) if values else 1.0
    top = top if top > 0 else 1.0
    pad = 12
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    out = [f'<svg class="trend" role="img" aria-label="{esc(label)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}"><title>{esc(label)}</title>',
           f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>']
    line = []
    marks = []
    for index, (name, value, passed) in enumerate(points):
        x = pad + index * step if len(points) > 1 else width / 2
        y = height - pad - (value / top) * (height - 2 * pad) if value is not None else height - pad
        if value is not None:
            line.append((x, y))
        kind, css = ("circle", "pass") if passed and value is not None else ("cross", "fail")
        marks.append(titled(shape(kind, x, y, 4, css), name))
    if len(line) > 1:
        out.append(f'<polyline class="trend-line" points="{_points(line)}"/>')
    out.extend(marks)
    out.append(f'<text class="tick" x="{pad}" y="{pad - 2}">{esc(_num(top))} s</text></svg>')
    return "".join(out)


def gauge(value: float, limit: float, *, label: str, width: int = 240) -> str:
    """A bar from 0 to twice ``limit`` filled to ``value`` (class ok within the limit, failed
    beyond it), with a marked tick at ``limit``; ``label`` is its text alternative."""
    track = width - 2
    share = min(max(value, 0) / limit, 2.0) / 2 if limit > 0 else 1.0
    css = "ok" if value <= limit else "failed"
    mid = 1 + track / 2
    return (f'<svg class="gauge" role="img" aria-label="{esc(label)}" width="{width}" height="30" '
            f'viewBox="0 0 {width} 30"><title>{esc(label)}</title>'
            f'<rect class="empty" x="1" y="2" width="{track}" height="12"/>'
            f'<rect class="{css}" x="1" y="2" width="{_num(track * share)}" height="12"/>'
            f'<line class="axis" x1="{_num(mid)}" y1="0" x2="{_num(mid)}" y2="16"/>'
            f'<text class="tick" x="{_num(mid)}" y="27" text-anchor="middle">max_age</text></svg>')
