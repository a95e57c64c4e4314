"""Tiny inline-SVG charts for the HTML report: lines and grouped bars, no dependencies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

W, H = 680, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

Series = tuple[str, Sequence[tuple[float, float]]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = float(10 ** len(str(int(value)))) / 10
    for mult in (1, 2, 2.5, 5, 10):
        if step * mult >= value:
            return step * mult
    return value


def _frame(title: str, x_label: str, y_label: str, y_max: float, body: list[str],
           x_ticks: Sequence[tuple[float, str]]) -> str:
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(5):
        value = y_max * i / 4
        y = TOP + ph - ph * i / 4
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#eee"/><text x="{LEFT - 4}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{value:g}</text>')
    for x, label in x_ticks:
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 14}" text-anchor="middle">'
                   f'{escape(label)}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 6}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + ph / 2})">{escape(y_label)}</text>')
    out += body
    out.append("</svg>")
    return "\n".join(out)


def line_chart(title: str, series: Sequence[Series], x_label: str, y_label: str,
               x_map: Callable[[float], float] | None = None,
               x_ticks: Sequence[tuple[float, str]] | None = None) -> str:
    """Lines of (x, y) points; ``x_map`` transforms x before scaling (e.g. a log axis)."""
    fx = x_map or (lambda v: v)
    pts = [(fx(x), y) for _, s in series for x, y in s]
    if not pts:
        return _frame(title + " (no data)", x_label, y_label, 1.0, [], [])
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    y_max = _nice_max(max(p[1] for p in pts))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (fx(x) - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + ph - y / y_max * ph

    body = []
    for i, (label, s) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                    f'points="{path}"/>')
        body.append(f'<text x="{LEFT + 8}" y="{TOP + 14 + 13 * i}" fill="{color}">'
                    f'{escape(label)}</text>')
    if x_ticks is None:
        raw = [min(x for _, s in series for x, _ in s), max(x for _, s in series for x, _ in s)]
        x_ticks = [(sx(v), f"{v:g}") for v in raw]
    else:
        x_ticks = [(sx(v), label) for v, label in x_ticks]
    return _frame(title, x_label, y_label, y_max, body, x_ticks)


def bar_chart(title: str, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
              y_label: str) -> str:
    """Grouped bars: one group per name, one bar per series."""
    values = [v for _, vs in series for v in vs]
    if not groups or not values:
        return _frame(title + " (no data)", "", y_label, 1.0, [], [])
    y_max = _nice_max(max(values))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = pw / len(groups)
    bar = slot * 0.8 / max(1, len(series))
    body, ticks = [], []
    for g, name in enumerate(groups):
        ticks.append((LEFT + slot * g + slot / 2, name))
        for i, (_, vs) in enumerate(series):
            h = vs[g] / y_max * ph
            x = LEFT + slot * g + slot * 0.1 + bar * i
            body.append(f'<rect x="{x:.1f}" y="{TOP + ph - h:.1f}" width="{bar:.1f}" '
                        f'height="{h:.1f}" fill="{COLORS[i % len(COLORS)]}">'
                        f'<title>{escape(name)}: {vs[g]:g}</title></rect>')
    for i, (label, _) in enumerate(series):
        body.append(f'<text x="{W - RIGHT - 8}" y="{TOP + 14 + 13 * i}" text-anchor="end" '
                    f'fill="{COLORS[i % len(COLORS)]}">{escape(label)}</text>')
    return _frame(title, "", y_label, y_max, body, ticks)
