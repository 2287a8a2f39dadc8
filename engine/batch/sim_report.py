"""The simulation report: `summary.json` and one self-contained `report.html` (inline SVG, no scripts,
fonts or network) with every arm side by side: approval by grade, expected loss and profit, the swap
matrices against the champion's baseline, and tables by grade, segment and product."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from engine.batch.report import FONT, TOP, svg_axis, svg_histogram, svg_open, svg_swap_matrix

__all__ = ["render_simulation", "svg_series", "write_simulation_report"]

PALETTE = ("#8c96a8", "#2a6fdb", "#d9822b", "#c23b3b", "#3a9d5d", "#7d4fb3", "#1f9bb5")
COLUMNS = (
    ("count", "rows"),
    ("approval_rate", "approval"),
    ("booked_volume", "booked volume"),
    ("avg_limit", "avg limit"),
    ("avg_rate", "avg rate"),
    ("avg_pd", "avg PD"),
    ("expected_loss", "expected loss"),
    ("expected_profit", "expected profit"),
    ("loss_rate", "loss rate"),
)


def write_simulation_report(
    summary: Mapping[str, Any], timing: Mapping[str, Any], directory: Path | str
) -> tuple[Path, Path]:
    """Write `summary.json` (the figures, equal for equal inputs) and `report.html`; return both."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    html_path = out / "report.html"
    html_path.write_text(render_simulation(summary, timing), encoding="utf-8")
    return html_path, json_path


def render_simulation(summary: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
    champion = summary["policies"]["champion"]
    arms = [a["name"] for a in summary["arms"]]
    results = summary["results"]
    currency = str(summary.get("currency") or "")
    mode = "Pre-approval" if summary["mode"] == "preapproval" else "Simulation"
    title = f"{mode}: {champion['name']} {champion['version']}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p class='meta'>"
        + escape(
            f"{summary['data']['rows']:,} rows of {summary['data']['file']} · policy sha256 "
            f"{champion['sha256'][:12]} · {timing.get('pool', '')} · {timing.get('seconds')} s "
            f"({timing.get('rows_per_second')} rows/s)"
        )
        + "</p>",
    ]
    if "campaign" in summary:
        parts += ["<h2>Campaign</h2>", _campaign(summary["campaign"])]
    parts += ["<h2>Side by side</h2>", _table({a: results[a]["overall"] for a in arms})]
    parts += ["<h2>Arms</h2>", _arms(summary["arms"], summary["policies"])]
    grades = sorted({g for a in arms for g in results[a]["by_grade"]})
    approval = {
        g: {a: _float(results[a]["by_grade"].get(g, {}).get("approval_rate")) for a in arms} for g in grades
    }
    money = {  # in millions, so the axis labels stay short at portfolio scale
        figure: {a: _float(results[a]["overall"][figure]) / 1e6 for a in arms}
        for figure in ("expected_loss", "expected_profit", "booked_volume")
    }
    parts += [
        "<div class='plots'>",
        "<figure><figcaption>Approval rate by grade</figcaption>",
        svg_series(approval, arms, percent=True, label="approval by grade"),
        "</figure>",
        f"<figure><figcaption>Booked volume, expected loss and expected profit ({escape(currency)} millions)"
        "</figcaption>",
        svg_series(money, arms, percent=False, label="economics by arm"),
        "</figure>",
    ]
    points = summary.get("score_points") or {}
    if len(arms) > 1 and points:
        other = arms[-1]
        parts += [
            f"<figure><figcaption>Score points: {escape(arms[0])} vs {escape(other)}</figcaption>",
            svg_histogram(
                _ints(points.get(arms[0], {})), _ints(points.get(other, {})), labels=(arms[0], other)
            ),
            "</figure>",
        ]
    for name, swap in (summary.get("swap_matrices") or {}).items():
        parts += [
            f"<figure><figcaption>Outcome swaps: {escape(swap['against'])} → {escape(name)}</figcaption>",
            svg_swap_matrix(swap["matrix"]),
            "</figure>",
        ]
    parts.append("</div>")
    for key, heading in (("by_grade", "grade"), ("by_segment", "segment"), ("by_product", "product")):
        parts.append(f"<h2>By {heading}</h2>")
        for arm in arms:
            parts += [f"<h3>{escape(arm)}</h3>", _table(results[arm][key])]
    errors = {a: results[a]["errors"] for a in arms if results[a]["errors"]}
    if errors:
        parts.append("<p>" + escape(f"not decided (by error code): {json.dumps(errors)}") + "</p>")
    parts += ["<h2>Method</h2>", _pairs(summary.get("method") or {}), "</body></html>"]
    return "\n".join(parts)


def svg_series(
    groups: Mapping[str, Mapping[str, float]], series: Sequence[str], percent: bool, label: str
) -> str:
    """Grouped bars: one group per key of `groups`, one bar per series (arm), a legend below."""
    names = list(groups) or ["-"]
    per = max(1, len(series))
    width = max(360, 60 + (14 * per + 24) * len(names))
    legend_h = 14 * per + 6
    height, left, bottom = 236 + legend_h, 60, 30 + legend_h
    plot_h = height - bottom - TOP
    peak = 1.0 if percent else max([v for g in groups.values() for v in g.values()] + [1e-9])
    out = [svg_open(width, height, label), svg_axis(left, TOP, plot_h, width - 10, peak, percent)]
    step = (width - left - 10) / len(names)
    bar = step * 0.8 / per
    for i, name in enumerate(names):
        x0 = left + i * step + step * 0.1
        for k, arm in enumerate(series):
            value = float(groups.get(name, {}).get(arm, 0.0))
            h = plot_h * max(value, 0.0) / peak
            text = f"{value * 100:.1f}%" if percent else f"{value:,.0f}"
            out.append(
                f"<rect x='{x0 + k * bar:.1f}' y='{TOP + plot_h - h:.1f}' width='{max(bar - 1, 1):.1f}'"
                f" height='{h:.1f}' fill='{PALETTE[k % len(PALETTE)]}'>"
                f"<title>{escape(name)} · {escape(arm)}: {text}</title></rect>"
            )
        out.append(
            f"<text x='{x0 + step * 0.4:.1f}' y='{TOP + plot_h + 16:.1f}' text-anchor='middle' {FONT}>"
            f"{escape(name)}</text>"
        )
    for k, arm in enumerate(series):
        y = height - legend_h + 4 + 14 * k
        out.append(f"<rect x='{left}' y='{y}' width='10' height='10' fill='{PALETTE[k % len(PALETTE)]}'/>")
        out.append(f"<text x='{left + 14}' y='{y + 9}' {FONT}>{escape(arm)}</text>")
    out.append("</svg>")
    return "".join(out)


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _ints(counts: Mapping[str, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in counts.items()}


def _table(groups: Mapping[str, Mapping[str, Any]]) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{t}</th>" for _, t in COLUMNS) + "<th>outcomes</th></tr>"
    rows = []
    for name, tally in groups.items():
        cells = []
        for key, _ in COLUMNS:
            value = tally.get(key)
            if key == "approval_rate" and value is not None:
                value = f"{float(value) * 100:.1f}%"
            elif key == "count" and value is not None:
                value = f"{value:,}"
            cells.append(f"<td>{escape('-' if value is None else str(value))}</td>")
        outcomes = " ".join(f"{k[0]}:{v}" for k, v in (tally.get("outcomes") or {}).items() if v)
        cells.append(f"<td>{escape(outcomes)}</td>")
        rows.append(f"<tr><th>{escape(str(name))}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _arms(arms: Sequence[Mapping[str, Any]], policies: Mapping[str, Any]) -> str:
    rows = []
    for arm in arms:
        policy = policies.get(arm["policy"]) or {}
        shocks = (
            "; ".join(f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in arm["shocks"].items()) or "none"
        )
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{escape(str(v))}</td>"
                for v in (
                    arm["name"],
                    f"{arm['policy']} {policy.get('name', '')} {policy.get('version', '')}",
                    arm["description"],
                    shocks,
                )
            )
            + "</tr>"
        )
    head = "<tr><th>arm</th><th>policy</th><th>scenario</th><th>shocks</th></tr>"
    return f"<table class='left'>{head}{''.join(rows)}</table>"


def _campaign(campaign: Mapping[str, Any]) -> str:
    flat = {k: v for k, v in campaign.items() if k != "by_product"}
    products = campaign.get("by_product") or {}
    table = _pairs(flat)
    if products:
        head = "<tr><th>product</th><th>customers</th><th>credit offered</th><th>expected profit</th></tr>"
        body = "".join(
            f"<tr><th>{escape(name)}</th><td>{p['customers']:,}</td><td>{escape(p['credit_offered'])}</td>"
            f"<td>{escape(p['expected_profit'])}</td></tr>"
            for name, p in products.items()
        )
        table += f"<table>{head}{body}</table>"
    return table


def _pairs(values: Mapping[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in values.items()
    )
    return f"<table class='left'>{body}</table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}h3{font-size:1em}.meta{color:#555}
table{border-collapse:collapse;font-size:.85em;margin-bottom:1em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
table.left td,table.left th{text-align:left}th{background:#f5f5f5}
.plots{display:flex;flex-wrap:wrap;gap:2em}figure{margin:0}figcaption{font-weight:600;margin-bottom:.4em}
"""
