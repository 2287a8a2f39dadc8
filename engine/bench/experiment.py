"""In-process section `experiment`: what shadow policies cost the answers. The same applications are
decided one at a time (1 in flight) by two services on their own SQLite audit stores, one serving
consumer_loan as shipped, one with a shadow version deciding every request after its answer (in
its shadow process, engine.release.shadows); the calls alternate so both see the same machine.
Key `shadow_latency_cost` = p50 with / p50 without - 1. Closing the services waits for every shadow
decision to be recorded: `shadows_recorded` counts them in the store."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

from engine.audit.connect import open_store
from engine.bench.stats import percentile
from engine.service import DecisionService

__all__ = ["bench_shadow"]

SHADOW = "\nexperiment:\n  key: applicant.id_number\n  shadows: [consumer_loan@9.0.0]\n"


def bench_shadow(policies: str, models: str, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="credo-bench-shadow-") as tmp:
        root = Path(tmp)
        plain, shadowed = root / "plain", root / "shadowed"
        for target in (plain, shadowed):
            (target / "consumer_loan").mkdir(parents=True)
            shutil.copy(
                Path(policies) / "consumer_loan" / "policy.yaml", target / "consumer_loan" / "policy.yaml"
            )
        text = (plain / "consumer_loan" / "policy.yaml").read_text()
        version = yaml.safe_load(text)["version"]
        (shadowed / "consumer_loan@9.0.0").mkdir()
        (shadowed / "consumer_loan@9.0.0" / "policy.yaml").write_text(
            text.replace(f'version: "{version}"', 'version: "9.0.0"', 1)
        )
        (shadowed / "consumer_loan" / "policy.yaml").write_text(text + SHADOW)
        services = {
            name: DecisionService(folder, models, store=f"sqlite:///{root / name}.db")
            for name, folder in (("plain", plain), ("shadowed", shadowed))
        }
        try:
            policy = services["plain"].policy("consumer_loan")
            apps = [t.input for t in policy.tests if "error" not in t.expect]
            samples: dict[str, list[float]] = {"plain": [], "shadowed": []}
            for service in services.values():
                service.decide("consumer_loan", _customer(apps[0], -1), "warmup")
            pair = list(services.items())
            for r in range(rounds):
                for i, app in enumerate(apps):
                    for name, service in pair if (r + i) % 2 else pair[::-1]:  # neither always first
                        started = time.perf_counter()
                        service.decide("consumer_loan", _customer(app, i), f"{name}-{r}-{i}")
                        samples[name].append((time.perf_counter() - started) * 1000)
        finally:
            for service in services.values():
                service.close(timeout=120)  # the shadows queued are recorded first
        with closing(open_store(f"sqlite:///{root / 'shadowed'}.db")) as store:
            shadows_recorded = store.count() - (rounds * len(apps) + 1)
    return {
        "decisions": rounds * len(apps),
        "p50_ms": percentile(samples["plain"], 0.5),
        "shadow_p50_ms": percentile(samples["shadowed"], 0.5),
        "shadow_p99_ms": percentile(samples["shadowed"], 0.99),
        "shadows_recorded": shadows_recorded,
    }


def _customer(app: Mapping[str, Any], index: int) -> dict[str, Any]:
    out = copy.deepcopy(dict(app))
    out.setdefault("applicant", {})["id_number"] = f"B{index}"
    return out
