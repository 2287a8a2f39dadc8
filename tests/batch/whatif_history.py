"""A recorded history for the what-if tests: consumer_loan decisions one minute apart (the shipped
test inputs and 60 synthetic applicants), and a stricter copy of the policy (minimum age 30)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))

from replay_helpers import (
    copy_policies,
    minute_clock,
    service_with_log,
    shipped_inputs,
    synthetic_applications,
)

from engine.errors import CredoError

STRICT_AGE = 30
UNSTABLE = ("seconds", "decisions_per_second")


def build_history(root: Path) -> dict[str, Any]:
    policies = copy_policies(root)
    url = f"sqlite:///{root / 'audit.db'}"
    service = service_with_log(policies, url, clock=minute_clock())
    apps = [a for p, _, a in shipped_inputs(policies) if p == "consumer_loan"] + synthetic_applications(60)
    decided: list[tuple[int, str]] = []
    for i, app in enumerate(apps):
        try:
            decision = service.decide("consumer_loan", app, f"h{i}")
        except CredoError:
            continue
        decided.append((int(app["applicant"]["age"]), decision.outcome.value))
    assert service.log is not None
    service.log.close()
    strict = root / "strict" / "policy.yaml"
    strict.parent.mkdir()
    text = (policies / "consumer_loan" / "policy.yaml").read_text(encoding="utf-8")
    strict.write_text(text.replace("applicant.age < 22", f"applicant.age < {STRICT_AGE}"), encoding="utf-8")
    return {"url": url, "policies": policies, "decided": decided, "strict": strict, "root": root}


def stable_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of a what-if summary: timings and the (temporary) policy path left out."""
    out = {k: v for k, v in summary.items() if k not in UNSTABLE}
    out["policy"] = {k: v for k, v in summary["policy"].items() if k != "path"}
    return out
