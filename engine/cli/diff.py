"""`credo diff OLD NEW`: the semantic diff of two versions of a policy (files or folders) — rules,
tables, thresholds, inputs, limits, prices, products — as text, or JSON with --json. Exit status 0
when nothing changed in meaning, 1 when something did, 2 when a policy does not load."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("diff", help="what changed in meaning between two policy versions")
    parser.add_argument("old", metavar="OLD", help="the earlier policy file or folder")
    parser.add_argument("new", metavar="NEW", help="the later policy file or folder")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.cli.options import print_error
    from engine.errors import PolicyError
    from engine.policy import load_policy
    from engine.release.diff import diff_policies

    try:
        old, new = load_policy(_file(args.old)), load_policy(_file(args.new))
    except PolicyError as exc:
        print_error("diff", exc)
        return 2
    diff = diff_policies(old, new)
    print(json.dumps(diff.to_dict(), indent=2, ensure_ascii=False, default=str) if args.json else diff.text())
    return 1 if diff.changes else 0


def _file(path: str) -> str:
    from pathlib import Path

    from engine.sources import POLICY_FILE

    candidate = Path(path)
    return str(candidate / POLICY_FILE) if candidate.is_dir() else path
