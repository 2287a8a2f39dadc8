"""`credo replay DECISION_ID`: re-run one recorded decision on its archived policy and model, print
MATCH or a field-level diff; `credo replay --since T1 --until T2 --policy NEW.yaml`: what-if over history.

Exit codes: 0 MATCH (or what-if done), 1 a difference, 2 cannot replay (archive missing, bad
arguments, unknown decision, store unavailable), 3 PARTIAL (personal fields not restored without
the key, or erased; everything else matched).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.cli.options import add_rule_engine_option, print_error
from engine.errors import CredoError, PolicyError
from engine.rules import DEFAULT_ENGINE
from engine.rules import evaluator as rule_engine

DEFAULT_STORE = "sqlite:///credo-audit.db"


def register(subparsers: Any) -> None:
    from engine.cli.audit import parse_time

    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded decision (MATCH or diff), or history on a new policy (what-if)",
        description="credo replay DECISION_ID | credo replay --since T1 --until T2 --policy NEW.yaml",
    )
    parser.add_argument("decision_id", nargs="?", help="the decision to replay exactly")
    parser.add_argument(
        "--store",
        default=os.environ.get("CREDO_AUDIT_STORE", DEFAULT_STORE),
        help="sqlite:///PATH or postgresql://... (default: $CREDO_AUDIT_STORE or %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_rule_engine_option(
        parser,
        default=None,
        help="the evaluator to re-decide on (default: the one each record names; compiled for a what-if)",
    )
    parser.add_argument(
        "--pii-key-file",
        help="personal-data key (default: $CREDO_PII_KEY_FILE, $CREDO_PII_KEY, or the key file beside a"
        " SQLite store); without one, personal fields are reported as not restored",
    )
    what_if = parser.add_argument_group("what-if over history")
    what_if.add_argument("--policy", type=Path, help="the NEW policy file to re-decide history on")
    what_if.add_argument("--since", type=parse_time, help="ISO date or time (naive = UTC)")
    what_if.add_argument("--until", type=parse_time, help="ISO date or time (naive = UTC), exclusive")
    what_if.add_argument("--model", help="NAME@VERSION (under --models) or a package folder")
    what_if.add_argument(
        "--models", type=Path, default=Path("models"), help="models folder (default: models)"
    )
    what_if.add_argument("--report", type=Path, help="folder for report.html and summary.json")
    what_if.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    what_if.add_argument("--cluster", help="run the chunks on Dask: tcp://HOST:8786 or local:N")
    what_if.add_argument("--batch", type=int, default=500, help="applications per scoring batch")
    what_if.add_argument(
        "--scorer",
        choices=["onnx", "native"],
        default="onnx",
        help="batch scorer: onnx (bit-identical to serving, default) or native CatBoost (within 1e-6)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.policy is not None:
        if args.decision_id:
            print("credo replay: give a DECISION_ID or --policy, not both", file=sys.stderr)
            return 2
        return run_whatif(args)
    if not args.decision_id:
        print("credo replay: give a DECISION_ID, or --policy NEW.yaml for a what-if", file=sys.stderr)
        return 2
    return run_one(args)


def run_one(args: argparse.Namespace) -> int:
    import json

    from engine.audit.connect import open_store
    from engine.audit.pii import open_vault
    from engine.replay import Replayer

    try:
        store = open_store(args.store, create=False, readonly=True)
    except CredoError as exc:
        print(f"credo replay: {exc}", file=sys.stderr)
        return 2
    try:
        engine = rule_engine(args.rule_engine) if args.rule_engine else None
        vault = open_vault(store, args.pii_key_file)
        with Replayer(store, engine, vault=vault) as replayer:
            result = replayer.replay(args.decision_id)
    except PolicyError as exc:
        print(f"credo replay: the archived policy does not load: {exc}", file=sys.stderr)
        for diagnostic in exc.diagnostics:
            print(f"  {diagnostic}", file=sys.stderr)
        return 2
    except CredoError as exc:
        print(f"credo replay: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, sort_keys=True))
    elif result.match:
        print(f"MATCH {result.decision_id}")
    elif not result.diffs:
        print(f"PARTIAL {result.decision_id}: every restored field matches; not restored:")
        for path, why in sorted(result.unrestored.items()):
            print(f"  {path} ({why})")
    else:
        print(f"DIFF {result.decision_id}: {len(result.diffs)} field(s) differ")
        for diff in result.diffs:
            print(f"  {diff}")
    return 0 if result.match else 3 if not result.diffs else 1  # 3: PARTIAL


def run_whatif(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from engine.audit.connect import open_store
    from engine.batch.pool import open_pool
    from engine.batch.report import write_report
    from engine.batch.whatif import WhatIfOptions, count_window
    from engine.batch.whatif import run_whatif as what_if

    options = WhatIfOptions(
        policy=args.policy,
        model=args.model,
        models_dir=args.models,
        since=args.since,
        until=args.until,
        workers=max(1, args.workers),
        batch=max(1, args.batch),
        scorer=args.scorer,
        rule_engine=args.rule_engine or DEFAULT_ENGINE,
    )
    console = Console(stderr=True)
    try:
        store = open_store(args.store, create=False, readonly=True)
    except CredoError as exc:
        print(f"credo replay: {exc}", file=sys.stderr)
        return 2
    try:
        pool = open_pool(options.workers, args.cluster)
    except CredoError as exc:
        store.close()
        print(f"credo replay: {exc}", file=sys.stderr)
        return 2
    try:
        total = count_window(store, args.since, args.until)
        columns = (
            TextColumn("what-if"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("replay", total=total)
            result = what_if(store, options, progress=lambda n: progress.advance(task, n), pool=pool)
    except CredoError as exc:
        print_error("replay", exc)
        return 2
    finally:
        pool.close()
        store.close()
    summary = result.summary()
    if args.report:
        html, js = write_report(summary, args.report)
        console.print(f"report: {html}\nsummary: {js}")
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_summary(summary)
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    overall = summary["overall"]

    def pct(value: Any) -> str:
        return "-" if value is None else f"{float(value) * 100:.1f}%"

    print(
        f"{summary['decisions']:,} decisions re-decided on {summary['policy']['name']}"
        f" {summary['policy']['version']} in {summary['seconds']} s ({summary['decisions_per_second']}/s)"
    )
    print(f"approval rate: {pct(overall['approval_rate_old'])} -> {pct(overall['approval_rate_new'])}")
    print(f"average limit: {overall['avg_limit_old']} -> {overall['avg_limit_new']}")
    print(f"average rate:  {overall['avg_rate_old']} -> {overall['avg_rate_new']}")
    print(f"expected loss: {overall['expected_loss_old']} -> {overall['expected_loss_new']}")
    matrix = summary["swap_matrix"]
    print("swap matrix (rows: recorded, columns: new):")
    names = list(matrix)
    print("  " + " " * 9 + "".join(f"{n:>10}" for n in names))
    for row in names:
        print(f"  {row:<9}" + "".join(f"{matrix[row][col]:>10,}" for col in names))
    for key in ("errors", "skipped"):
        if summary.get(key):
            print(f"{key}: {summary[key]}")
