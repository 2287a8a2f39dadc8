"""What-if replay throughput: fill a SQLite audit store with N synthetic consumer_loan decisions
(decided by the real DecisionService, recorded by the real DecisionLog with group commit, verified),
then time `credo replay --policy` on a stricter policy over all of them and print decisions/s.

Usage: .venv/bin/python scripts/bench_whatif.py [--n 100000] [--store /tmp/whatif.db] [--jobs 2]
       [--workers 2] [--skip-fill] [--report /tmp/whatif-report]
Filling runs `--jobs` processes (one chain each), each deciding with `--threads` threads so that
concurrent decisions share commits; 100,000 decisions take several minutes on two cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models.synthetic import generate  # noqa: E402

SEED = 20260601
PURPOSES = {"debt_consolidation": "other"}  # the generator's purposes the policy does not list


def application(row: dict[str, Any]) -> dict[str, Any]:
    """A generated row (dotted columns) as the nested JSON application a client sends."""
    nested: dict[str, dict[str, Any]] = {}
    for column, value in row.items():
        if column == "default_12m":
            continue
        group, name = column.split(".", 1)
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float):  # amounts travel as decimal strings, as over gRPC
            value = str(int(value)) if value.is_integer() else repr(value)
        nested.setdefault(group, {})[name] = value
    nested["loan"]["purpose"] = PURPOSES.get(nested["loan"]["purpose"], nested["loan"]["purpose"])
    return nested


def fill_part(url: str, n: int, part: int, parts: int, threads: int) -> int:
    """Decide rows part, part + parts, ... of the population and record them (own chain)."""
    from engine.audit.log import DecisionLog
    from engine.errors import CredoError
    from engine.service import DecisionService

    rows = generate(n, SEED).iloc[part::parts].to_dict("records")
    log = DecisionLog(url)
    service = DecisionService(ROOT / "policies", ROOT / "models", store=log)
    done = 0

    def decide(i: int) -> int:
        try:
            service.decide("consumer_loan", application(rows[i]), f"bench-{SEED}-{part}-{i}")
            return 1
        except CredoError:
            return 0

    try:
        with ThreadPoolExecutor(threads) as pool:
            for ok in pool.map(decide, range(len(rows)), chunksize=64):
                done += ok
    finally:
        log.close()
    return done


def fill(url: str, n: int, jobs: int, threads: int) -> None:
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fill_part, url, n, part, jobs, threads) for part in range(jobs)]
        recorded = sum(f.result() for f in futures)
    seconds = time.perf_counter() - start
    print(f"filled: {recorded:,} decisions recorded in {seconds:.1f} s ({recorded / seconds:,.0f}/s)")


def verify(url: str) -> None:
    from engine.audit.connect import open_store
    from engine.audit.verify import verify_store

    store = open_store(url, create=False)
    try:
        start = time.perf_counter()
        report = verify_store(store)
    finally:
        store.close()
    status = "OK" if report.ok else "FAILED"
    print(f"verify: {status}, {report.records:,} records in {time.perf_counter() - start:.1f} s")
    if not report.ok:
        raise SystemExit(1)


def stricter_policy(folder: Path) -> Path:
    """consumer_loan with a stricter minimum age (25 instead of 22) and a tighter DTI limit (0.45)."""
    text = (ROOT / "policies/consumer_loan/policy.yaml").read_text(encoding="utf-8")
    for old, new in (("applicant.age < 22", "applicant.age < 25"), ("dti > 0.55", "dti > 0.45")):
        if old not in text:
            raise SystemExit(f"policies/consumer_loan/policy.yaml no longer contains {old!r}")
        text = text.replace(old, new)
    path = folder / "consumer_loan_strict" / "policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="decisions to record")
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "credo-whatif-bench.db")
    parser.add_argument("--jobs", type=int, default=2, help="processes deciding during the fill")
    parser.add_argument("--threads", type=int, default=16, help="threads per fill process")
    parser.add_argument("--workers", type=int, default=2, help="what-if worker processes")
    parser.add_argument("--scorer", choices=["onnx", "native"], default="onnx")
    parser.add_argument("--skip-fill", action="store_true", help="reuse the store as it is")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--report", type=Path, default=None, help="where to write report.html/summary.json")
    args = parser.parse_args(argv)

    url = f"sqlite:///{args.store.resolve()}"
    if not args.skip_fill:
        if args.store.exists():
            raise SystemExit(f"{args.store} exists: remove it or pass --skip-fill")
        fill(url, args.n, args.jobs, args.threads)
    if not args.skip_verify:
        verify(url)

    from engine.audit.connect import open_store
    from engine.batch.report import write_report
    from engine.batch.whatif import WhatIfOptions, run_whatif

    with tempfile.TemporaryDirectory() as tmp:
        options = WhatIfOptions(
            policy=stricter_policy(Path(tmp)),
            models_dir=ROOT / "models",
            workers=args.workers,
            scorer=args.scorer,
        )
        store = open_store(url, create=False)
        try:
            result = run_whatif(store, options)
        finally:
            store.close()
    summary = result.summary()
    if args.report:
        html, _ = write_report(summary, args.report)
        print(f"report: {html}")
    overall = summary["overall"]
    print(
        f"what-if: {summary['decisions']:,} decisions in {summary['seconds']:.1f} s ="
        f" {summary['decisions_per_second']:,.0f} decisions/s"
        f" ({args.workers} worker(s), {args.scorer} scorer)"
    )
    print(
        f"approval {overall['approval_rate_old']:.4f} -> {overall['approval_rate_new']:.4f};"
        f" swaps {overall['swaps']}; errors {summary['errors']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
