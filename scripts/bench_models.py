"""Scoring cost of the shipped models: one row and a 1,000-row batch, ONNX Runtime vs native
CatBoost, single-threaded (`.venv/bin/python scripts/bench_models.py [--model consumer_pd]`).
The measurement lives in engine/bench/models.py (shared with `credo bench`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.bench.models import bench_model, fmt_us  # noqa: E402
from engine.models.store import ModelStore  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", help="model name (default: both shipped models)")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args(argv)
    store = ModelStore(args.models)
    print(f"{'model':<14} {'case':<22} {'ONNX Runtime':>14} {'native CatBoost':>16} {'ONNX speed-up':>14}")
    for name in args.model or ["consumer_pd", "german_credit"]:
        result = bench_model(name, store)
        for label, case in result["cases"].items():
            onnx_us, native_us = case["onnx_us"], case["native_us"]
            print(
                f"{name:<14} {label:<22} {fmt_us(onnx_us):>14} {fmt_us(native_us):>16} "
                f"{native_us / onnx_us:>13.2f}x"
            )
        print(f"{name:<14} {'explain (SHAP, top 4)':<22} {'-':>14} {fmt_us(result['explain_us']):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
