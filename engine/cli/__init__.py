"""`credo` command line: one module per verb (engine/cli/<verb>.py), each exposing
`register(subparsers)` that adds its parser and sets `func(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

VERBS = ("serve", "validate", "test", "decide", "simulate", "replay", "audit", "train", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credo", description="Credo credit decision engine")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        name = f"engine.cli.{verb}"
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
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
