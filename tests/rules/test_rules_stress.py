"""Stress: 8 threads, 50,000 decisions on DurableEvaluator, no crash, no wrong answer, flat memory.
Runs in a subprocess so that a segfault in the C engine fails this test instead of killing pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("rules_stress_worker.py")


@pytest.mark.slow
def test_eight_threads_drive_50000_decisions_without_crash_and_with_flat_memory() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(WORKER)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"worker died with {done.returncode}: {done.stderr[-2000:]}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["decisions"] >= 50_000
    assert summary["threads"] == 8
    assert summary["errors"] == 0, summary["first_errors"]
    assert summary["rss_end_kb"] < summary["rss_warm_kb"] * 1.2, summary
