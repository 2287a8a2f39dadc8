"""`credo` command line: one module per verb (engine/cli/<verb>.py), each exposing
`register(subparsers)` that adds its parser and sets `func(args) -> int`. A verb imports its heavy
parts (grpc, onnxruntime, catboost, rich) inside `func`, so `credo --help` and each verb load only
what they use."""

from __future__ import annotations

import argparse
import importlib
import sys

VERBS = (
    "serve", "validate", "test", "compile", "decide", "replay", "simulate", "audit", "monitor", "train",
    "bench", "diff", "release", "experiment", "console",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credo", description="Credo credit decision engine")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"engine.cli.{verb}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
