"""The champion/challenger report: every recorded decision of a window grouped by policy and arm
(the champion, each challenger, each shadow), with volumes, approval rate, average limit and rate,
expected loss, and, for shadows, the outcome swaps against the answered decision; 95% confidence
intervals for the approval rate (Wilson) and the average limit (normal approximation)."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.audit.store import AuditStore
from engine.batch.whatif import _archived_lgd, old_decision

__all__ = ["experiment_report", "render_html", "write_report"]

Z95 = 1.959963984540054


@dataclass
class ArmTally:
    count: int = 0
    approved: int = 0
    limits: list[Decimal] = field(default_factory=list)
    rates: list[Decimal] = field(default_factory=list)
    loss: Decimal = Decimal(0)
    swaps: Counter[str] = field(default_factory=Counter)  # shadows: answered -> shadow outcome

    def to_dict(self) -> dict[str, Any]:
        low, high = wilson(self.approved, self.count)
        out: dict[str, Any] = {
            "decisions": self.count,
            "approved": self.approved,
            "approval_rate": round(self.approved / self.count, 6) if self.count else None,
            "approval_rate_ci95": [round(low, 6), round(high, 6)] if self.count else None,
            "avg_limit": _mean(self.limits, "0.01"),
            "avg_limit_ci95": _mean_ci(self.limits),
            "avg_rate": _mean(self.rates, "0.000001"),
            "expected_loss": str(self.loss.quantize(Decimal("0.01"))),
        }
        if self.swaps:
            out["swaps"] = dict(sorted(self.swaps.items()))
        return out


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval of a proportion at 95%."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean(values: list[Decimal], places: str) -> str | None:
    return str((sum(values, Decimal(0)) / len(values)).quantize(Decimal(places))) if values else None


def _mean_ci(values: list[Decimal]) -> list[str] | None:
    if len(values) < 2:
        return None
    floats = [float(v) for v in values]
    mean = sum(floats) / len(floats)
    sd = math.sqrt(sum((x - mean) ** 2 for x in floats) / (len(floats) - 1))
    half = Z95 * sd / math.sqrt(len(floats))
    return [f"{mean - half:.2f}", f"{mean + half:.2f}"]


def experiment_report(
    store: AuditStore, since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """Tally every record of [since, until) by policy and arm; records outside any experiment are
    counted apart, so the arms' volumes add up to the store's."""
    arms: dict[str, dict[str, ArmTally]] = {}
    answered: dict[str, str] = {}  # decision_id -> outcome of the answered decisions
    shadows: list[tuple[str, str, str, str]] = []  # (policy, arm, answered decision id, outcome)
    lgd: dict[str, Decimal | None] = {}
    total = outside = 0
    for record in store.iter_records(since, until):
        total += 1
        arm = str(record.decision.get("arm", ""))
        if not arm:
            outside += 1
            continue
        figures = old_decision(record)
        name = str(record.policy.get("name", ""))
        tally = arms.setdefault(name, {}).setdefault(arm, ArmTally())
        tally.count += 1
        if arm.startswith("shadow:"):
            shadows.append((name, arm, str(record.extra.get("shadow_of", "")), figures.outcome))
        else:
            answered[record.decision_id] = figures.outcome
        if figures.outcome != "APPROVE":
            continue
        tally.approved += 1
        if figures.limit is not None:
            tally.limits.append(figures.limit)
        if figures.rate is not None:
            tally.rates.append(figures.rate)
        if figures.policy_sha not in lgd:
            lgd[figures.policy_sha] = _archived_lgd(store, figures.policy_sha)
        loss_given = lgd[figures.policy_sha]
        if figures.pd is not None and loss_given is not None and figures.limit is not None:
            tally.loss += figures.pd * loss_given * figures.limit
    for name, arm, of, outcome in shadows:
        before = answered.get(of)
        if before is not None:
            arms[name][arm].swaps[f"{before}->{outcome}"] += 1
    return {
        "window": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
        "records": total,
        "outside_experiments": outside,
        "policies": {
            name: {arm: t.to_dict() for arm, t in sorted(by_arm.items())}
            for name, by_arm in sorted(arms.items())
        },
    }


def render_html(report: dict[str, Any]) -> str:
    rows = []
    for name, by_arm in report["policies"].items():
        for arm, t in by_arm.items():
            ci = t["approval_rate_ci95"] or ["", ""]
            cells = [
                name,
                arm,
                t["decisions"],
                t["approval_rate"],
                f"{ci[0]} – {ci[1]}",
                t["avg_limit"],
                t["avg_rate"],
                t["expected_loss"],
                ", ".join(f"{k}: {v}" for k, v in (t.get("swaps") or {}).items()),
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "policy",
            "arm",
            "decisions",
            "approval rate",
            "95% CI",
            "avg limit",
            "avg rate",
            "expected loss",
            "shadow swaps",
        )
    )
    window = report["window"]
    return (
        "<!doctype html><meta charset=utf-8><title>Credo experiment report</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd}</style>"
        f"<h1>Champion / challenger</h1><p>{report['records']} records from {window['since'] or 'the start'}"
        f" to {window['until'] or 'now'}; {report['outside_experiments']} outside any experiment.</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def write_report(report: dict[str, Any], directory: Path | str) -> tuple[Path, Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "experiment.json", out / "experiment.html"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path, json_path
