"""`credo bench [--quick] [--json FILE]`: Credo against its floor and a peer engine, every figure a ratio
of two things measured side by side in one run; `credo bench --compare A.json B.json` diffs two runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SECTION_NAMES = (
    "rules",
    "peer",
    "pipeline",
    "floor",
    "models",
    "batch",
    "grpc",
    "records",
    "memory",
    "monitor",
    "pii",
    "experiment",
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark against the floor and a peer engine (ratios)",
        description="Measure Credo against its floor and a peer engine (GoRules ZEN), side by side.",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes (under 3 minutes on 2 cores)")
    p.add_argument("--json", metavar="FILE", help="write the full report (ratios + raw figures) as JSON")
    p.add_argument("--policies", default="policies", help="policy directory (default policies)")
    p.add_argument("--models", default="models", help="model store directory (default models)")
    p.add_argument(
        "--only", action="append", choices=SECTION_NAMES, metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTION_NAMES)}",
    )  # fmt: skip
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="show the change of every ratio")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from engine.bench.report import compare_table, ratio_table

    console = Console(width=max(Console().width, 150))
    if args.compare:
        a_path, b_path = (Path(p) for p in args.compare)
        try:
            a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (a_path, b_path))
        except (OSError, ValueError) as exc:
            print(f"credo bench --compare: {exc}", file=sys.stderr)
            return 2
        console.print(compare_table(a, b, a_path.name, b_path.name))
        return 0
    from engine.bench.run import QUICK, run_bench

    if args.quick:
        console.print(
            f"[bold]--quick[/bold]: smaller sizes; memory over {QUICK.memory_decisions:,} decisions "
            f"(full: 1,000,000), batch over {QUICK.batch_applications:,} applications (full: 100,000)"
        )
    report = run_bench(
        args.quick, args.policies, args.models, args.only, progress=lambda m: console.print(m, style="dim")
    )
    console.print(ratio_table(report))
    console.print(
        f"{report['mode']} run, {report['seconds']:.0f} s, {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_average'][0]:.1f} at the end"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        console.print(f"wrote {args.json}")
    for section, error in report["errors"].items():
        console.print(f"[red]{section} failed:[/red] {error}", markup=True, highlight=False)
    return 1 if report["errors"] else 0
