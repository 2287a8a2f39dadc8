"""`credo audit verify|anchor|export|retain|find|forget|rotate-key|bench`: prove the decision log
unaltered, hand records to auditors, apply retention, find, erase and re-key personal data.
Store: --store, else $CREDO_AUDIT_STORE, else sqlite:///credo-audit.db.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from engine.errors import CredoError

DEFAULT_STORE = "sqlite:///credo-audit.db"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="verify, export and retain the decision log")
    verbs = parser.add_subparsers(dest="audit_verb", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=os.environ.get("CREDO_AUDIT_STORE", DEFAULT_STORE),
            help="sqlite:///PATH or postgresql://... (default: $CREDO_AUDIT_STORE or %(default)s)",
        )

    verify = verbs.add_parser("verify", help="recompute every hash chain; exit 1 on any problem")
    common(verify)
    verify.add_argument("--anchors", help="JSON Lines of chain heads saved by `credo audit anchor`")
    verify.set_defaults(func=run_verify)

    anchor = verbs.add_parser("anchor", help="print each chain's head (seq, hash) to keep outside the store")
    common(anchor)
    anchor.set_defaults(func=run_anchor)

    export = verbs.add_parser("export", help="export records received in [--since, --until)")
    common(export)
    export.add_argument("--since", type=parse_time, help="ISO date or time (naive = UTC)")
    export.add_argument("--until", type=parse_time, help="ISO date or time (naive = UTC), exclusive")
    export.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    export.add_argument("--out", help="output file (jsonl default: stdout)")
    key_option(export, "without it, personal values are masked")
    export.set_defaults(func=run_export)

    retain = verbs.add_parser("retain", help="export then remove records received before --before")
    common(retain)
    retain.add_argument("--before", type=parse_time, required=True, help="ISO date or time (naive = UTC)")
    retain.add_argument("--export", required=True, help="JSON Lines file the removed records are appended to")
    retain.set_defaults(func=run_retain)
    _register_pii(verbs, common)
    _register_bench(verbs)


def key_option(parser: argparse.ArgumentParser, without: str) -> None:
    parser.add_argument(
        "--pii-key-file",
        help="personal-data master key (default: $CREDO_PII_KEY_FILE, $CREDO_PII_KEY, or the key file"
        f" beside a SQLite store); {without}",
    )


def _register_pii(verbs: Any, common: Any) -> None:
    find = verbs.add_parser("find", help="list the decisions of one data subject (needs the key)")
    common(find)
    _subject_options(find)
    key_option(find, "required")
    find.set_defaults(func=run_find)

    forget = verbs.add_parser("forget", help="erase a subject's personal data: destroy its data key")
    common(forget)
    _subject_options(forget)
    key_option(forget, "required")
    forget.set_defaults(func=run_forget)

    rotate = verbs.add_parser("rotate-key", help="re-wrap every data key under a new master key")
    common(rotate)
    key_option(rotate, "the current key")
    rotate.add_argument("--new-key-file", required=True, help="the new key (created, mode 0600, if absent)")
    rotate.set_defaults(func=run_rotate_key)


def _subject_options(parser: argparse.ArgumentParser) -> None:
    whose = parser.add_mutually_exclusive_group(required=True)
    whose.add_argument("--subject", help="the subject's key value, e.g. the ID number")
    whose.add_argument(
        "--day",
        type=parse_day,
        help="YYYY-MM-DD (UTC): the records of that day that name no subject (a policy without a"
        " subject key, or an application without its value) share one data key",
    )


def parse_day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _register_bench(verbs: Any) -> None:
    bench = verbs.add_parser("bench", help="measure group-commit throughput and append latency")
    bench.add_argument("--store", help="store URL (default: a fresh SQLite file in a temp dir)")
    bench.add_argument("--threads", type=int, default=16)
    bench.add_argument("--records", type=int, default=4000)
    bench.set_defaults(func=run_bench)


def parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def run_verify(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.audit.pii_keys import verify_erasures
    from engine.audit.verify import check_anchors, verify_store

    try:
        anchors = _read_anchors(args.anchors) if args.anchors else []
        store = open_store(args.store, create=False, readonly=True)
        try:
            report = verify_store(store)
            anchor_problems = check_anchors(store, anchors)
            erasures, erasure_problem = verify_erasures(store)
        finally:
            store.close()
    except (CredoError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    checkpoints = sum(1 for c in report.chains if c.checkpoint_seq)
    if report.ok and not anchor_problems and erasure_problem is None:
        print(
            f"OK: {len(report.chains)} chain(s), {report.records} record(s) verified"
            + (f", {checkpoints} from a retention checkpoint" if checkpoints else "")
            + (f", {report.files} archived file(s) re-hashed" if report.files else "")
            + (f", {len(anchors)} anchor(s) hold" if anchors else "")
            + (f", {erasures} erasure record(s)" if erasures else "")
        )
        return 0
    if erasure_problem is not None:
        print(f"FAIL erasure chain: {erasure_problem}")
    for chain in report.chains:
        if not chain.ok:
            print(f"FAIL chain {chain.chain_id}: {chain.problem}")
    for problem in report.file_problems:
        print(f"FAIL {problem}")
    for problem in anchor_problems:
        print(f"FAIL {problem}")
    bad = sum(1 for c in report.chains if not c.ok)
    summary = f"{bad} of {len(report.chains)} chain(s) failed verification"
    if report.file_problems:
        summary += f", {len(report.file_problems)} archived file problem(s)"
    print(summary + (f", {len(anchor_problems)} of {len(anchors)} anchor(s) failed" if anchors else ""))
    return 1


def _read_anchors(path: str) -> list[Any]:
    import json

    from engine.audit.store import ChainHead

    heads = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                item = json.loads(line)
                heads.append(ChainHead(str(item["chain_id"]), int(item["seq"]), str(item["hash"])))
    return heads


def run_anchor(args: argparse.Namespace) -> int:
    import json

    from engine.audit.connect import open_store
    from engine.audit.record import utc_text

    try:
        store = open_store(args.store, create=False, readonly=True)
        try:
            heads = store.chain_heads()
        finally:
            store.close()
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    now = utc_text(dt.datetime.now(dt.UTC))
    for head in heads:
        print(json.dumps({"chain_id": head.chain_id, "seq": head.seq, "hash": head.hash, "at": now}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.audit.export import export_records
    from engine.audit.pii import open_vault

    try:
        store = open_store(args.store, create=False, readonly=True)
        try:
            vault = open_vault(store, args.pii_key_file)
            count = export_records(
                store, args.since, args.until, args.format, args.out, sys.stdout.buffer, show=vault.masked
            )
        finally:
            store.close()
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `credo audit export | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    sys.stdout.flush()
    print(f"exported {count} record(s)" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def run_retain(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.audit.export import remove_older_than

    try:
        store = open_store(args.store, create=False)
        try:
            result = remove_older_than(store, args.before, args.export)
        finally:
            store.close()
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"removed {result.removed} record(s) from {result.chains} chain(s); exported to {result.export}")
    return 0


def run_find(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.audit.pii import open_vault

    try:
        store = open_store(args.store, create=False, readonly=True)
        try:
            records = open_vault(store, args.pii_key_file).find(args.subject, day=args.day)
        finally:
            store.close()
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for record in records:
        print(f"{record.decision_id} {record.received_at} {record.policy.get('name')} {record.outcome}")
    print(f"{len(records)} decision(s)", file=sys.stderr)
    return 0


def run_forget(args: argparse.Namespace) -> int:
    from engine.audit.connect import open_store
    from engine.audit.pii import open_vault

    try:
        store = open_store(args.store, create=False)
        try:
            erasure = open_vault(store, args.pii_key_file).forget(args.subject, day=args.day)
        finally:
            store.close()
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"erased: the data key of subject {erasure['subject'][:16]}... is destroyed;"
        f" {erasure['decisions']} decision(s) keep their hashes, their personal fields are unrecoverable"
        f" (erasure record {erasure['seq']}, hash {erasure['hash'][:16]}...)"
    )
    return 0


def run_rotate_key(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.audit.connect import open_store
    from engine.audit.pii import open_vault
    from engine.audit.pii_keys import MasterKey, replace_key_file

    try:
        path = Path(args.new_key_file)
        new = MasterKey.read(path) if path.exists() else MasterKey.create(path)
        store = open_store(args.store, create=False)
        try:
            vault = open_vault(store, args.pii_key_file)
            count = vault.rotate(new)
        finally:
            store.close()
        beside = vault.default_key_file
        if beside is not None:  # the key every command finds beside a SQLite store: now the new one
            replace_key_file(beside, new)
    except CredoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"re-wrapped {count} data key(s) under key {new.key_id}; record hashes are unchanged")
    where = f"{beside} (replaced) and {path}" if beside else str(path)
    print(f"from now on use {where}: the old key no longer opens this store")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    import tempfile

    from engine.audit.bench import bench_group_commit

    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{tmp}/bench.db"
        result = bench_group_commit(url, args.threads, args.records)
    print(
        f"{result.records} records from {args.threads} threads in {result.seconds:.2f} s: "
        f"{result.records / result.seconds:,.0f} records/s, {result.batches} transactions "
        f"({result.records / max(result.batches, 1):.1f} records each); append latency "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
    )
    return 0
