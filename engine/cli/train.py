"""`credo train SPEC.yaml --out DIR`: train a CatBoost PD model from a spec into a verified
package `DIR/<name>/<version>/` (model.onnx, model.cbm, card.json), with progress and CV metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.errors import CredoError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model package from a training spec", description=__doc__
    )
    parser.add_argument("spec", type=Path, help="training spec (YAML)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("models"),
        help="models root; the package goes to OUT/<name>/<version>/ (default: models)",
    )
    parser.add_argument("--json", action="store_true", help="print the card's metrics as JSON when done")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.models.spec import TrainSpecError, load_spec
    from engine.models.training import train

    console = Console(stderr=True)
    try:
        spec = load_spec(args.spec)
    except TrainSpecError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        try:
            folder = train(spec, args.out, progress=report)
        except TrainSpecError as exc:
            progress.stop()
            for diagnostic in exc.diagnostics:
                print(diagnostic, file=sys.stderr)
            return 1
        except CredoError as exc:
            progress.stop()
            print(f"error: {exc}", file=sys.stderr)
            return 1
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    if args.json:
        print(
            json.dumps(
                {"package": str(folder), "metrics": card["metrics"], "parity": card["parity"]}, indent=2
            )
        )
        return 0
    cv = card["metrics"]["cv"]
    print(f"{card['name']} {card['version']} -> {folder}")
    data = card["data"]
    print(f"  data: {data['rows']} rows, bad rate {data['bad_rate']:.3f}, sha256 {data['sha256']}")
    print(
        f"  {cv['folds']}-fold CV: "
        + ", ".join(
            f"{k.upper()} {cv[k]['mean']:.4f} ± {cv[k]['sd']:.4f}" for k in ("auc", "ks", "gini", "brier")
        )
    )
    print("  holdout: " + ", ".join(f"{k.upper()} {v:.4f}" for k, v in card["metrics"]["holdout"].items()))
    parity = card["parity"]
    print(f"  parity ONNX vs native: max |dp| = {parity['max_abs_diff']:.2e} on {parity['rows']} rows")
    print(f"  model.onnx sha256 {card['sha256']}")
    return 0
