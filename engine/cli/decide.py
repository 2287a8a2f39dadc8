"""`credo decide POLICY_OR_PATH --input APP.json [--lang zh]`: decide one application and print the
Decision as JSON (no audit record unless --record DB)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from engine.cli.options import add_rule_engine_option, print_error
from engine.errors import CredoError, InvalidInput


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("decide", help="decide one application and print the Decision as JSON")
    parser.add_argument(
        "policy", metavar="POLICY_OR_PATH", help="policy name under --policies, or a policy file"
    )
    parser.add_argument("--input", "-i", required=True, help="application JSON file ('-' for stdin)")
    parser.add_argument(
        "--lang", default=None, help="language of reason texts, one the policy declares (default: its first)"
    )
    add_rule_engine_option(parser)
    parser.add_argument("--policies", default="policies", help="policies folder (default: policies)")
    parser.add_argument("--models", default="models", help="models folder (default: models)")
    parser.add_argument("--request-id", default=None, help="request id (default: a fresh uuid4)")
    parser.add_argument("--version", default=None, help="require this policy version")
    parser.add_argument(
        "--record",
        default=None,
        metavar="STORE",
        help="also write an audit record to this store (e.g. sqlite:///credo.db)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.render import decision_json
    from engine.service import DecisionService
    from engine.sources import POLICY_NAME

    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
        application = json.loads(text, parse_float=str)  # amounts stay exact: decimals as text
    except (OSError, json.JSONDecodeError) as exc:
        print(f"credo decide: cannot read {args.input}: {exc}", file=sys.stderr)
        return 2
    log = None
    try:
        if args.record:
            from engine.audit.log import DecisionLog

            log = DecisionLog(args.record)
        service = DecisionService(args.policies, args.models, store=log, rule_engine=args.rule_engine)
        # The CLI's own argument may be a local file; only a name is looked up in --policies.
        named = POLICY_NAME.fullmatch(args.policy) and not Path(args.policy).exists()
        policy = service.policy(args.policy) if named else service.load_policy_file(args.policy)
        decision = service.decide(
            policy,
            application,
            args.request_id or str(uuid.uuid4()),
            language=args.lang,
            version=args.version,
        )
    except InvalidInput as exc:
        print(f"credo decide: {exc.code}: invalid application", file=sys.stderr)
        for violation in exc.violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 1
    except CredoError as exc:
        print_error("decide", exc)
        return 1
    finally:
        if log is not None:
            log.close()
    print(decision_json(decision))
    return 0
