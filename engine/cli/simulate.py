"""`credo simulate POLICY --data FILE [--challenger POLICY2] [--scenario stress.yaml] --report DIR`:
a population decided on a policy (and a challenger, and under stress scenarios) side by side;
`--mode preapproval`: the best offer the policy would make each customer today.

Exit codes: 0 done, 2 cannot run (bad arguments, a policy or scenario that does not load, no data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.cli.options import print_error
from engine.errors import CredoError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="decide a population (Parquet, CSV, JSON lines) on a policy: simulation, stress, pre-approval",
        description="credo simulate POLICY --data FILE [--challenger POLICY2] [--scenario stress.yaml]"
        " --report DIR",
    )
    parser.add_argument("policy", help="a policy name (under --policies), folder or file")
    parser.add_argument("--data", type=Path, required=True, help="*.parquet, *.csv or *.jsonl")
    parser.add_argument("--challenger", help="a second policy decided on the same rows")
    parser.add_argument("--scenario", type=Path, help="a stress scenario file (YAML)")
    parser.add_argument("--mode", choices=["simulate", "preapproval"], default="simulate")
    parser.add_argument("--report", type=Path, help="folder for report.html, summary.json and rows-*.parquet")
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="default: policies")
    parser.add_argument("--models", type=Path, default=Path("models"), help="default: models")
    parser.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    parser.add_argument("--cluster", help="tcp://HOST:8786 (a Dask scheduler) or local:N")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per task (default: 1000)")
    parser.add_argument("--scorer", choices=["onnx", "native"], default="onnx")
    parser.add_argument("--id-field", help="an input path copied into the rows (e.g. applicant.id_number)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def policy_file(name: str, policies: Path) -> Path:
    """A policy given by name (policies/NAME/policy.yaml), folder or file."""
    path = Path(name)
    if path.is_file():
        return path
    if (path / "policy.yaml").is_file():
        return path / "policy.yaml"
    by_name = policies / name / "policy.yaml"
    if by_name.is_file():
        return by_name
    raise CredoError(
        f"no policy {name!r} (not a file, a folder with policy.yaml, or a name under {policies})"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from engine.batch.output import RowWriter
    from engine.batch.pool import open_pool
    from engine.batch.sim_report import write_simulation_report
    from engine.batch.simulate import SimulationOptions, simulate, total_rows

    console = Console(stderr=True)
    try:
        options = SimulationOptions(
            policy=policy_file(args.policy, args.policies),
            data=args.data,
            challenger=policy_file(args.challenger, args.policies) if args.challenger else None,
            scenarios=args.scenario,
            models_dir=args.models,
            mode=args.mode,
            chunk=args.chunk,
            scorer=args.scorer,
            id_field=args.id_field,
        )
        total = total_rows(options)
        pool = open_pool(args.workers, args.cluster)
    except CredoError as exc:
        print(f"credo simulate: {exc}", file=sys.stderr)
        return 2
    writer = RowWriter(args.report, with_ids=bool(args.id_field)) if args.report else None
    columns = (
        TextColumn(args.mode),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(args.mode, total=total, rate="-")

            def advance(n: int) -> None:
                progress.advance(task, n)
                state = progress.tasks[task]
                elapsed = state.elapsed or 0.0
                progress.update(task, rate=f"{state.completed / elapsed:,.0f}" if elapsed > 0 else "-")

            result = simulate(options, pool, progress=advance, rows_sink=writer)
    except CredoError as exc:
        print_error("simulate", exc)
        return 2
    finally:
        pool.close()
        if writer is not None:
            writer.close()
    summary, timing = result.summary(), result.timing()
    if args.report:
        html, js = write_simulation_report(summary, timing, args.report)
        console.print(f"report: {html}\nsummary: {js}\nrows: {args.report}/rows-*.parquet")
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_summary(summary, timing)
    return 0


def print_summary(summary: dict[str, Any], timing: dict[str, Any]) -> None:
    print(
        f"{summary['data']['rows']:,} rows in {timing['seconds']} s ({timing['rows_per_second']} rows/s,"
        f" {timing['pool']})"
    )
    print(f"{'arm':<20}{'approval':>10}{'booked':>18}{'exp. loss':>16}{'exp. profit':>18}")
    for name, result in summary["results"].items():
        overall = result["overall"]
        rate = overall["approval_rate"]
        shown = "-" if rate is None else f"{rate * 100:.1f}%"
        print(
            f"{name:<20}{shown:>10}{overall['booked_volume']:>18}{overall['expected_loss']:>16}"
            f"{overall['expected_profit']:>18}"
        )
    if "campaign" in summary:
        campaign = summary["campaign"]
        print(
            f"campaign: {campaign['pre_approved']:,} of {campaign['customers']:,} customers pre-approved,"
            f" credit offered {campaign['credit_offered']}, expected profit {campaign['expected_profit']}"
        )
