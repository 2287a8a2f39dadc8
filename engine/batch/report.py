"""The what-if report: a JSON summary and one self-contained HTML page (inline SVG drawn here, no
scripts, fonts or CDNs) with the score distribution, approval by grade and the outcome swap matrix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

__all__ = [
    "FONT",
    "TOP",
    "svg_axis",
    "svg_bars",
    "svg_histogram",
    "svg_open",
    "svg_swap_matrix",
    "write_report",
]

OLD_COLOUR = "#8c96a8"
NEW_COLOUR = "#2a6fdb"
FONT = "font-family='system-ui, sans-serif' font-size='11'"
TOP = 36  # plot area starts below the legend


def write_report(summary: Mapping[str, Any], directory: Path | str) -> tuple[Path, Path]:
    """Write `summary.json` and `report.html` into `directory` (created); return both paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    html_path = out / "report.html"
    html_path.write_text(render_html(summary), encoding="utf-8")
    return html_path, json_path


def render_html(summary: Mapping[str, Any]) -> str:
    policy = summary.get("policy") or {}
    model = summary.get("model") or {}
    overall = summary.get("overall") or {}
    by_grade = summary.get("by_grade") or {}
    points = summary.get("score_points") or {}
    title = f"What-if: {policy.get('name', '?')} {policy.get('version', '')}"
    approval = {
        grade: (float(t.get("approval_rate_old") or 0), float(t.get("approval_rate_new") or 0))
        for grade, t in by_grade.items()
    }
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p class='meta'>"
        + escape(
            f"policy sha256 {policy.get('sha256', '')[:12]} · model {model.get('name', '-')} "
            f"{model.get('version', '')} · window {summary['window']['since'] or 'start'} → "
            f"{summary['window']['until'] or 'now'} · {summary['decisions']:,} decisions in "
            f"{summary['seconds']} s ({summary['decisions_per_second']} /s)"
        )
        + "</p>",
        "<h2>Overall</h2>",
        _tally_table({"all decisions": overall}),
        "<div class='plots'>",
        "<figure><figcaption>Outcome swaps (recorded → new)</figcaption>",
        svg_swap_matrix(summary["swap_matrix"]),
        "</figure>",
        "<figure><figcaption>Approval rate by recorded grade</figcaption>",
        svg_bars(approval, percent=True),
        "</figure>",
        "<figure><figcaption>Score distribution (points)</figcaption>",
        svg_histogram(_ints(points.get("old", {})), _ints(points.get("new", {}))),
        "</figure></div>",
        "<h2>By recorded grade</h2>",
        _tally_table(by_grade),
        "<h2>By recorded segment</h2>",
        _tally_table(summary.get("by_segment") or {}),
        "<h2>Method</h2>",
        "<table>"
        + "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
            for k, v in (summary.get("method") or {}).items()
        )
        + "</table>",
    ]
    if summary.get("errors") or summary.get("skipped"):
        parts.append(
            "<p>"
            + escape(
                f"not decided by the new policy: {summary.get('errors')}; skipped: {summary.get('skipped')}"
            )
            + "</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _ints(counts: Mapping[str, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in counts.items()}


def _tally_table(groups: Mapping[str, Mapping[str, Any]]) -> str:
    columns = [
        ("count", "decisions"),
        ("approval_rate", "approval rate"),
        ("avg_limit", "avg limit"),
        ("avg_rate", "avg rate"),
        ("expected_loss", "expected loss"),
    ]
    head = "<tr><th></th>" + "".join(f"<th colspan='{1 if k == 'count' else 2}'>{t}</th>" for k, t in columns)
    head += "</tr><tr><th></th><th></th>" + "<th>old</th><th>new</th>" * (len(columns) - 1) + "</tr>"
    rows = []
    for name, tally in groups.items():
        cells = [f"<td>{tally.get('count', 0):,}</td>"]
        for key, _ in columns[1:]:
            for side in ("old", "new"):
                value = tally.get(f"{key}_{side}")
                if key == "approval_rate" and value is not None:
                    value = f"{float(value) * 100:.1f}%"
                cells.append(f"<td>{escape('-' if value is None else str(value))}</td>")
        rows.append(f"<tr><th>{escape(str(name))}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def svg_swap_matrix(matrix: Mapping[str, Mapping[str, int]]) -> str:
    """A heat map: rows recorded outcome, columns new outcome, each cell its count."""
    labels = [k for k in matrix if any(matrix[k].values()) or any(matrix[r].get(k, 0) for r in matrix)]
    labels = labels or list(matrix)
    cell, left, top = 70, 80, 40
    size_w, size_h = left + cell * len(labels) + 10, top + cell * len(labels) + 10
    peak = max([v for row in matrix.values() for v in row.values()] + [1])
    out = [svg_open(size_w, size_h, "outcome swap matrix")]
    out.append(f"<text x='{left + cell * len(labels) / 2}' y='12' text-anchor='middle' {FONT}>new</text>")
    for j, label in enumerate(labels):
        x = left + j * cell + cell / 2
        out.append(f"<text x='{x}' y='{top - 8}' text-anchor='middle' {FONT}>{escape(label)}</text>")
    for i, row in enumerate(labels):
        y = top + i * cell
        out.append(
            f"<text x='{left - 6}' y='{y + cell / 2 + 4}' text-anchor='end' {FONT}>{escape(row)}</text>"
        )
        for j, col in enumerate(labels):
            count = int(matrix.get(row, {}).get(col, 0))
            shade = 0.08 + 0.85 * (count / peak) if count else 0.0
            fill = NEW_COLOUR if row != col else OLD_COLOUR
            out.append(
                f"<rect x='{left + j * cell}' y='{y}' width='{cell - 2}' height='{cell - 2}' fill='{fill}'"
                f" fill-opacity='{shade:.3f}' stroke='#ccc'><title>{escape(row)} → {escape(col)}: {count}"
                "</title></rect>"
            )
            out.append(
                f"<text x='{left + j * cell + cell / 2 - 1}' y='{y + cell / 2 + 4}' text-anchor='middle'"
                f" {FONT}>{count:,}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def svg_bars(groups: Mapping[str, tuple[float, float]], percent: bool = False) -> str:
    """Grouped bars, old (grey) and new (blue) per group."""
    names = list(groups) or ["-"]
    width, height, left, bottom = max(320, 60 + 56 * len(names)), 236, 44, 30
    plot_h = height - bottom - TOP
    peak = max([v for pair in groups.values() for v in pair] + [1e-9])
    peak = 1.0 if percent else peak
    out = [svg_open(width, height, "approval by grade")]
    out.append(svg_axis(left, TOP, plot_h, width - 10, peak, percent))
    step = (width - left - 10) / len(names)
    for i, name in enumerate(names):
        old, new = groups.get(name, (0.0, 0.0))
        x = left + i * step + step * 0.15
        bar = step * 0.33
        for k, (value, colour) in enumerate(((old, OLD_COLOUR), (new, NEW_COLOUR))):
            h = plot_h * (value / peak)
            label = f"{value * 100:.1f}%" if percent else f"{value:g}"
            out.append(
                f"<rect x='{x + k * bar:.1f}' y='{TOP + plot_h - h:.1f}' width='{bar - 2:.1f}'"
                f" height='{h:.1f}'"
                f" fill='{colour}'><title>{escape(name)} {'old' if k == 0 else 'new'}: {label}</title></rect>"
            )
        out.append(
            f"<text x='{x + bar:.1f}' y='{height - 12}' text-anchor='middle' {FONT}>{escape(name)}</text>"
        )
    out.append(_legend(width - 120, 8))
    out.append("</svg>")
    return "".join(out)


def svg_histogram(
    old: Mapping[int, int],
    new: Mapping[int, int],
    bins: int = 30,
    labels: tuple[str, str] = ("recorded", "new policy"),
) -> str:
    """Score points histograms, old (grey) and new (blue), on shared bins."""
    values = list(old) + list(new)
    width, height, left, bottom = 520, 236, 44, 30
    out = [svg_open(width, height, "score distribution")]
    if not values:
        out.append(f"<text x='20' y='40' {FONT}>no scored decisions</text></svg>")
        return "".join(out)
    low, high = min(values), max(values) + 1
    step = max(1, -(-(high - low) // bins))
    edges = list(range(low, high + step, step))[: bins + 1]
    count = len(edges) - 1 or 1

    def binned(counts: Mapping[int, int]) -> list[int]:
        out_bins = [0] * count
        for points, n in counts.items():
            out_bins[min((points - low) // step, count - 1)] += n
        return out_bins

    old_bins, new_bins = binned(old), binned(new)
    peak = max(old_bins + new_bins + [1])
    plot_h, plot_w = height - bottom - TOP, width - left - 10
    out.append(svg_axis(left, TOP, plot_h, width - 10, float(peak), False))
    bar = plot_w / count
    for series, colour, opacity in ((old_bins, OLD_COLOUR, 0.7), (new_bins, NEW_COLOUR, 0.55)):
        for i, n in enumerate(series):
            h = plot_h * n / peak
            lo = low + i * step
            out.append(
                f"<rect x='{left + i * bar:.1f}' y='{TOP + plot_h - h:.1f}' width='{max(bar - 1, 1):.1f}'"
                f" height='{h:.1f}' fill='{colour}' fill-opacity='{opacity}'>"
                f"<title>{lo}–{lo + step - 1}: {n}</title></rect>"
            )
    for i in range(0, count + 1, max(1, count // 6)):
        x = left + i * bar
        out.append(f"<text x='{x:.1f}' y='{height - 12}' text-anchor='middle' {FONT}>{low + i * step}</text>")
    out.append(_legend(width - 120, 8, labels))
    out.append("</svg>")
    return "".join(out)


def svg_open(width: float, height: float, label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}'"
        f" viewBox='0 0 {width:.0f} {height:.0f}' role='img' aria-label='{escape(label)}'>"
    )


def svg_axis(
    left: float, top: float, plot_h: float, right: float, peak: float, percent: bool, digits: int = 0
) -> str:
    """Five grid lines from 0 to `peak`, labelled as percentages or with `digits` decimals."""
    lines = []
    for k in range(5):
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        label = f"{value * 100:.0f}%" if percent else f"{value:,.{digits}f}"
        lines.append(f"<line x1='{left}' x2='{right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e3e3e3'/>")
        lines.append(f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end' {FONT}>{label}</text>")
    return "".join(lines)


def _legend(x: float, y: float, labels: tuple[str, str] = ("recorded", "new policy")) -> str:
    items: Sequence[tuple[str, str]] = ((labels[0], OLD_COLOUR), (labels[1], NEW_COLOUR))
    out = []
    for i, (label, colour) in enumerate(items):
        out.append(f"<rect x='{x}' y='{y + i * 14}' width='10' height='10' fill='{colour}'/>")
        out.append(f"<text x='{x + 14}' y='{y + i * 14 + 9}' {FONT}>{label}</text>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}.meta{color:#555}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}.plots{display:flex;flex-wrap:wrap;gap:2em}figure{margin:0}
figcaption{font-weight:600;margin-bottom:.4em}
"""
