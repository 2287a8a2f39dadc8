"""In-process decide() latency per shipped policy: p50/p99 over the policy's own test inputs, each
stage's share, and the floor (the ONNX call plus the rule stages measured alone) it is compared to.
The measurement lives in engine/bench/pipeline.py (shared with `credo bench`).

Usage: .venv/bin/python scripts/bench_pipeline.py [--rounds 50] [--policies policies] [--models models]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bench.pipeline import bench_policy, describe
from engine.service import DecisionService


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--models", default="models")
    parser.add_argument(
        "--cold", action="store_true", help="clear the schedule/APR caches before every decision (worst case)"
    )
    args = parser.parse_args()
    service = DecisionService(args.policies, args.models)
    for path in sorted(Path(args.policies).glob("*/policy.yaml")):
        policy = service.load_policy_file(path)
        print("\n".join(describe(bench_policy(service, policy, args.rounds, args.cold))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
