"""`credo experiment report --store URL [--since T] [--until T] [--report DIR]`: compare the arms
of champion/challenger experiments and their shadows over recorded decisions (engine.batch.experiment);
JSON on stdout, or experiment.html + experiment.json in DIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from engine.cli.audit import parse_time

    parser = subparsers.add_parser("experiment", help="champion/challenger and shadow reports")
    verbs = parser.add_subparsers(dest="experiment_verb", metavar="ACTION", required=True)
    report = verbs.add_parser("report", help="compare the arms over recorded decisions")
    report.add_argument("--store", required=True, help="audit store URL")
    report.add_argument("--since", type=parse_time, help="ISO date or time (naive = UTC)")
    report.add_argument("--until", type=parse_time, help="ISO date or time (naive = UTC), exclusive")
    report.add_argument("--report", type=Path, help="folder for experiment.html and experiment.json")
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.batch.experiment import experiment_report, write_report
    from engine.cli.options import print_error
    from engine.errors import CredoError

    try:
        store = open_store(args.store, create=False)
    except CredoError as exc:
        print_error("experiment", exc)
        return 2
    try:
        report = experiment_report(store, args.since, args.until)
    finally:
        store.close()
    if args.report:
        html_path, json_path = write_report(report, args.report)
        print(f"report: {html_path}\nsummary: {json_path}")
    else:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0
