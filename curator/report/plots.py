"""Small dependency-free charts as inline SVG: a line chart with several series, overlaid histograms and a
paired horizontal bar chart.

Every plotted value sits in a `data-value` attribute (the exact float, `repr`), with `data-series` and
`data-x` (or `data-bin`) beside it, so a test can read the numbers back from the page, and in a `<title>`
child, which a browser shows as a tooltip (no JavaScript). Colours are the Okabe-Ito palette (distinguishable
with the common colour-vision deficiencies), and each series also has its own marker shape.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe-Ito, without its yellow (too light on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down")
HUMAN = "#6b6b6b"
FONT = "font-family:inherit"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def fmt(x: float | None, digits: int = 4) -> str:
    """A number as people read it: 4 significant digits, thousands without exponent, None as a dash."""
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if isinstance(x, int) or (abs(x) >= 1000 and float(x).is_integer()):
        return f"{int(x):,}"
    if abs(x) >= 10_000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _attr(value: float | int | None) -> str:
    return "" if value is None else repr(float(value)) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- scales and ticks

def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi - step * 1e-9:
        ticks.append(round(t, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering two positive numbers (only powers of ten when the range is wide)."""
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if hi_e - lo_e > 4 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(lo_e, hi_e + 1) for m in mults]
    below = max((t for t in ticks if t <= lo * 1.001), default=ticks[0])
    above = min((t for t in ticks if t >= hi * 0.999), default=ticks[-1])
    return [t for t in ticks if below <= t <= above]  # from the tick below the data to the tick above


@dataclass
class Scale:
    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(v)
        else:
            lo, hi = self.lo, self.hi
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return self.a + t * (self.b - self.a)


def _y_axis(values: Sequence[float], log: bool, top: float, bottom: float, zero: bool) -> tuple[Scale, list[float]]:
    lo, hi = min(values), max(values)
    if log:
        lo, hi = (lo / 2, hi * 2) if hi <= lo else (lo, hi)
        ticks = log_ticks(lo, hi)
        return Scale(min(ticks[0], lo), max(ticks[-1], hi), bottom, top, log=True), ticks
    if zero:
        lo = min(lo, 0.0)
    if hi == lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    pad = (hi - lo) * 0.05
    ticks = nice_ticks(lo if zero and lo >= 0 else lo - pad, hi + pad)
    return Scale(ticks[0], ticks[-1], bottom, top), ticks


def _marker(shape: str, x: float, y: float, fill: str, r: float = 4.0, extra: str = "") -> str:
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" fill="{fill}"{extra}>'
    if shape in ("triangle", "triangle-down"):
        s = 1 if shape == "triangle" else -1
        pts = f"{x:.1f},{y - s * r * 1.2:.1f} {x - r * 1.1:.1f},{y + s * r * 0.8:.1f} {x + r * 1.1:.1f},{y + s * r * 0.8:.1f}"
        return f'<polygon points="{pts}" fill="{fill}"{extra}>'
    if shape == "diamond":
        pts = f"{x:.1f},{y - r * 1.3:.1f} {x + r * 1.1:.1f},{y:.1f} {x:.1f},{y + r * 1.3:.1f} {x - r * 1.1:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{fill}"{extra}>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}"{extra}>'


def _close(shape: str) -> str:
    return {"square": "</rect>", "triangle": "</polygon>", "triangle-down": "</polygon>",
            "diamond": "</polygon>"}.get(shape, "</circle>")


# --------------------------------------------------------------------------- line chart

@dataclass
class Series:
    name: str
    points: list[tuple[int, float | None]]  # (x, y); None = no value (a gap)
    alarms: frozenset[int] = frozenset()  # x values whose point is in alarm (drawn with a ring)


def line_chart(series: Sequence[Series], *, metric: str, title: str, y_label: str, x_label: str = "round",
               log_y: bool = False, baseline: float | None = None, baseline_label: str = "human",
               zero: bool = True, width: int = 360, height: int = 260) -> str:
    """One line per series over integer x, with axes, ticks, labels, a legend and an optional dashed
    horizontal baseline. Each point carries data-metric, data-series, data-x and data-value."""
    left, right, top, bottom = 62, 14, 30, height - 66
    ys = [y for s in series for _, y in s.points if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
    if baseline is not None and math.isfinite(baseline) and (baseline > 0 or not log_y):
        ys.append(baseline)
    xs = sorted({x for s in series for x, _ in s.points})
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'data-metric="{escape(metric)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title>{escape(title)}</title>',
           f'<text x="{left}" y="16" class="ctitle">{escape(title)}</text>']
    if not ys or not xs:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">no data</text></svg>')
        return "".join(out)
    ysc, yticks = _y_axis(ys, log_y, top, bottom, zero and not log_y)
    xsc = Scale(xs[0] - 0.3, xs[-1] + 0.3, left, width - right) if len(xs) > 1 else Scale(xs[0] - 1, xs[0] + 1, left, width - right)
    for t in yticks:
        y = ysc(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{fmt(t, 3)}</text>')
    for x in xs:
        px = xsc(x)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" class="axis"/>'
                   f'<text x="{px:.1f}" y="{bottom + 17}" text-anchor="middle" class="tick">{x}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{bottom}" y2="{bottom}" class="axis"/>'
               f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" class="axis"/>'
               f'<text x="{(left + width - right) / 2:.1f}" y="{bottom + 33}" text-anchor="middle" class="label">{escape(x_label)}</text>'
               f'<text transform="translate(14 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle" class="label">'
               f'{escape(y_label)}{" (log scale)" if log_y else ""}</text>')
    if baseline is not None and math.isfinite(baseline) and (baseline > 0 or not log_y):
        y = ysc(baseline)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="baseline" '
                   f'data-series="{escape(baseline_label)}" data-value="{_attr(baseline)}">'
                   f'<title>{escape(baseline_label)}: {fmt(baseline)}</title></line>')
    for i, s in enumerate(series):
        c, shape = colour(i), MARKERS[i % len(MARKERS)]
        segs, cur = [], []
        for x, y in s.points:
            if y is None or not math.isfinite(y) or (log_y and y <= 0):
                if cur:
                    segs.append(cur)
                cur = []
                continue
            cur.append((xsc(x), ysc(y)))
        if cur:
            segs.append(cur)
        for seg in segs:
            d = " ".join(f"{'M' if k == 0 else 'L'}{px:.1f},{py:.1f}" for k, (px, py) in enumerate(seg))
            out.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2.2" stroke-linejoin="round"/>')
        for x, y in s.points:
            if y is None:
                continue
            plotted = math.isfinite(y) and not (log_y and y <= 0)
            tip = f"{s.name}, {x_label} {x}: {fmt(y)}" + (" (alarm)" if x in s.alarms else "")
            attrs = (f' class="pt{" alarm" if x in s.alarms else ""}" data-metric="{escape(metric)}" '
                     f'data-series="{escape(s.name)}" data-x="{x}" data-value="{_attr(y)}"')
            if not plotted:  # kept in the data, drawn nowhere
                out.append(f'<g{attrs}><title>{escape(tip)} (off the scale)</title></g>')
                continue
            px, py = xsc(x), ysc(y)
            if x in s.alarms:
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="8" fill="none" stroke="{c}" stroke-width="1.5" '
                           f'stroke-dasharray="2 2"/>')
            out.append(_marker(shape, px, py, c, extra=attrs) + f"<title>{escape(tip)}</title>" + _close(shape))
    out.append(_legend([s.name for s in series], left, height - 14, width - right,
                       baseline_label if baseline is not None else None))
    out.append("</svg>")
    return "".join(out)


def _legend(names: Sequence[str], x0: float, y: float, x_max: float, baseline: str | None) -> str:
    parts, x = [], x0
    for i, name in enumerate(names):
        shape = MARKERS[i % len(MARKERS)]
        parts.append(f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{colour(i)}" stroke-width="2.2"/>'
                     + _marker(shape, x + 9, y - 4, colour(i), r=3.5) + _close(shape)
                     + f'<text x="{x + 23:.1f}" y="{y}" class="legend">{escape(name)}</text>')
        x += 34 + 7 * len(name)
    if baseline is not None and x < x_max - 40:
        parts.append(f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y - 4}" y2="{y - 4}" class="baseline"/>'
                     f'<text x="{x + 23:.1f}" y="{y}" class="legend">{escape(baseline)}</text>')
    return '<g class="legendbox">' + "".join(parts) + "</g>"


# --------------------------------------------------------------------------- overlaid histograms

def histogram(edges: Sequence[float], counts: Sequence[int], reference: Sequence[int] | None, *, metric: str,
              title: str, name: str, colour_index: int = 0, reference_name: str = "human",
              x_label: str = "document perplexity (log scale)", width: int = 300, height: int = 220) -> str:
    """The shares of `counts` over log-spaced `edges` as coloured bars, over the reference's shares as a grey
    area. Bars carry data-series, data-bin, data-count and data-value (the share)."""
    left, right, top, bottom = 44, 10, 26, height - 58
    total, ref_total = sum(counts), sum(reference) if reference is not None else 0
    shares = [c / total if total else 0.0 for c in counts]
    ref_shares = [c / ref_total if ref_total else 0.0 for c in reference] if reference is not None else []
    peak = max([*shares, *ref_shares, 1e-9])
    ysc, yticks = _y_axis([0.0, peak], False, top, bottom, True)
    xsc = Scale(edges[0], edges[-1], left, width - right, log=edges[0] > 0)
    c = colour(colour_index)
    out = [f'<svg class="chart hist" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'data-metric="{escape(metric)}" data-series="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title>{escape(title)}</title><text x="{left}" y="15" class="ctitle">{escape(title)}</text>']
    for t in yticks:
        y = ysc(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" class="tick">{t * 100:.3g}%</text>')
    for t in log_ticks(edges[0], edges[-1]) if edges[0] > 0 else nice_ticks(edges[0], edges[-1]):
        if edges[0] <= t <= edges[-1]:
            px = xsc(t)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" class="axis"/>'
                       f'<text x="{px:.1f}" y="{bottom + 15}" text-anchor="middle" class="tick">{fmt(t, 3)}</text>')
    for series, values, raw, fill, cls in ((reference_name, ref_shares, reference or [], HUMAN, "ref"),
                                           (name, shares, counts, c, "gen")):
        for k, v in enumerate(values):
            x0, x1 = xsc(edges[k]), xsc(edges[k + 1])
            y = ysc(v)
            tip = f"{series}: {v * 100:.1f}% of documents ({raw[k]}) in {fmt(edges[k], 3)}–{fmt(edges[k + 1], 3)}"
            out.append(f'<rect class="bar {cls}" x="{x0:.2f}" y="{y:.2f}" width="{max(x1 - x0, 0.5):.2f}" '
                       f'height="{max(bottom - y, 0):.2f}" fill="{fill}" data-series="{escape(series)}" data-bin="{k}" '
                       f'data-count="{raw[k]}" data-value="{_attr(float(v))}"><title>{escape(tip)}</title></rect>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{bottom}" y2="{bottom}" class="axis"/>'
               f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" class="axis"/>'
               f'<text x="{(left + width - right) / 2:.1f}" y="{bottom + 31}" text-anchor="middle" class="label">'
               f'{escape(x_label)}</text>')
    ly = height - 8
    out.append(f'<g class="legendbox"><rect x="{left}" y="{ly - 9}" width="10" height="10" fill="{HUMAN}" opacity="0.35"/>'
               f'<text x="{left + 14}" y="{ly}" class="legend">{escape(reference_name)}</text>'
               f'<rect x="{left + 80}" y="{ly - 9}" width="10" height="10" fill="{c}" opacity="0.6"/>'
               f'<text x="{left + 94}" y="{ly}" class="legend">{escape(name)}</text></g>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- paired bars

@dataclass
class Bar:
    label: str
    value: float  # drawn bar (the generation's frequency)
    reference: float | None  # thin grey bar under it (the human frequency); None = unknown
    note: str  # text at the bar's end (the ratio)


def bar_chart(bars: Sequence[Bar], *, metric: str, title: str, name: str, colour_index: int = 0,
              reference_name: str = "human", x_label: str = "share of all bigrams (%)", width: int = 440) -> str:
    """Horizontal bars, one per label: the value as a coloured bar, the reference as a thin grey one."""
    row, left, right, top = 22, 150, 70, 30
    height = top + row * len(bars) + 44
    peak = max([b.value for b in bars] + [b.reference or 0.0 for b in bars] + [1e-12])
    ticks = nice_ticks(0.0, peak * 100, 4)
    xsc = Scale(0.0, ticks[-1] / 100, left, width - right)
    c = colour(colour_index)
    out = [f'<svg class="chart bars" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'data-metric="{escape(metric)}" data-series="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
           f'<title>{escape(title)}</title><text x="8" y="16" class="ctitle">{escape(title)}</text>']
    bottom = top + row * len(bars)
    for t in ticks:
        px = xsc(t / 100)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{bottom}" class="grid"/>'
                   f'<text x="{px:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">{fmt(t, 3)}</text>')
    for k, b in enumerate(bars):
        y = top + k * row
        label = b.label if len(b.label) <= 22 else b.label[:21] + "…"
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" class="ngram">{escape(label)}'
                   f'<title>{escape(b.label)}</title></text>')
        out.append(f'<rect class="bar gen" x="{left}" y="{y + 3}" width="{max(xsc(b.value) - left, 0.5):.2f}" height="11" '
                   f'fill="{c}" data-series="{escape(name)}" data-label="{escape(b.label)}" data-value="{_attr(b.value)}">'
                   f'<title>{escape(b.label)}: {b.value * 100:.3g}% of {escape(name)}\'s bigrams</title></rect>')
        if b.reference is not None:
            out.append(f'<rect class="bar ref" x="{left}" y="{y + 15}" width="{max(xsc(b.reference) - left, 0.5):.2f}" '
                       f'height="4" fill="{HUMAN}" data-series="{escape(reference_name)}" data-label="{escape(b.label)}" '
                       f'data-value="{_attr(b.reference)}"><title>{escape(b.label)}: {b.reference * 100:.3g}% of '
                       f'{escape(reference_name)} bigrams</title></rect>')
        out.append(f'<text x="{max(xsc(b.value), xsc(b.reference or 0)) + 5:.1f}" y="{y + 14}" class="note">'
                   f'{escape(b.note)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" class="axis"/>'
               f'<text x="{(left + width - right) / 2:.1f}" y="{bottom + 32}" text-anchor="middle" class="label">'
               f'{escape(x_label)}</text>')
    out.append("</svg>")
    return "".join(out)
