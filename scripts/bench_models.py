"""Scoring cost of the shipped models: one row and a 1,000-row batch, ONNX Runtime vs native
CatBoost, single-threaded (`.venv/bin/python scripts/bench_models.py [--model consumer_pd]`)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.models.scoring import NativeScorer, OnnxScorer, explain  # noqa: E402
from engine.models.store import ModelStore  # noqa: E402
from engine.models.synthetic import generate  # noqa: E402


def per_call_us(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean time per call, in microseconds."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def rows_for(name: str, store: ModelStore, count: int) -> list[dict[str, object]]:
    package = store.load(name, "1.0.0")
    if name == "consumer_pd":
        raw = generate(count, seed=99)
        sources = {f["name"]: f.get("column") or f.get("ratio") for f in package.card["features"]}
        rows = []
        for record in raw.to_dict("records"):
            rows.append(
                {
                    k: (record[s[0]] / record[s[1]] if isinstance(s, list) else record[s])
                    for k, s in sources.items()
                }
            )
        return rows
    import pandas as pd

    frame = pd.read_csv(ROOT / "models" / "data" / "german_credit.csv")
    records = frame[package.feature_names].to_dict("records")
    return [records[i % len(records)] for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", help="model name (default: both shipped models)")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args(argv)
    store = ModelStore(args.models)
    print(f"{'model':<14} {'case':<22} {'ONNX Runtime':>14} {'native CatBoost':>16} {'ONNX speed-up':>14}")
    for name in args.model or ["consumer_pd", "german_credit"]:
        bench(name, store)
    return 0


def bench(name: str, store: ModelStore) -> None:
    package = store.load(name, "1.0.0")
    onnx_scorer, native = OnnxScorer(package), NativeScorer(package, thread_count=1)
    rows = rows_for(name, store, 1000)
    one = rows[0]
    matrix = onnx_scorer.encoder.encode_rows(rows)
    single = matrix[:1]
    assert np.max(np.abs(onnx_scorer.pd_matrix(matrix) - native.pd_matrix(matrix))) <= 1e-6
    cases = [
        ("1 row, pd(mapping)", lambda: onnx_scorer.pd(one), lambda: native.pd(one), 300),
        ("1 row, encoded", lambda: onnx_scorer.pd_matrix(single), lambda: native.pd_matrix(single), 300),
        ("1000 rows, encoded", lambda: onnx_scorer.pd_matrix(matrix), lambda: native.pd_matrix(matrix), 10),
        ("1000 rows, pd_batch", lambda: onnx_scorer.pd_batch(rows), lambda: native.pd_batch(rows), 5),
    ]
    for label, onnx_fn, native_fn, calls in cases:
        onnx_us, native_us = per_call_us(onnx_fn, calls), per_call_us(native_fn, calls)
        speedup = native_us / onnx_us
        print(f"{name:<14} {label:<22} {_fmt(onnx_us):>14} {_fmt(native_us):>16} {speedup:>13.2f}x")
    explain_us = per_call_us(lambda: explain(package, one), 100)
    print(f"{name:<14} {'explain (SHAP, top 4)':<22} {'-':>14} {_fmt(explain_us):>16}")


def _fmt(us: float) -> str:
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1000:,.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
