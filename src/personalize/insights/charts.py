"""Small server-rendered SVG charts for the dashboard: no script, so the page's CSP stays strict.

Every chart is an ``<svg role="img">`` with a title and, per mark, a ``<title>`` the
browser shows as a tooltip. Colours come from CSS classes (``series-0``, ``series-1``…)
in the admin style sheet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 22, 28

Fmt = Callable[[float], str]


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == int(v) else f"{v:,.2f}"


def compact(v: float) -> str:
    """Axis numbers: 1,200 → 1.2k."""
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k".replace(".0k", "k")
    return _num(v)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    import math

    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 4, 6, 8, 10):  # a quarter of each is a round number
        if v <= step * mag:
            return step * mag
    return 10 * mag


def _frame(label: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>{"".join(body)}</svg>'
    )


def _axis(top: float, fmt: Fmt, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """Five grid lines with their values (``fmt`` sees the value; money axes pass compact numbers)."""
    out = []
    for i in range(5):
        v = top * i / 4
        y = height - BOTTOM - (height - TOP - BOTTOM) * i / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(v))}</text>')
    return out


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float]) -> list[str]:
    step = max(1, len(labels) // 6)
    return [
        f'<text class="tick" x="{x_of(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(lab)}</text>'
        for i, lab in enumerate(labels) if i % step == 0 or i == len(labels) - 1
    ]


def bar_chart(label: str, labels: Sequence[str], values: Sequence[float], fmt: Fmt = _num, series: int = 0) -> Markup:
    """Vertical bars, one per label (e.g. per day)."""
    top = _nice_max(max(values, default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(1, len(values))
    body = _axis(top, fmt)
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        h = inner_h * v / top
        body.append(
            f'<rect class="bar series-{series}" x="{LEFT + i * slot + slot * 0.15:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{h:.1f}"><title>{escape(lab)}: {escape(fmt(v))}</title></rect>'
        )
    body += _x_labels(labels, lambda i: LEFT + (i + 0.5) * slot)
    return _frame(label, body)


def line_chart(label: str, labels: Sequence[str], series: dict[str, Sequence[float]], fmt: Fmt = _num) -> Markup:
    """One line per series over the labels, with a legend."""
    top = _nice_max(max((max(v, default=0) for v in series.values()), default=0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(labels) - 1)

    def x_of(i: int) -> float:
        return LEFT + inner_w * i / n

    body = _axis(top, fmt)
    for k, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x_of(i):.1f},{HEIGHT - BOTTOM - inner_h * v / top:.1f}" for i, v in enumerate(values))
        body.append(f'<polyline class="line series-{k}" points="{points}"/>')
        for i, v in enumerate(values):
            body.append(
                f'<circle class="dot series-{k}" cx="{x_of(i):.1f}" cy="{HEIGHT - BOTTOM - inner_h * v / top:.1f}" r="2.5">'
                f"<title>{escape(name)}, {escape(labels[i])}: {escape(fmt(v))}</title></circle>"
            )
        lx = LEFT + 10 + k * 130
        body.append(f'<rect class="bar series-{k}" x="{lx}" y="2" width="10" height="10"/>')
        body.append(f'<text class="legend" x="{lx + 14}" y="11">{escape(name)}</text>')
    body += _x_labels(labels, x_of)
    return _frame(label, body)


def hbar_chart(label: str, rows: Sequence[tuple[str, float]], fmt: Fmt = _num, series: int = 0) -> Markup:
    """Horizontal bars, one row per label (e.g. per slot)."""
    row_h = 26
    height = TOP + BOTTOM + row_h * max(1, len(rows))
    top = _nice_max(max((v for _, v in rows), default=0))
    left = 110
    inner_w = WIDTH - left - RIGHT - 70
    body = []
    for i, (name, v) in enumerate(rows):
        y = TOP + i * row_h
        w = inner_w * v / top
        body.append(f'<text class="tick" x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(name)}</text>')
        body.append(
            f'<rect class="bar series-{series}" x="{left}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}">'
            f"<title>{escape(name)}: {escape(fmt(v))}</title></rect>"
        )
        body.append(f'<text class="value" x="{left + w + 6:.1f}" y="{y + 17}">{escape(fmt(v))}</text>')
    return _frame(label, body, height=height)


def interval_chart(label: str, rows: Sequence[tuple[str, float, float, float]], fmt: Fmt, clip: float = 2.0) -> Markup:
    """Point estimates with 95 % intervals around a zero line (a forest plot): (name, low, point, high)."""
    row_h = 40
    height = TOP + BOTTOM + row_h * max(1, len(rows))
    left = 150
    inner_w = WIDTH - left - RIGHT - 20
    span = max((max(abs(lo), abs(hi)) for _, lo, _, hi in rows), default=0.0) or 1.0
    span = min(span, clip) * 1.15  # a very wide interval runs off the edge instead of squashing the rest

    def x_of(v: float) -> float:
        v = max(-span, min(span, v))
        return left + inner_w * (v + span) / (2 * span)

    zero = x_of(0.0)
    body = [f'<line class="zero" x1="{zero:.1f}" x2="{zero:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>',
            f'<text class="tick" x="{zero:.1f}" y="{height - 8}" text-anchor="middle">0</text>',
            f'<text class="tick" x="{x_of(-span / 1.15):.1f}" y="{height - 8}" text-anchor="middle">{escape(fmt(-span / 1.15))}</text>',
            f'<text class="tick" x="{x_of(span / 1.15):.1f}" y="{height - 8}" text-anchor="middle">{escape(fmt(span / 1.15))}</text>']
    for i, (name, lo, point, hi) in enumerate(rows):
        y = TOP + i * row_h + row_h / 2
        cls = "good" if lo > 0 else ("bad" if hi < 0 else "unsure")
        body.append(f'<text class="tick" x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(name)}</text>')
        body.append(f'<line class="interval {cls}" x1="{x_of(lo):.1f}" x2="{x_of(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(
            f'<circle class="estimate {cls}" cx="{x_of(point):.1f}" cy="{y:.1f}" r="5">'
            f"<title>{escape(name)}: {escape(fmt(point))} (95 % interval {escape(fmt(lo))} to {escape(fmt(hi))})</title></circle>"
        )
    return _frame(label, body, height=height)
