"""The ratios of a `credo bench` run (each from two figures measured side by side in that run), their
targets, the rich table printed at the end, and `--compare A.json B.json`."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["RATIO_KEYS", "TARGETS", "Target", "compare_table", "compute_ratios", "ratio_table"]

RATIO_KEYS = (
    "decide_p50_vs_parts",
    "refer_vs_approve_p50",
    "varied_vs_repeated_p50",
    "decide_floor_vs_zen_floor",
    "rules_vs_handwritten",
    "rules_vs_zen",
    "grpc_p50_vs_echo",
    "grpc_throughput_vs_echo",
    "audit_log_latency_cost",
    "worker_share_min",
    "batch_vs_floor",
    "batch_scaling_2w",
    "rss_growth",
    "monitor_vs_handwritten",
    "monitor_rss_growth",
    "record_bytes",
    "pii_encryption_cost",
    "shadow_latency_cost",
)


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    value: float

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:g}"


TARGETS = {
    "decide_p50_vs_parts": Target("<=", 1.5),
    "refer_vs_approve_p50": Target("<=", 1.3),
    "decide_floor_vs_zen_floor": Target("<=", 2.0),
    "rules_vs_zen": Target("<=", 0.5),
    "grpc_p50_vs_echo": Target("<=", 1.5),
    "grpc_throughput_vs_echo": Target(">=", 0.6),
    "audit_log_latency_cost": Target("<=", 0.15),
    "worker_share_min": Target(">=", 0.35),
    "batch_vs_floor": Target(">=", 0.8),
    "batch_scaling_2w": Target(">=", 1.6),
    "rss_growth": Target("<=", 1.05),
    "monitor_vs_handwritten": Target("<=", 10.0),
    "monitor_rss_growth": Target("<=", 1.05),
    "pii_encryption_cost": Target("<=", 0.05),
    "shadow_latency_cost": Target("<=", 0.10),
}
# Every ratio is "Credo / its floor or peer" (or 2 workers / 1): lower is better except these.
HIGHER_IS_BETTER = {"grpc_throughput_vs_echo", "batch_vs_floor", "worker_share_min", "batch_scaling_2w"}


def _get(sections: Mapping[str, Any], *path: str) -> Any:
    node: Any = sections
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def compute_ratios(sections: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(ratios, how each was made) from the sections' raw figures; a ratio whose section is missing
    or failed is left out."""
    ratios: dict[str, float] = {}
    made: dict[str, str] = {}

    def put(key: str, num: Any, den: Any, how: str, minus_one: bool = False) -> None:
        if isinstance(num, int | float) and isinstance(den, int | float) and den > 0:
            ratios[key] = num / den - (1.0 if minus_one else 0.0)
            made[key] = how

    cl = _get(sections, "pipeline", "consumer_loan") or {}
    put(
        "decide_p50_vs_parts",
        cl.get("approve_p50_ms"),
        cl.get("floor_ms"),
        f"decide() APPROVE p50 {_ms(cl.get('approve_p50_ms'))} / "
        f"ONNX call + rule stages {_ms(cl.get('floor_ms'))}",
    )
    by_outcome = cl.get("by_outcome") or {}
    refer, approve = (by_outcome.get(o, {}).get("p50_ms") for o in ("REFER", "APPROVE"))
    put(
        "refer_vs_approve_p50",
        refer,
        approve,
        f"decide() REFER p50 {_ms(refer)} / APPROVE p50 {_ms(approve)}",
    )
    varied = _get(cl, "varied", "by_outcome", "APPROVE", "p50_ms")
    put(
        "varied_vs_repeated_p50",
        varied,
        approve,
        f"decide() APPROVE p50 over applicants no two alike {_ms(varied)} / over the policy's "
        f"repeated test inputs {_ms(approve)}",
    )
    floor = sections.get("floor") or {}
    put(
        "decide_floor_vs_zen_floor",
        floor.get("decide_us"),
        floor.get("zen_us"),
        f"decide() of a one-input policy {_us(floor.get('decide_us'))} / "
        f"ZenEngine.evaluate of an empty graph {_us(floor.get('zen_us'))}",
    )
    rules = sections.get("rules") or {}
    engine, default_us = rules.get("engine", "compiled"), rules.get("compiled_us")
    put(
        "rules_vs_handwritten",
        default_us,
        rules.get("handwritten_us"),
        f"eligibility on the {engine} evaluator {_us(default_us)} / hand-written Python "
        f"{_us(rules.get('handwritten_us'))} (durable_rules {_us(rules.get('durable_us'))}, "
        f"reference {_us(rules.get('reference_us'))})",
    )
    peer = sections.get("peer") or {}
    put(
        "rules_vs_zen",
        peer.get("credo_us"),
        peer.get("zen_us"),
        f"Credo rule stages {_us(peer.get('credo_us'))} / "
        f"ZenEngine.evaluate {_us(peer.get('zen_us'))} per decision",
    )
    rows = _get(sections, "grpc", "rows") or {}
    d1, e1 = rows.get("decide@1", {}), rows.get("echo@1", {})
    d16, e16, log16 = rows.get("decide@16", {}), rows.get("echo@16", {}), rows.get("decide@16+log", {})
    put(
        "grpc_p50_vs_echo",
        d1.get("p50_ms"),
        e1.get("p50_ms"),
        f"Decide p50 {_ms(d1.get('p50_ms'))} / echo p50 {_ms(e1.get('p50_ms'))}, 1 in flight",
    )
    put(
        "grpc_throughput_vs_echo",
        d16.get("rps"),
        e16.get("rps"),
        f"Decide {_rate(d16.get('rps'))} / echo {_rate(e16.get('rps'))}, 16 in flight",
    )
    put(
        "audit_log_latency_cost",
        log16.get("p50_ms"),
        d16.get("p50_ms"),
        f"Decide p50 with SQLite log {_ms(log16.get('p50_ms'))} / without {_ms(d16.get('p50_ms'))} - 1, "
        "16 in flight",
        minus_one=True,
    )
    answered = d16.get("worker_shares") or []
    put(
        "worker_share_min",
        d16.get("worker_share_min"),
        1.0,
        f"smallest worker's share of Decide calls at 16 in flight, {len(answered)} workers "
        f"({' / '.join(f'{s:.2f}' for s in answered)}) over {d16.get('channels', '?')} connections",
    )
    batch = sections.get("batch") or {}
    put(
        "batch_vs_floor",
        batch.get("credo_per_s"),
        batch.get("floor_per_s"),
        f"batch decider {_rate(batch.get('credo_per_s'), 'decisions/s')} / hand-written + native CatBoost "
        f"{_rate(batch.get('floor_per_s'), 'decisions/s')}, {batch.get('applications', '?')} applications",
    )
    scaling = batch.get("scaling") or {}
    put(
        "batch_scaling_2w",
        scaling.get("workers_2_per_s"),
        scaling.get("workers_1_per_s"),
        f"simulate on 2 local workers {_rate(scaling.get('workers_2_per_s'), 'rows/s')} / on 1 "
        f"{_rate(scaling.get('workers_1_per_s'), 'rows/s')}, {scaling.get('rows', '?')} rows",
    )
    memory = sections.get("memory") or {}
    put(
        "rss_growth",
        memory.get("rss_after"),
        memory.get("rss_before"),
        f"RSS {_mib(memory.get('rss_after'))} after {memory.get('decisions', '?'):,} decisions / "
        f"{_mib(memory.get('rss_before'))} before"
        if memory
        else "",
    )
    monitor = sections.get("monitor") or {}
    put(
        "monitor_vs_handwritten",
        monitor.get("handwritten_events_per_s"),
        monitor.get("credo_events_per_s"),
        f"hand-written correlation {_rate(monitor.get('handwritten_events_per_s'), 'events/s')} / "
        f"monitoring engine {_rate(monitor.get('credo_events_per_s'), 'events/s')}, "
        f"{monitor.get('events', '?'):,} events of the synthetic loan book"
        if monitor
        else "",
    )
    mem = monitor.get("memory") or {}
    put(
        "monitor_rss_growth",
        mem.get("rss_after"),
        mem.get("rss_before"),
        f"RSS {_mib(mem.get('rss_after'))} after {mem.get('events', '?'):,} loan events (loans opening and "
        f"closing) / {_mib(mem.get('rss_before'))} before"
        if mem
        else "",
    )
    records = sections.get("records") or {}
    if isinstance(records.get("record_bytes"), int | float):  # a size, not a ratio: lower is better
        ratios["record_bytes"] = float(records["record_bytes"])
        made["record_bytes"] = (
            f"mean canonical audit record, bytes, over {records.get('records')} decisions of the shipped"
            " policies' test inputs"
        )
    pii = sections.get("pii") or {}
    put(
        "pii_encryption_cost",
        pii.get("seal_p50_ms"),
        pii.get("decide_p50_ms"),
        f"sealing {pii.get('sealed_fields', '?')} personal fields of a record p50 "
        f"{_ms(pii.get('seal_p50_ms'))} / "
        f"decide() p50 with its SQLite audit record {_ms(pii.get('decide_p50_ms'))} "
        f"(for a subject seen the first time, its data key written: {_ms(pii.get('new_subject_p50_ms'))})"
        if pii
        else "",
    )
    shadow = sections.get("experiment") or {}
    put(
        "shadow_latency_cost",
        shadow.get("shadow_p50_ms"),
        shadow.get("p50_ms"),
        f"decide() p50 with a shadow policy {_ms(shadow.get('shadow_p50_ms'))} / without "
        f"{_ms(shadow.get('p50_ms'))} - 1, 1 in flight, "
        f"{shadow.get('shadows_recorded', '?')} shadows recorded",
        minus_one=True,
    )
    return ratios, made


def _ms(v: Any) -> str:
    return f"{v:.3f} ms" if isinstance(v, int | float) else "?"


def _us(v: Any) -> str:
    return f"{v:.1f} µs" if isinstance(v, int | float) else "?"


def _rate(v: Any, unit: str = "calls/s") -> str:
    return f"{v:,.0f} {unit}" if isinstance(v, int | float) else "?"


def _mib(v: Any) -> str:
    return f"{v / 2**20:.1f} MiB" if isinstance(v, int | float) else "?"


def _status(key: str, value: float | None) -> str:
    target = TARGETS.get(key)
    if target is None or value is None:
        return ""
    return "[green]met[/green]" if target.met(value) else "[red]missed[/red]"


def ratio_table(report: Mapping[str, Any]) -> Table:
    ratios, made = report.get("ratios", {}), report.get("measured_as", {})
    table = Table(title=f"credo bench ({report.get('mode', '?')})", title_justify="left")
    for column in ("ratio", "value", "target", "", "measured side by side"):
        table.add_column(column, overflow="fold")
    for key in RATIO_KEYS:
        value = ratios.get(key)
        table.add_row(
            key,
            "-" if value is None else f"{value:.3f}",
            str(TARGETS.get(key, "")),
            _status(key, value) if value is not None else "[red]not measured[/red]",
            made.get(key, (report.get("errors") or {}).get(_section_of(key), "")),
        )
    return table


def _section_of(key: str) -> str:
    return {
        "decide_p50_vs_parts": "pipeline", "refer_vs_approve_p50": "pipeline",
        "varied_vs_repeated_p50": "pipeline",
        "decide_floor_vs_zen_floor": "floor", "rules_vs_handwritten": "rules", "rules_vs_zen": "peer",
        "grpc_p50_vs_echo": "grpc", "grpc_throughput_vs_echo": "grpc", "audit_log_latency_cost": "grpc",
        "worker_share_min": "grpc",
        "batch_vs_floor": "batch", "batch_scaling_2w": "batch", "rss_growth": "memory",
        "monitor_vs_handwritten": "monitor", "monitor_rss_growth": "monitor", "record_bytes": "records",
        "shadow_latency_cost": "experiment",
    }.get(key, key)  # fmt: skip


def compare_table(a: Mapping[str, Any], b: Mapping[str, Any], a_name: str, b_name: str) -> Table:
    """Every ratio of either run: both values, the change, and whether it moved the right way."""
    ra, rb = a.get("ratios", {}), b.get("ratios", {})
    keys = [k for k in RATIO_KEYS if k in ra or k in rb]
    keys += sorted(k for k in set(ra) | set(rb) if k not in RATIO_KEYS)
    table = Table(title=f"credo bench --compare {a_name} {b_name}", title_justify="left")
    for column in ("ratio", a_name, b_name, "change", "", "target"):
        table.add_column(column)
    for key in keys:
        va, vb = ra.get(key), rb.get(key)
        if isinstance(va, int | float) and isinstance(vb, int | float):
            delta = vb - va
            pct = f" ({100 * delta / va:+.1f}%)" if va else ""
            better = delta < 0 if key not in HIGHER_IS_BETTER else delta > 0
            verdict = "" if delta == 0 else ("[green]better[/green]" if better else "[red]worse[/red]")
            change = f"{delta:+.3f}{pct}"
        else:
            change, verdict = "-", ""
        table.add_row(key, _fmt(va), _fmt(vb), change, verdict, str(TARGETS.get(key, "")))
    return table


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def render(table: Table, width: int = 160) -> str:
    """The table as plain text (for README and tests)."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(table)
    return console.export_text()
