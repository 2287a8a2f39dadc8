"""`credo release ...`: build a policy's immutable release bundle, approve it with an Ed25519 key,
list releases with their approvals, roll a policy back to its previous approved release; `keygen`
makes a key pair. `credo serve --releases DIR --trust KEYS --approvals N` serves approved releases.

Exit codes: 0 done, 1 refused (failed tests, a released version, too few approvals), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.cli.options import print_error
from engine.errors import CredoError, PolicyError

DEFAULT_RELEASES = "releases"


def register(subparsers: Any) -> None:
    from engine.cli.audit import parse_time

    parser = subparsers.add_parser("release", help="build, approve, list and roll back policy releases")
    verbs = parser.add_subparsers(dest="release_verb", metavar="ACTION", required=True)

    keygen = verbs.add_parser("keygen", help="write STEM.key (private) and STEM.pub (public), Ed25519")
    keygen.add_argument("stem", metavar="STEM")
    keygen.set_defaults(func=run_keygen)

    build = verbs.add_parser("build", help="write the release bundle of a policy")
    build.add_argument("policy", metavar="POLICY", help="a policy file or folder")
    build.add_argument("--author-key", required=True, help="the author's key (its public half is recorded)")
    build.add_argument("--releases", default=DEFAULT_RELEASES, help="release folder (default releases)")
    build.add_argument("--models", type=Path, default=Path("models"), help="model store (default models)")
    build.add_argument("--store", help="audit store URL: add the what-if impact over recorded history")
    build.add_argument("--since", type=parse_time, help="impact window start (ISO date or time)")
    build.add_argument("--until", type=parse_time, help="impact window end (ISO date or time)")
    build.add_argument(
        "--candidate",
        action="store_true",
        help="a challenger or shadow version: served only through an active release's experiment",
    )
    build.set_defaults(func=run_build)

    approve = verbs.add_parser("approve", help="sign a release bundle with your key")
    approve.add_argument("bundle", metavar="BUNDLE", help="the release folder (or its bundle.json)")
    approve.add_argument("--key", required=True, help="your private key (PEM)")
    approve.set_defaults(func=run_approve)

    for verb, helptext, func in (
        ("list", "every release with its approvals and whether it may serve", run_list),
        ("rollback", "serve a policy's previous approved release", run_rollback),
    ):
        sub = verbs.add_parser(verb, help=helptext)
        if verb == "rollback":
            sub.add_argument("name", metavar="NAME", help="the policy to roll back")
        sub.add_argument("--releases", default=DEFAULT_RELEASES, help="release folder (default releases)")
        sub.add_argument("--trust", required=verb == "rollback", help="trusted public keys (*.pub folder)")
        sub.add_argument("--approvals", type=int, default=2, help="approvals required (default 2)")
        sub.add_argument("--models", type=Path, default=None, help="model store to check releases against")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(func=func)


def _fail(exc: CredoError) -> int:
    print_error("release", exc)
    if isinstance(exc, PolicyError):
        return 2
    return 2 if exc.grpc_status == "INVALID_ARGUMENT" else 1


def run_keygen(args: argparse.Namespace) -> int:
    from engine.release.signing import generate_key, key_id, load_public_key

    try:
        private, public = generate_key(args.stem)
    except FileExistsError:
        print(f"credo release: {args.stem}.key exists; not overwritten", file=sys.stderr)
        return 2
    print(f"key {key_id(load_public_key(public))}: {private} (keep secret), {public} (give to the server)")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from engine.policy import load_policy
    from engine.policy.testing import run_tests
    from engine.release.bundle import build_release
    from engine.release.signing import load_public_key
    from engine.service import decide_for_tests
    from engine.sources import POLICY_FILE

    path = Path(args.policy)
    path = path / POLICY_FILE if path.is_dir() else path
    try:
        author = load_public_key(args.author_key)
        policy = load_policy(path)
        report = run_tests(policy, lambda p, app: decide_for_tests(p, app, models_dir=args.models))
        tests = {
            "passed": report.passed,
            "failed": report.failed,
            "results": [{"name": r.name, "failures": r.failures} for r in report.results],
        }
        for r in report.results:
            for failure in r.failures:
                print(f"{r.location}: FAIL: {r.name}: {failure}", file=sys.stderr)
        impact = _impact(args, path) if args.store else None
        release = build_release(
            policy,
            args.releases,
            models_dir=args.models,
            tests=tests,
            author=author,
            impact=impact,
            candidate=args.candidate,
        )
    except CredoError as exc:
        return _fail(exc)
    print(f"release {release.release_id}")
    print(f"  {release.directory}: {policy.name} {policy.version}, {report.passed} tests passed")
    diff, previous = release.manifest["diff"], release.manifest["previous"]
    if diff:
        print(f"  {len(diff['changes'])} change(s) since {previous['version']}")
    return 0


def _impact(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from engine.audit.connect import open_store
    from engine.batch.whatif import WhatIfOptions, run_whatif

    store = open_store(args.store, create=False)
    try:
        options = WhatIfOptions(policy=path, models_dir=args.models, since=args.since, until=args.until)
        return run_whatif(store, options).summary()
    finally:
        store.close()


def run_approve(args: argparse.Namespace) -> int:
    from engine.release.bundle import approve, read_release
    from engine.release.signing import load_private_key

    try:
        release = read_release(args.bundle)
        written = approve(release, load_private_key(args.key))
    except CredoError as exc:
        return _fail(exc)
    print(f"approved {release.name} {release.version} ({release.release_id[:12]}): {written}")
    return 0


def _verdicts(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    from engine.release.bundle import select
    from engine.release.signing import trusted_keys

    trusted = trusted_keys(args.trust) if args.trust else {}
    return select(args.releases, trusted, args.approvals, args.models)


def run_list(args: argparse.Namespace) -> int:
    try:
        active, verdicts = _verdicts(args)
    except CredoError as exc:
        return _fail(exc)
    rows = [{**v.to_dict(), "active": active.get(v.release.name) is v} for v in verdicts]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = (
            "ACTIVE"
            if row["active"]
            else "withdrawn"
            if row["withdrawn"]
            else "approved"
            if row["approved"]
            else "refused"
        )
        print(
            f"{row['name']} {row['version']}  {row['release_id'][:12]}  seq {row['seq']}  {state}"
            f"  approvals: {', '.join(row['approvers']) or '-'}"
        )
        for problem in row["problems"] if args.trust else ():
            print(f"    {problem}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from engine.release.bundle import withdraw

    try:
        active, verdicts = _verdicts(args)
    except CredoError as exc:
        return _fail(exc)
    chosen = active.get(args.name)
    if chosen is None:
        print(f"credo release: no approved release of {args.name} is active", file=sys.stderr)
        return 1
    current = chosen.release
    earlier = [
        v.release
        for v in verdicts
        if v.release.name == args.name and v.approved and not v.withdrawn and v.release.seq < current.seq
    ]
    if not earlier:
        print(f"credo release: {args.name} has no earlier approved release to roll back to", file=sys.stderr)
        return 1
    withdraw(args.releases, [current.release_id])
    print(
        f"{args.name}: {current.version} ({current.release_id[:12]}) withdrawn;"
        f" {earlier[-1].version} ({earlier[-1].release_id[:12]}) serves after the next reload"
    )
    return 0
