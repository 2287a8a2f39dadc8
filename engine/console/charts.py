"""Charts of the console as inline SVG drawn on the server: no script, no network, scaled to the
page by CSS (each has a viewBox). Built on the report charts' axis and palette (engine.batch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from engine.batch.report import FONT, TOP, svg_axis, svg_open
from engine.batch.sim_report import PALETTE

__all__ = ["svg_bars", "svg_lines"]

WIDTH, HEIGHT, LEFT, BOTTOM = 640, 250, 52, 44


def svg_lines(
    points: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    label: str,
    *,
    percent: bool = False,
    bands: Sequence[tuple[float, str]] = (),
) -> str:
    """One line per series over the labelled points (a None value leaves a gap); `bands` draws
    dashed threshold lines (value, name), e.g. PSI 0.10 and 0.25."""
    legend_h = 14 * ((len(series) + 2) // 3)
    height = HEIGHT + legend_h
    plot_h = height - BOTTOM - legend_h - TOP
    values = [v for s in series.values() for v in s if v is not None] + [t for t, _ in bands]
    peak = 1.0 if percent else max([*values, 1e-9]) * 1.1
    out = [svg_open(WIDTH, height, label), _axis(plot_h, peak, percent)]
    if not points:
        out.append(f"<text x='{LEFT + 10}' y='{TOP + 20}' {FONT}>no decisions in this window</text></svg>")
        return "".join(out)
    step = (WIDTH - LEFT - 20) / max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + 5 + i * step

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * min(v, peak) / peak

    for k, (value, name) in enumerate(bands):  # labels staggered: close thresholds stay readable
        out.append(
            f"<line x1='{LEFT}' x2='{WIDTH - 10}' y1='{y(value):.1f}' y2='{y(value):.1f}' stroke='#c23b3b'"
            f" stroke-dasharray='4 3'/><text x='{WIDTH - 12 - 70 * k}' y='{y(value) - 3:.1f}'"
            f" text-anchor='end' {FONT}>{escape(name)}</text>"
        )
    for k, (name, values_) in enumerate(series.items()):
        colour = PALETTE[(k + 1) % len(PALETTE)]
        run: list[str] = []
        for i, v in enumerate(values_):
            if v is None:
                out.append(_polyline(run, colour))
                run = []
                continue
            run.append(f"{x(i):.1f},{y(v):.1f}")
            shown = f"{v * 100:.1f}%" if percent else f"{v:,.3f}".rstrip("0").rstrip(".")
            out.append(
                f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='2.5' fill='{colour}'>"
                f"<title>{escape(points[i])} · {escape(name)}: {shown}</title></circle>"
            )
        out.append(_polyline(run, colour))
    every = max(1, len(points) // 6)
    for i in range(0, len(points), every):
        out.append(
            f"<text x='{x(i):.1f}' y='{TOP + plot_h + 16:.1f}' text-anchor='middle' {FONT}>"
            f"{escape(points[i])}</text>"
        )
    out.append(_legend(list(series), height - legend_h - 6, offset=1))
    out.append("</svg>")
    return "".join(out)


def svg_bars(bars: Sequence[tuple[str, float]], label: str, *, percent: bool = False) -> str:
    """One bar per (label, value), in order; labels under the bars, thinned when crowded."""
    height = HEIGHT
    plot_h = height - BOTTOM - TOP
    peak = max([v for _, v in bars] + [1e-9])
    peak = 1.0 if percent else peak * 1.1
    out = [svg_open(WIDTH, height, label), _axis(plot_h, peak, percent)]
    if not bars:
        out.append(f"<text x='{LEFT + 10}' y='{TOP + 20}' {FONT}>no decisions in this window</text></svg>")
        return "".join(out)
    step = (WIDTH - LEFT - 10) / len(bars)
    every = max(1, len(bars) // 8)
    for i, (name, value) in enumerate(bars):
        h = plot_h * value / peak
        shown = f"{value * 100:.1f}%" if percent else f"{value:,.0f}"
        out.append(
            f"<rect x='{LEFT + i * step + 1:.1f}' y='{TOP + plot_h - h:.1f}' width='{max(step - 2, 1):.1f}'"
            f" height='{h:.1f}' fill='{PALETTE[1]}'><title>{escape(name)}: {shown}</title></rect>"
        )
        if i % every == 0:
            out.append(
                f"<text x='{LEFT + (i + 0.5) * step:.1f}' y='{TOP + plot_h + 16:.1f}' text-anchor='middle'"
                f" {FONT}>{escape(name)}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _axis(plot_h: float, peak: float, percent: bool) -> str:
    """Five grid lines from 0 to `peak`, labelled with as many decimals as small values need."""
    digits = 0 if percent or peak >= 20 else 1 if peak >= 2 else 2
    return svg_axis(LEFT, TOP, plot_h, WIDTH - 10, peak, percent, digits)


def _polyline(points: list[str], colour: str) -> str:
    if len(points) < 2:
        return ""
    return f"<polyline points='{' '.join(points)}' fill='none' stroke='{colour}' stroke-width='1.8'/>"


def _legend(names: list[str], y: float, offset: int = 0) -> str:
    out = []
    for k, name in enumerate(names):
        col, row = k % 3, k // 3
        x0, y0 = LEFT + col * 190, y + row * 14
        colour = PALETTE[(k + offset) % len(PALETTE)]
        out.append(f"<rect x='{x0}' y='{y0}' width='10' height='10' fill='{colour}'/>")
        out.append(f"<text x='{x0 + 14}' y='{y0 + 9}' {FONT}>{escape(name[:28])}</text>")
    return "".join(out)
