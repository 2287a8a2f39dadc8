"""`credo validate PATH...`: load every policy under the paths and print each diagnostic as
`file:line:col: CODE: message`, sorted; exit status 1 if any is an error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validate", help="check policy files and print located diagnostics")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a policy file or a folder of policies")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.monitor import check_monitoring, monitoring_files
    from engine.policy import check_paths, policy_files

    monitors = monitoring_files(args.paths)  # monitoring policies, checked by their own loader
    paths = [p for p in args.paths if Path(p) not in monitors]
    diagnostics = check_paths(paths) if paths else []
    diagnostics += [d for path in monitors for d in check_monitoring(path)]
    for d in diagnostics:
        print(d)
    errors = sum(d.is_error for d in diagnostics)
    files = [*policy_files(paths)[0], *monitors]
    print(
        f"{len(files)} file(s) checked: {errors} error(s), {len(diagnostics) - errors} warning(s)",
        file=sys.stderr,
    )
    return 1 if errors or not files else 0
