"""Runs the sections of `credo bench` in order (quick or full sizes), collects their raw figures, the
ratios and the errors into one report (the JSON written by --json)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.bench.report import compute_ratios

__all__ = ["FULL", "QUICK", "SECTIONS", "Sizes", "run_bench"]


@dataclass(frozen=True)
class Sizes:
    mode: str
    pipeline_rounds: int
    model_scale: float
    rule_inputs: int  # synthetic facts for the rules and peer sections (+ the policy's own tests)
    peer_check: int  # of which checked three ways (Credo, ZEN, hand-written) before timing
    repeats: int
    batch_applications: int
    batch_check: int
    grpc_seconds: float
    memory_decisions: int


QUICK = Sizes("quick", 10, 0.3, 1000, 300, 3, 2000, 500, 2.0, 15_000)
FULL = Sizes("full", 50, 1.0, 5000, 1000, 5, 100_000, 2000, 8.0, 1_000_000)


@dataclass(frozen=True)
class Paths:
    policies: str
    models: str

    @property
    def consumer_loan(self) -> Path:
        return Path(self.policies) / "consumer_loan" / "policy.yaml"


def _pipeline(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.pipeline import bench_policy
    from engine.service import DecisionService

    service = DecisionService(paths.policies, paths.models)
    out = {}
    for path in sorted(Path(paths.policies).glob("*/policy.yaml")):
        policy = service.load_policy_file(path)
        out[policy.name] = bench_policy(service, policy, sizes.pipeline_rounds)
    return out


def _floor(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.floor import bench_floor

    return bench_floor(sizes.repeats)


def _models(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.models import bench_model
    from engine.models.store import ModelStore

    store = ModelStore(paths.models)
    return {name: bench_model(name, store, sizes.model_scale) for name in ("consumer_pd", "german_credit")}


def _inputs(sizes: Sizes, paths: Paths) -> tuple[Any, list[Any]]:
    from engine.bench.facts import scored_facts
    from engine.policy import load_policy

    policy = load_policy(paths.consumer_loan)
    tests = [t.input for t in policy.tests if "error" not in t.expect]
    return policy, scored_facts(policy, paths.models, sizes.rule_inputs, extra=tests)


def _rules(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.rules import bench_rules
    from engine.service import default_evaluator

    policy, inputs = _inputs(sizes, paths)
    return bench_rules(policy, default_evaluator(), inputs, sizes.repeats)


def _peer(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.peer import bench_peer
    from engine.service import default_evaluator

    policy, inputs = _inputs(sizes, paths)
    tests = len(inputs) - sizes.rule_inputs
    return bench_peer(policy, default_evaluator(), inputs, tests + sizes.peer_check, sizes.repeats)


def _batch(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.batch import bench_batch, bench_scaling

    out = bench_batch(paths.consumer_loan, paths.models, sizes.batch_applications, check=sizes.batch_check)
    rows = max(2000, sizes.batch_applications // 5)  # enough chunks to keep 2 workers busy
    out["scaling"] = bench_scaling(paths.consumer_loan, paths.models, rows)
    return out


def _grpc(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.grpc import bench_grpc

    return bench_grpc(sizes.grpc_seconds, workers=2, policies=paths.policies, models=paths.models)


def _records(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.records import bench_records

    return bench_records(paths.policies, paths.models)


def _memory(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.memory import bench_memory

    return bench_memory(sizes.memory_decisions, paths.policies, paths.models)


def _monitor(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.monitor import bench_monitor

    return bench_monitor(sizes.mode, paths.policies, sizes.repeats)


def _pii(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.pii import bench_pii

    return bench_pii(paths.policies, paths.models, sizes.pipeline_rounds)


def _experiment(sizes: Sizes, paths: Paths) -> dict[str, Any]:
    from engine.bench.experiment import bench_shadow

    return bench_shadow(paths.policies, paths.models, sizes.pipeline_rounds)


SECTIONS: dict[str, Callable[[Sizes, Paths], dict[str, Any]]] = {
    "rules": _rules,
    "peer": _peer,
    "pipeline": _pipeline,
    "floor": _floor,
    "models": _models,
    "batch": _batch,
    "grpc": _grpc,
    "records": _records,
    "memory": _memory,
    "monitor": _monitor,
    "pii": _pii,
    "experiment": _experiment,
}


def run_bench(
    quick: bool,
    policies: str = "policies",
    models: str = "models",
    only: list[str] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every section (or `only` these), then the ratios; a section that fails is reported in
    `errors` (an equivalence failure among them) and its ratios are left out."""
    sizes = QUICK if quick else FULL
    paths = Paths(policies, models)
    started = time.perf_counter()
    sections: dict[str, Any] = {}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name, section in SECTIONS.items():
        if only and name not in only:
            continue
        progress(f"{name} ...")
        t0 = time.perf_counter()
        try:
            sections[name] = section(sizes, paths)
        except Exception as exc:  # a broken section must not hide the others' figures
            errors[name] = f"{type(exc).__name__}: {exc}"
            progress(f"{name} FAILED: {errors[name]}\n{traceback.format_exc(limit=3)}")
        timings[name] = round(time.perf_counter() - t0, 2)
        progress(f"{name} done in {timings[name]:.1f} s")
    ratios, measured_as = compute_ratios(sections)
    from engine.bench.report import TARGETS

    return {
        "credo_bench": 1,
        "mode": sizes.mode,
        "sizes": asdict(sizes),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "section_seconds": timings,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()),
        },
        "ratios": ratios,
        "measured_as": measured_as,
        "targets": {key: str(target) for key, target in TARGETS.items()},
        "targets_met": {key: target.met(ratios[key]) for key, target in TARGETS.items() if key in ratios},
        "errors": errors,
        "sections": sections,
    }
