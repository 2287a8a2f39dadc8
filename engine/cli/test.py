"""`credo test PATH...`: run each policy's own tests, print one line per failure with its location
and what differed, and end with `N passed, M failed`; exit status 1 on any failure."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from engine.cli.options import add_rule_engine_option


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("test", help="run the tests written in policy files")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a policy file or a folder of policies")
    add_rule_engine_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import PolicyError
    from engine.monitor import load_monitoring, monitoring_files, run_monitor_tests
    from engine.policy import load_policy, policy_files
    from engine.policy.testing import NEEDS_PIPELINE, run_tests
    from engine.service import decide_for_tests

    monitors = monitoring_files(args.paths)  # monitoring policies carry tests of their own kind
    files, missing = policy_files([p for p in args.paths if Path(p) not in monitors])
    for d in missing:
        print(d)
    passed = failed = 0
    broken = bool(missing)
    for path in files:
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            broken = True
            _print_errors(exc)
            continue
        report = run_tests(policy, functools.partial(decide_for_tests, rule_engine=args.rule_engine))
        for r in report.results:
            for failure in r.failures:
                print(f"{r.location}: FAIL: {r.name}: {failure}")
            for key in r.skipped:
                print(f"{r.location}: {r.name}: expect.{key} {NEEDS_PIPELINE}")
        passed += report.passed
        failed += report.failed
    for path in monitors:
        try:
            results = run_monitor_tests(load_monitoring(path))
        except PolicyError as exc:
            broken = True
            _print_errors(exc)
            continue
        for result in results:
            for failure in result.failures:
                print(f"{result.location}: FAIL: {result.name}: {failure}")
        passed += sum(r.passed for r in results)
        failed += sum(not r.passed for r in results)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or broken else 0


def _print_errors(exc: Any) -> None:
    for d in exc.diagnostics:
        if d.is_error:
            print(d)
