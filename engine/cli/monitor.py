"""`credo monitor ingest|alerts|loan|portfolio|replay|book`: post-loan monitoring from the command
line, on the same monitor chain of the audit store that `credo serve`'s MonitorService writes;
`credo monitor drift`: the scoring models' drift against their training baselines."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.cli.audit import parse_time
from engine.cli.options import print_error
from engine.errors import CredoError, PolicyError

DEFAULT_POLICY = "policies/consumer_loan/monitoring.yaml"
DEFAULT_STORE = "sqlite:///var/audit.db"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("monitor", help="post-loan monitoring: ingest events, alerts, portfolio")
    verbs = parser.add_subparsers(dest="monitor_verb", metavar="VERB", required=True)

    def common(p: argparse.ArgumentParser, store: bool = True) -> None:
        p.add_argument(
            "--policy", default=DEFAULT_POLICY, help=f"monitoring policy (default {DEFAULT_POLICY})"
        )
        if store:
            p.add_argument(
                "--store", default=DEFAULT_STORE, help=f"audit store URL (default {DEFAULT_STORE})"
            )

    ingest = verbs.add_parser("ingest", help="ingest loan events from a JSON Lines file into the store")
    ingest.add_argument("file", metavar="FILE.jsonl", help="one event per line; - for stdin")
    ingest.add_argument("--batch", type=int, default=500, help="events per durable commit (default 500)")
    common(ingest)
    ingest.set_defaults(func=run_ingest)

    alerts = verbs.add_parser("alerts", help="list stored alerts")
    alerts.add_argument("--since", help="alerts dated on or after this date (YYYY-MM-DD)")
    alerts.add_argument("--severity", choices=("watch", "warning", "action"))
    alerts.add_argument("--code", help="one alert code")
    alerts.add_argument("--loan", help="one loan id")
    alerts.add_argument("--limit", type=int, default=1000)
    alerts.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    common(alerts)
    alerts.set_defaults(func=run_alerts)

    loan = verbs.add_parser("loan", help="one loan's state: dpd, classification, open alerts, measures")
    loan.add_argument("loan_id", metavar="ID")
    common(loan)
    loan.set_defaults(func=run_loan)

    folio = verbs.add_parser("portfolio", help="classification counts and the month-end roll-rate matrix")
    common(folio)
    folio.set_defaults(func=run_portfolio)

    replay = verbs.add_parser("replay", help="re-derive a loan's alerts from its stored events and compare")
    replay.add_argument("--loan", required=True, metavar="ID")
    common(replay)
    replay.set_defaults(func=run_replay)

    book = verbs.add_parser("book", help="generate the seeded synthetic loan book and score the alerts on it")
    book.add_argument("--loans", type=int, default=2000)
    book.add_argument("--seed", type=int, default=1)
    book.add_argument("--out", help="write the events as JSON Lines here instead of scoring them")
    common(book, store=False)
    book.set_defaults(func=run_book)

    drift = verbs.add_parser(
        "drift", help="PSI of every model's score and CSI of its features against the training baseline"
    )
    drift.add_argument("--since", type=parse_time, required=True, help="ISO date or time (naive = UTC)")
    drift.add_argument("--until", type=parse_time, help="ISO date or time, exclusive (default: now)")
    drift.add_argument("--by", choices=("day",), help="also one row per day")
    drift.add_argument("--policy", dest="policy_name", metavar="NAME", help="decisions of this policy only")
    drift.add_argument("--models", help="models folder for baselines the archived cards lack")
    drift.add_argument(
        "--watch", type=float, help="PSI from which a model is at watch (default: policy's, 0.10)"
    )
    drift.add_argument(
        "--action", type=float, help="PSI above which a model is at action (default: policy's, 0.25)"
    )
    drift.add_argument("--json", action="store_true", help="the report as JSON")
    drift.add_argument("--store", default=DEFAULT_STORE, help=f"audit store URL (default {DEFAULT_STORE})")
    drift.set_defaults(func=run_drift)


def _service(args: argparse.Namespace) -> Any:
    from engine.audit import open_store
    from engine.monitor import load_monitoring
    from engine.monitor.service import MonitorService

    policy = load_monitoring(args.policy)
    store = open_store(args.store)
    try:
        return MonitorService(policy, store)
    except BaseException:
        store.close()
        raise


def _close(service: Any) -> None:
    service.close()
    service.log.store.close()


def _ask(args: argparse.Namespace, question: Callable[[Any], Any]) -> tuple[int, Any]:
    """(exit status, answer) of `question` asked of the store's monitoring service: 2 when the
    policy or store cannot be opened, 1 when the question has no answer (an unknown loan)."""
    try:
        service = _service(args)
    except CredoError as error:
        return _fail(error), None
    try:
        return 0, question(service)
    except CredoError as error:
        print(f"credo monitor: {error}", file=sys.stderr)
        return 1, None
    finally:
        _close(service)


def _fail(error: CredoError) -> int:
    if isinstance(error, PolicyError):
        for diagnostic in error.diagnostics:
            if diagnostic.is_error:
                print(diagnostic, file=sys.stderr)
        return 2
    print(f"credo monitor: {error}", file=sys.stderr)
    return 2


def _lines(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed event or the JSON error text) for each non-blank line."""
    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line, parse_float=Decimal)  # money stays exact
            except ValueError as error:
                yield number, _NotJson(str(error))
    finally:
        if handle is not sys.stdin:
            handle.close()


class _NotJson:
    def __init__(self, message: str):
        self.message = message


def run_ingest(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.monitor import BadEvent

    if args.file != "-" and not Path(args.file).is_file():
        print(f"credo monitor: no such file {args.file}", file=sys.stderr)
        return 2
    total = None
    if args.file != "-":
        with open(args.file, "rb") as counted:
            total = sum(1 for _ in counted)
    try:
        service = _service(args)
    except CredoError as error:
        return _fail(error)
    accepted = refused = 0
    alerts: Counter[str] = Counter()
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        nonlocal accepted, refused
        if not batch:
            return
        events = [raw for _, raw in batch]
        for (number, _), outcome in zip(batch, service.ingest(events), strict=True):
            if isinstance(outcome, BadEvent):
                refused += 1
                print(f"{args.file}:{number}: {outcome}", file=sys.stderr)
            else:
                accepted += 1
                alerts.update(alert.code for alert in outcome.alerts)
        batch.clear()

    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("ingest", total=total)
            for number, raw in _lines(args.file):
                progress.advance(task)
                if isinstance(raw, _NotJson):
                    flush()  # keep the refusals in file order
                    refused += 1
                    print(
                        f"{args.file}:{number}: BAD_EVENT: event: not JSON ({raw.message})", file=sys.stderr
                    )
                    continue
                batch.append((number, raw))
                if len(batch) >= max(1, args.batch):
                    flush()
            if batch:
                flush()
    except CredoError as error:
        print(f"credo monitor: {error} (everything reported before this line is stored)", file=sys.stderr)
        return 2
    finally:
        _close(service)
    raised = ", ".join(f"{code} {n}" for code, n in sorted(alerts.items())) or "none"
    print(f"{accepted} event(s) stored, {refused} refused; alerts raised: {raised}")
    return 1 if refused else 0


def run_alerts(args: argparse.Namespace) -> int:
    from engine.monitor.service import AlertQuery

    query = AlertQuery(args.since, args.severity, args.code, args.loan, max(1, args.limit))
    code, rows = _ask(args, lambda service: list(service.alerts(query)))
    if code:
        return code
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False, sort_keys=True))
        else:
            print(
                f"{row['date']}  {row['loan_id']:<16} {row['severity']:<8} {row['code']:<18} "
                f"dpd {row['dpd']:<4} {row['classification']:<16} {row['action']}"
            )
    if not args.json:
        print(f"{len(rows)} alert(s)", file=sys.stderr)
    return 0


def run_loan(args: argparse.Namespace) -> int:
    code, state = _ask(args, lambda service: service.loan(args.loan_id))
    if code:
        return code
    print(json.dumps(state, ensure_ascii=False, sort_keys=True, default=str, indent=2))
    return 0


def run_portfolio(args: argparse.Namespace) -> int:
    from engine.monitor.model import CATEGORIES, CATEGORY_ZH

    code, result = _ask(args, lambda service: service.portfolio())
    if code:
        return code
    total = sum(result.counts.values())
    print(f"open loans by classification ({total}):")
    for category in CATEGORIES:
        count = result.counts[category]
        share = f"{count / total:6.1%}" if total else "     -"
        print(f"  {category:<16} {CATEGORY_ZH[category]}  {count:>7}  {share}")
    print(f"roll rates between month ends ({result.months} month ends; row = from, column = to):")
    short = {c: c[:11] for c in CATEGORIES}
    print("  " + " " * 16 + "".join(f"{short[c]:>12}" for c in CATEGORIES))
    rates = result.roll_rates()
    for before in CATEGORIES:
        row = rates.get(before)
        cells = "".join(f"{row[after]:>12.1%}" if row else f"{'-':>12}" for after in CATEGORIES)
        print(f"  {before:<16}{cells}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    code, report = _ask(args, lambda service: service.replay(args.loan))
    if code:
        return code
    if report.match:
        print(f"MATCH {report.loan_id}: {report.events} event(s), {len(report.stored)} alert(s) re-derived")
        return 0
    print(f"DIFF {report.loan_id}: stored and re-derived alerts differ")
    for seq, code, date in sorted(set(report.stored) - set(report.derived)):
        print(f"  - stored only:     {date} {code} (event seq {seq})")
    for seq, code, date in sorted(set(report.derived) - set(report.stored)):
        print(f"  + re-derived only: {date} {code} (event seq {seq})")
    return 1


def run_book(args: argparse.Namespace) -> int:
    from engine.monitor import Monitor, load_monitoring
    from engine.monitor.synthetic import generate_book, score_alerts

    book = generate_book(max(1, args.loans), seed=args.seed)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            for event in book.events:
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
        print(f"{len(book.events)} event(s) of {args.loans} loan(s) written to {args.out}")
        return 0
    try:
        monitor = Monitor(load_monitoring(args.policy))
    except CredoError as error:
        return _fail(error)
    try:
        alerts = [alert.to_json() for event in book.events for alert in monitor.ingest(event).alerts]
    finally:
        monitor.close()
    scores = score_alerts(book, alerts)
    print(
        f"{args.loans} loans, {len(book.events)} events, {len(alerts)} alerts, {len(book.defaults)} defaults"
    )
    print(f"precision {scores.precision:.3f}, recall {scores.recall:.3f} over (loan, alert code) pairs")
    if scores.median_lead_days is not None:
        print(f"median lead time of the first alert before default: {scores.median_lead_days:g} days")
    for loan_id, code in scores.false_alerts[:10]:
        print(f"  false alert: {loan_id} {code}")
    for loan_id, code in scores.missed_alerts[:10]:
        print(f"  missed alert: {loan_id} {code}")
    return 0 if scores.precision == scores.recall == 1.0 else 1


def run_drift(args: argparse.Namespace) -> int:
    """Exit 0 when no model is at action, 1 when one is, 2 when the report cannot be made."""
    from engine.audit.connect import open_store
    from engine.models.store import ModelStore
    from engine.monitor.drift import Thresholds, drift_report

    thresholds = None
    if args.watch is not None or args.action is not None:
        default = Thresholds()
        thresholds = Thresholds(
            default.watch if args.watch is None else args.watch,
            default.action if args.action is None else args.action,
        )
        if not 0 < thresholds.watch < thresholds.action:
            print("credo monitor drift: need 0 < --watch < --action", file=sys.stderr)
            return 2
    try:
        store = open_store(args.store, create=False, readonly=True)
    except CredoError as error:
        print_error("monitor drift", error)
        return 2
    try:
        report = drift_report(
            store,
            since=args.since,
            until=args.until,
            by=args.by,
            policy=args.policy_name,
            models=ModelStore(args.models) if args.models else None,
            thresholds=thresholds,
        )
    except CredoError as error:
        print_error("monitor drift", error)
        return 2
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_drift(report)
    return 1 if report.action else 0


def _print_drift(report: Any) -> None:
    until = report.until.isoformat() if report.until else "now"
    print(f"{report.records} decision(s) received in [{report.since.isoformat()}, {until})")
    if not report.models:
        print("no model scored a decision in this window")
    for model in report.models:
        policies = ", ".join(model.policies)
        rescored = f", {model.rescored} knocked out before the score, scored here" if model.rescored else ""
        print(
            f"\n{model.model} {model.version} ({model.sha256[:12]}) of {policies}: {model.status.upper()}\n"
            f"  {model.count} applicant(s) scored{rescored}"
        )
        if model.score is None:
            print(f"  {model.note}")
            continue
        limits = model.thresholds
        print(f"  thresholds: stable < {limits.watch:g} <= watch <= {limits.action:g} < action")
        print(f"  {'':<2}{'index':<40} {'PSI':>8}  {'status':<7} {'observed':>8}  note")
        for row in (model.score, *model.features):
            value = "-" if row.psi is None else f"{row.psi:.4f}"
            notes = []
            if row.sealed:
                notes.append(f"{row.sealed} sealed (personal data)")
            if row.unbinned:
                notes.append(f"{row.unbinned} outside the baseline's bins")
            mark = "*" if row.status != "stable" else " "
            label = "score (PSI)" if row.name == "score" else f"{row.name} (CSI)"
            line = f"  {mark} {label:<40} {value:>8}  {row.status:<7} {row.observed:>8}  {'; '.join(notes)}"
            print(line.rstrip())
        if model.flagged:
            print(f"  features that moved, worst first: {', '.join(model.flagged)}")
        for period in model.periods:
            value = "-" if period.score_psi is None else f"{period.score_psi:.4f}"
            print(f"  {period.period}  {period.count:>7} scored  score PSI {value}  {period.status}")
    if report.mix:
        print("\nmix per period:")
        for mix in report.mix:
            outcomes = ", ".join(f"{k} {v / mix.count:.1%}" for k, v in mix.outcomes.items())
            grades = " ".join(f"{k}:{v}" for k, v in mix.grades.items()) or "-"
            reasons = ", ".join(f"{k} {v}" for k, v in list(mix.reasons.items())[:5]) or "-"
            print(f"  {mix.period}  {mix.policy:<16} {mix.count:>7}  {outcomes}")
            print(f"  {'':<10}  grades {grades}; top reasons {reasons}")
