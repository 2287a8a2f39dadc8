"""`credo simulate`: a population (Parquet, CSV or JSON lines) decided on a policy in chunks, under
the baseline and each stress scenario, and on a challenger policy, side by side: per-row results
(Parquet) and portfolio figures (approval, booked volume, expected loss and profit by grade,
segment and product, swap matrices against the champion's baseline). `mode="preapproval"` reads a
customer base instead: the best offer the policy would make each customer today, and a campaign
summary.

Each chunk is one task (`decide_chunk`) deciding every arm for the same rows, so a scenario or the
challenger is compared with the baseline on exactly the same applications, wherever the task ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.batch.decider import BatchDecider, package_for
from engine.batch.inputs import count_rows, iter_chunks
from engine.batch.pool import Pool, run_in_order
from engine.batch.portfolio import Portfolio, Row, row_of, swap_matrix
from engine.batch.scenario import BASELINE, Scenario, load_scenarios, stressed_policy
from engine.errors import UsageError
from engine.models.store import load_package
from engine.policy import Policy, load_policy

__all__ = [
    "Arm",
    "Simulation",
    "SimulationOptions",
    "campaign",
    "decide_chunk",
    "plan",
    "simulate",
    "total_rows",
]

MODES = ("simulate", "preapproval")


@dataclass(frozen=True)
class SimulationOptions:
    policy: Path
    data: Path
    challenger: Path | None = None
    scenarios: Path | None = None
    models_dir: Path = Path("models")
    mode: str = "simulate"
    chunk: int = 1000
    scorer: str = "onnx"  # or "native" (engine.batch.decider)
    id_field: str | None = None  # a dotted input path copied into the rows (pre-approval lists)


@dataclass(frozen=True)
class Arm:
    """One policy under one scenario: what a worker needs to decide a chunk (picklable, hashable)."""

    name: str
    policy_path: str
    package_path: str | None
    scorer: str = "onnx"
    scenario: Scenario = BASELINE


# -- the task (runs in a worker; everything it loads is kept per process)
_policies: dict[str, Policy] = {}
_deciders: dict[Arm, tuple[BatchDecider, Decimal | None]] = {}


def _decider(arm: Arm) -> tuple[BatchDecider, Decimal | None]:
    found = _deciders.get(arm)
    if found is None:
        policy = _policies.get(arm.policy_path)
        if policy is None:
            policy = _policies[arm.policy_path] = load_policy(arm.policy_path)
        stressed = stressed_policy(policy, arm.scenario)
        package = load_package(Path(arm.package_path)) if arm.package_path else None
        scenario = arm.scenario
        decider = BatchDecider(
            stressed,
            package,
            arm.scorer,
            pd_multiplier=float(scenario.pd_multiplier),
            pd_logit_shift=float(scenario.pd_logit_shift),
        )
        lgd = stressed.offers.lgd if stressed.offers is not None else None
        found = _deciders[arm] = (decider, lgd)
    return found


def decide_chunk(
    arms: Sequence[Arm], start: int, applications: Sequence[Mapping[str, Any]], id_field: str | None = None
) -> tuple[list[list[Row]], list[str], list[str | None]]:
    """Rows start..start+n decided on every arm; also each arm's scorer (as used on this worker) and
    each row's `id_field` value (None when not asked for)."""
    ids = [_lookup(a, id_field) for a in applications] if id_field else []
    out: list[list[Row]] = []
    scorers: list[str] = []
    for arm in arms:
        decider, lgd = _decider(arm)
        scenario = arm.scenario
        names = frozenset(decider.policy.inputs)
        apps = [declared_only(a, names) for a in applications]
        if scenario.inputs:
            apps = [scenario.shock(a, start + i, decider.policy) for i, a in enumerate(apps)]
        decided = decider.decide(apps)
        out.append([row_of(start + i, d, lgd) for i, d in enumerate(decided)])
        scorers.append(decider.scorer_name)
    return out, scorers, ids


def declared_only(application: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """The application without the columns the policy does not declare (a data set carries ids,
    targets and more; serving refuses unknown fields, a population run leaves them aside)."""
    out: dict[str, Any] = {}
    for group, value in application.items():
        if group in names:
            out[group] = value
        elif isinstance(value, Mapping):
            kept = {k: v for k, v in value.items() if f"{group}.{k}" in names}
            if kept:
                out[group] = kept
    return out


def _lookup(application: Mapping[str, Any], path: str) -> str | None:
    node: Any = application
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if node is None else str(node)


# -- the driver
@dataclass
class Simulation:
    """The running result; `summary()` is the JSON the report is drawn from."""

    options: SimulationOptions
    arms: list[Arm]
    policies: dict[str, dict[str, Any]]
    pool: str = ""
    portfolios: dict[str, Portfolio] = field(default_factory=dict)
    swaps: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    points: dict[str, dict[int, int]] = field(default_factory=dict)
    scorers: set[str] = field(default_factory=set)
    currency: str = ""
    rows: int = 0
    seconds: float = 0.0

    def add(self, rows_by_arm: Sequence[Sequence[Row]]) -> None:
        baseline = rows_by_arm[0]
        self.rows += len(baseline)
        for arm, rows in zip(self.arms, rows_by_arm, strict=True):
            portfolio = self.portfolios.setdefault(arm.name, Portfolio())
            points = self.points.setdefault(arm.name, {})
            swaps = self.swaps.setdefault(arm.name, {})
            for base, row in zip(baseline, rows, strict=True):
                portfolio.add(row)
                if row.points is not None:
                    points[row.points] = points.get(row.points, 0) + 1
                key = (base.outcome, row.outcome)
                swaps[key] = swaps.get(key, 0) + 1

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.options.mode,
            "data": {"file": self.options.data.name, "rows": self.rows},
            "currency": self.currency,
            "policies": self.policies,
            "arms": [
                {
                    "name": arm.name,
                    "policy": _role(arm, self.arms[0]),
                    "scenario": arm.scenario.name,
                    "description": arm.scenario.description,
                    "shocks": _shocks(arm.scenario),
                }
                for arm in self.arms
            ],
            "results": {name: p.to_dict() for name, p in self.portfolios.items()},
            "swap_matrices": {
                name: {"against": self.arms[0].name, "matrix": swap_matrix(pairs)}
                for name, pairs in self.swaps.items()
                if name != self.arms[0].name
            },
            "score_points": {
                name: {str(k): v for k, v in sorted(points.items())} for name, points in self.points.items()
            },
            "method": {
                "scorer": ", ".join(sorted(self.scorers)),
                "rows_per_chunk": self.options.chunk,
                "economics": "read off each decision's best offer: its expected profit and expected "
                "loss (lifetime NPVs; PD x LGD x amount for a 1.x 12-month objective); LGD and "
                "cost-of-funds shocks re-price and re-rank every offer on the shocked economics",
                "booked": "approvals only, each taking the best (first-ranked) offer",
            },
        }
        if self.options.mode == "preapproval":
            out["campaign"] = campaign(self.portfolios[self.arms[0].name])
        return out

    def timing(self) -> dict[str, Any]:
        """Kept apart from summary(): the same data gives the same summary, whatever ran it how fast."""
        per_s = round(self.rows / self.seconds, 1) if self.seconds > 0 else None
        return {"seconds": round(self.seconds, 3), "rows_per_second": per_s, "pool": self.pool}


def _role(arm: Arm, champion: Arm) -> str:
    return "champion" if arm.policy_path == champion.policy_path else "challenger"


def _shocks(scenario: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for shock in scenario.inputs:
        kind = "multiply" if shock.multiply is not None else "add" if shock.add is not None else "set"
        value = (
            shock.multiply
            if shock.multiply is not None
            else shock.add
            if shock.add is not None
            else shock.set
        )
        out[shock.field] = {kind: str(value), "share": str(shock.share), "seed": shock.seed}
    if scenario.pd_multiplier != 1:
        out["model.pd_multiplier"] = str(scenario.pd_multiplier)
    if scenario.pd_macro:
        out["model.pd_macro"] = {
            "link": scenario.pd_link,
            "logit_shift": str(scenario.pd_logit_shift),
            **{d.variable: {"change": str(d.change), "beta": str(d.beta)} for d in scenario.pd_macro},
        }
    if scenario.cost_of_funds_bp:
        out["economics.cost_of_funds_bp"] = str(scenario.cost_of_funds_bp)
    if scenario.lgd_points:
        out["economics.lgd_points"] = str(scenario.lgd_points)
    return out


def campaign(portfolio: Portfolio) -> dict[str, Any]:
    """The pre-approval campaign: who gets an offer, how much credit and profit it puts on offer."""
    overall = portfolio.overall
    return {
        "customers": overall.count,
        "pre_approved": overall.outcomes["APPROVE"],
        "referred": overall.outcomes["REFER"],
        "declined": overall.outcomes["DECLINE"],
        "not_decided": overall.outcomes["ERROR"],
        "credit_offered": str(overall.booked.quantize(Decimal("0.01"))),
        "expected_profit": str(overall.expected_profit.quantize(Decimal("0.01"))),
        "by_product": {
            name: {
                "customers": t.outcomes["APPROVE"],
                "credit_offered": str(t.booked.quantize(Decimal("0.01"))),
                "expected_profit": str(t.expected_profit.quantize(Decimal("0.01"))),
            }
            for name, t in sorted(portfolio.by_product.items())
            if t.outcomes["APPROVE"]
        },
    }


def plan(options: SimulationOptions) -> tuple[list[Arm], dict[str, dict[str, Any]]]:
    """The arms of a run: the champion's baseline, each scenario on the champion, the challenger."""
    if options.mode not in MODES:
        raise UsageError(f"--mode {options.mode!r}: use one of {', '.join(MODES)}")
    if options.chunk < 1:
        raise UsageError("--chunk must be at least 1")
    champion = load_policy(options.policy)
    policies = {"champion": _describe(champion)}
    package = package_for(champion, options.models_dir)
    arms = [Arm("baseline", str(options.policy), _path(package), options.scorer)]
    scenarios = load_scenarios(options.scenarios, champion) if options.scenarios else []
    arms += [Arm(s.name, str(options.policy), _path(package), options.scorer, s) for s in scenarios]
    if options.challenger is not None:
        challenger = load_policy(options.challenger)
        policies["challenger"] = _describe(challenger)
        arms.append(
            Arm(
                "challenger",
                str(options.challenger),
                _path(package_for(challenger, options.models_dir)),
                options.scorer,
            )
        )
    return arms, policies


def _describe(policy: Policy) -> dict[str, Any]:
    out: dict[str, Any] = {"name": policy.name, "version": policy.version, "sha256": policy.sha256}
    out["currency"] = policy.currency
    if policy.score is not None:
        out["model"] = {"name": policy.score.model_name, "version": policy.score.model_version}
    return out


def _path(package: Any) -> str | None:
    return str(package.path) if package is not None else None


def simulate(
    options: SimulationOptions,
    pool: Pool,
    progress: Callable[[int], None] | None = None,
    rows_sink: Callable[[str, Sequence[Row], Sequence[str | None]], None] | None = None,
) -> Simulation:
    """Run the whole file on `pool`; `progress(n)` after each chunk; `rows_sink(arm, rows)` receives
    each arm's rows chunk by chunk, in file order, with the rows' ids (the Parquet writer)."""
    started = time.perf_counter()
    arms, policies = plan(options)
    result = Simulation(options, arms, policies, pool=pool.description)
    result.currency = policies["champion"]["currency"]
    arms_tuple = tuple(arms)

    def jobs() -> Iterator[tuple[Any, ...]]:
        start = 0
        for chunk in iter_chunks(options.data, options.chunk):
            yield (arms_tuple, start, chunk, options.id_field)
            start += len(chunk)

    for rows_by_arm, scorers, ids in run_in_order(pool, decide_chunk, jobs()):
        result.add(rows_by_arm)
        result.scorers.update(scorers)
        if rows_sink is not None:
            for arm, rows in zip(arms, rows_by_arm, strict=True):
                rows_sink(arm.name, rows, ids)
        if progress is not None:
            progress(len(rows_by_arm[0]))
    result.seconds = time.perf_counter() - started
    return result


def total_rows(options: SimulationOptions) -> int | None:
    """Rows in the data file, for the progress bar."""
    return count_rows(options.data)
