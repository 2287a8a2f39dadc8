"""`credo compile POLICY`: print the Python module a policy compiles to (engine.policy.codegen), so
an author or an auditor can read exactly what runs for every rule of every stage (`--validator`: its
input validation; `--stages`: the function that runs its stage table, each stage timed and traced)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

POLICY_FILE = "policy.yaml"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("compile", help="print the Python a policy compiles to")
    parser.add_argument("policy", metavar="POLICY", help="a policy name (under --policies), file or folder")
    parser.add_argument("--policies", default="policies", help="policies folder (default: policies)")
    parser.add_argument(
        "--validator",
        action="store_true",
        help="print the generated validator of the policy's inputs instead (engine.policy.validator)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="print the function that runs the policy's stage table instead (engine.pipeline.runner)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import PolicyError
    from engine.policy import load_policy

    path = _policy_path(args.policy, Path(args.policies))
    if path is None:
        print(
            f"credo compile: no policy {args.policy!r} (no such file, folder or name in {args.policies})",
            file=sys.stderr,
        )
        return 2
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        for diagnostic in exc.diagnostics:
            if diagnostic.is_error:
                print(diagnostic, file=sys.stderr)
        return 1
    if args.validator:
        from engine.policy.validator import validator_source

        generated = validator_source(policy.inputs, policy.open_groups)
        if generated is None:  # open input groups: every application takes validate_application
            print("# no generated validator: engine.policy.inputs validates every application")
            return 0
        sys.stdout.write(generated[0])
        return 0
    if args.stages:
        from engine.pipeline.table import stage_source

        sys.stdout.write(stage_source(policy))
        return 0
    sys.stdout.write(policy.program.source)
    return 0


def _policy_path(policy: str, policies: Path) -> Path | None:
    for candidate in (Path(policy), Path(policy) / POLICY_FILE, policies / policy / POLICY_FILE):
        if candidate.is_file():
            return candidate
    return None
