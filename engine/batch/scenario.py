"""Stress scenarios: YAML files (kept beside a policy in `scenarios/`, never read by the policy loader)
that shock the inputs (multiply incomes by 0.8, shift bureau scores by -40, set a seeded share of
applicants unemployed), the model's output (a PD multiplier, or PD from a stated macro link) and the
economics (cost of funds in basis points, LGD in percentage points). Every mistake is a located
diagnostic, as in policies.

    scenarios:
      recession:
        description: incomes fall, scores drift down, unemployment rises, funding costs jump
        inputs:
          applicant.income_monthly: {multiply: 0.8}
          bureau.score: {add: -40}
          applicant.employment_type: {set: unemployed, share: 0.05, seed: 19}
        model: {pd_multiplier: 1.25}
        economics: {cost_of_funds_bp: 200, lgd_points: 10}
      unemployment_up:
        model:
          pd_macro:
            link: logit
            variables:
              unemployment_rate: {change: 3.0, beta: 0.12}

A shocked number is kept inside the input's declared min/max; `share` picks the same applicants
(by row number and seed) however the file is chunked or the work spread over a cluster.

The macro link states how the model's 12-month PD moves with macroeconomic variables, as a credit
risk team's satellite model gives it: PD' = logistic(logit(PD) + sum of beta x change) over the
stated variables (beta per unit of the variable, change in the same unit). `pd_multiplier` and
`pd_macro` are two ways to shock one PD; a scenario states one of them. The cost-of-funds shift
re-prices every offer through the policy's lifetime economics (discounting and funding at the
shocked rate), so offers are re-ranked; a policy without `offers.lifetime` has no cost of funds to
shock, and the scenario is refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from engine.errors import DiagnosticSink, ScenarioError
from engine.expr.types import INTEGER
from engine.policy import Policy
from engine.policy.source import Source, load_source

__all__ = [
    "BASELINE",
    "LINKS",
    "InputShock",
    "MacroDriver",
    "Scenario",
    "load_scenarios",
    "share_draw",
    "stressed_policy",
]

_TOP = {"scenarios"}
_SCENARIO = {"description", "inputs", "model", "economics"}
_SHOCK = {"multiply", "add", "set", "share", "seed"}
_MODEL = {"pd_multiplier", "pd_macro"}
_MACRO = {"link", "variables"}
_DRIVER = {"change", "beta"}
LINKS = ("logit",)
_ECONOMICS = {"cost_of_funds_bp", "lgd_points"}
_MASK = (1 << 64) - 1
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MACRO_BOUND = Decimal(100)  # |change| and |beta| of one macro variable


@dataclass(frozen=True)
class InputShock:
    """One input changed: `multiply` or `add` a number, or `set` a value; for a `share` of rows."""

    field: str
    multiply: Decimal | None = None
    add: Decimal | None = None
    set: Any = None
    share: Decimal = Decimal(1)
    seed: int = 0


@dataclass(frozen=True)
class MacroDriver:
    """One macro variable of a PD link: its stated `change` and the PD's sensitivity `beta` to it."""

    variable: str
    change: Decimal
    beta: Decimal


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    inputs: tuple[InputShock, ...] = ()
    pd_multiplier: Decimal = Decimal(1)
    cost_of_funds_bp: Decimal = Decimal(0)
    lgd_points: Decimal = Decimal(0)
    pd_link: str = ""  # "logit" when the PD moves through a stated macro link
    pd_macro: tuple[MacroDriver, ...] = ()

    @property
    def pd_logit_shift(self) -> Decimal:
        """How far the macro link moves logit(PD): the sum of beta x change."""
        return sum((d.beta * d.change for d in self.pd_macro), Decimal(0))

    @property
    def funding_shift(self) -> Decimal:
        """The change in the annual cost of funds as a rate (200 bp -> 0.02)."""
        return self.cost_of_funds_bp / 10000

    def shock(self, application: Mapping[str, Any], row: int, policy: Policy) -> dict[str, Any]:
        """The application as this scenario sees it (a copy; `application` is left as it was)."""
        out = {k: dict(v) if isinstance(v, dict) else v for k, v in application.items()}
        for shock in self.inputs:
            if shock.share < 1 and share_draw(shock.seed, row) >= shock.share:
                continue
            group, _, name = shock.field.partition(".")
            node = out.get(group)
            if not isinstance(node, dict):
                node = out[group] = {}
            if shock.set is not None:
                node[name] = shock.set
                continue
            value = node.get(name)
            if value is None or isinstance(value, bool):
                continue
            number = Decimal(str(value))
            number = number * shock.multiply if shock.multiply is not None else number + (shock.add or 0)
            node[name] = _bounded(number, policy, shock.field)
        return out


BASELINE = Scenario("baseline", "the data as it is")


def stressed_policy(policy: Policy, scenario: Scenario) -> Policy:
    """The policy with the scenario's LGD and cost-of-funds shifts in its offers: the offers stage
    then prices and ranks every offer on the shocked economics, as it would if the policy said so."""
    offers = policy.offers
    if offers is None or not (scenario.lgd_points or scenario.cost_of_funds_bp):
        return policy
    lgd = min(offers.lgd + scenario.lgd_points / 100, Decimal(1))
    life = offers.lifetime
    if life is not None and scenario.cost_of_funds_bp:
        life = replace(life, cost_of_funds=life.cost_of_funds + scenario.funding_shift)
    return replace(policy, offers=replace(offers, lgd=lgd, lifetime=life))


def share_draw(seed: int, row: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, row): splitmix64, so no state crosses chunks."""
    z = (seed * 0x9E3779B97F4A7C15 + row + 1) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def _bounded(number: Decimal, policy: Policy, path: str) -> Any:
    decl = policy.inputs.get(path)
    if decl is not None:
        if decl.min is not None and number < Decimal(str(decl.min)):
            number = Decimal(str(decl.min))
        if decl.max is not None and number > Decimal(str(decl.max)):
            number = Decimal(str(decl.max))
        if decl.type == INTEGER:
            return int(number.to_integral_value(rounding=ROUND_HALF_EVEN))
    return str(number)


def load_scenarios(path: Path | str, policy: Policy) -> list[Scenario]:
    """The scenarios of a file, in file order; ScenarioError lists every problem with its location."""
    sink = DiagnosticSink()
    src = load_source(path, sink)
    scenarios: list[Scenario] = []
    if src is not None:
        scenarios = _Reader(src, sink, policy).read()
    if sink.has_errors:
        raise ScenarioError(sink.items)
    return scenarios


@dataclass
class _Reader:
    src: Source
    sink: DiagnosticSink
    policy: Policy
    seen: set[str] = field(default_factory=set)

    def read(self) -> list[Scenario]:
        data = self.src.data
        if not isinstance(data, dict):
            self._error("SCENARIO_SHAPE", "expected a mapping with `scenarios:`", ())
            return []
        self._keys(data, _TOP, ())
        body = data.get("scenarios")
        if not isinstance(body, dict) or not body:
            self._error("SCENARIO_SHAPE", "`scenarios` must map names to scenarios", ("scenarios",))
            return []
        out = []
        for name, spec in body.items():
            where = ("scenarios", name)
            if str(name) in (BASELINE.name, "challenger"):
                self._error(
                    "SCENARIO_NAME", f"`{name}` names another arm of the run; pick another name", where
                )
            elif not _NAME.fullmatch(str(name)):
                # the name is part of the rows file's name (rows-<name>.parquet)
                self._error(
                    "SCENARIO_NAME", "a scenario name is letters, digits, _ and - (1-64)", where, key=True
                )
            if not isinstance(spec, dict):
                self._error("SCENARIO_SHAPE", f"scenario {name!r} must be a mapping", where)
                continue
            self._keys(spec, _SCENARIO, where)
            out.append(self._scenario(str(name), spec, where))
        return out

    def _scenario(self, name: str, spec: dict[str, Any], where: tuple[Any, ...]) -> Scenario:
        shocks: list[InputShock] = []
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, dict):
            self._error("SCENARIO_SHAPE", "`inputs` must map input paths to shocks", (*where, "inputs"))
            inputs = {}
        for path, shock in inputs.items():
            at = (*where, "inputs", path)
            if path not in self.policy.inputs:
                close = difflib.get_close_matches(str(path), list(self.policy.inputs), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self._error(
                    "SCENARIO_INPUT", f"{path!r} is not an input of {self.policy.name}{hint}", at, key=True
                )
                continue
            if not isinstance(shock, dict):
                self._error("SCENARIO_SHAPE", "a shock is a mapping: {multiply|add|set, share, seed}", at)
                continue
            self._keys(shock, _SHOCK, at)
            kinds = [k for k in ("multiply", "add", "set") if k in shock]
            if len(kinds) != 1:
                self._error("SCENARIO_SHOCK", "give exactly one of multiply, add or set", at)
                continue
            kind = self.policy.inputs[path].type
            for key in ("multiply", "add"):
                if key in shock and not isinstance(shock[key], int | Decimal):
                    self._error("SCENARIO_VALUE", f"`{key}` must be a number", (*at, key))
                elif key in shock and not kind.numeric:
                    self._error(
                        "SCENARIO_SHOCK", f"`{key}` needs a number input; {path} is {kind}", (*at, key)
                    )
            if kind.values and "set" in shock and shock["set"] not in kind.values:
                allowed = ", ".join(kind.values)
                self._error("SCENARIO_VALUE", f"{path} takes one of: {allowed}", (*at, "set"))
            share = self._number(shock, "share", Decimal(1), at, low=Decimal(0), high=Decimal(1))
            seed = shock.get("seed", 0)
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                self._error("SCENARIO_VALUE", "`seed` must be a whole number >= 0", (*at, "seed"))
                seed = 0
            shocks.append(
                InputShock(
                    str(path),
                    multiply=_decimal(shock.get("multiply")),
                    add=_decimal(shock.get("add")),
                    set=shock.get("set"),
                    share=share,
                    seed=seed,
                )
            )
        model = self._section(spec, "model", _MODEL, where)
        economics = self._section(spec, "economics", _ECONOMICS, where)
        link, drivers = self._macro(model, (*where, "model"))
        if "cost_of_funds_bp" in economics and (
            self.policy.offers is None or self.policy.offers.lifetime is None
        ):
            self._error(
                "SCENARIO_SHOCK",
                f"{self.policy.name} has no cost of funds to shock (its offers have no `lifetime:`)",
                (*where, "economics", "cost_of_funds_bp"),
            )
        return Scenario(
            name=name,
            description=str(spec.get("description") or ""),
            inputs=tuple(shocks),
            pd_multiplier=self._number(
                model, "pd_multiplier", Decimal(1), (*where, "model"), low=Decimal(0), high=Decimal(100)
            ),
            cost_of_funds_bp=self._number(
                economics,
                "cost_of_funds_bp",
                Decimal(0),
                (*where, "economics"),
                low=Decimal(-10000),
                high=Decimal(10000),
            ),
            lgd_points=self._number(
                economics,
                "lgd_points",
                Decimal(0),
                (*where, "economics"),
                low=Decimal(-100),
                high=Decimal(100),
            ),
            pd_link=link,
            pd_macro=drivers,
        )

    def _macro(self, model: dict[str, Any], where: tuple[Any, ...]) -> tuple[str, tuple[MacroDriver, ...]]:
        """`pd_macro: {link: logit, variables: {NAME: {change, beta}, ...}}`, or ("", ()) when absent."""
        if "pd_macro" not in model:
            return "", ()
        at = (*where, "pd_macro")
        if "pd_multiplier" in model:
            self._error("SCENARIO_SHOCK", "give pd_multiplier or pd_macro, not both", at, key=True)
        spec = self._section(model, "pd_macro", _MACRO, where)
        if model["pd_macro"] is not None and not isinstance(model["pd_macro"], dict):
            return "", ()  # _section said it is not a mapping
        link = spec.get("link")
        if link not in LINKS:
            shown = "missing" if link is None else repr(link)
            where_link = (*at, "link") if "link" in spec else at
            self._error("SCENARIO_VALUE", f"`link` is {shown}; the links are: {', '.join(LINKS)}", where_link)
            link = LINKS[0]
        variables = spec.get("variables")
        if not isinstance(variables, dict) or not variables:
            self._error("SCENARIO_SHAPE", "`variables` must map macro variables to {change, beta}", at)
            return str(link), ()
        drivers = []
        for name, driver in variables.items():
            here = (*at, "variables", name)
            if not _VARIABLE.fullmatch(str(name)):
                self._error(
                    "SCENARIO_NAME", "a macro variable is a name: letters, digits and _", here, key=True
                )
            if not isinstance(driver, dict):
                self._error("SCENARIO_SHAPE", "a macro variable is a mapping: {change, beta}", here)
                continue
            self._keys(driver, _DRIVER, here)
            missing = [k for k in sorted(_DRIVER) if k not in driver]
            if missing:
                self._error("SCENARIO_SHAPE", f"give {' and '.join(missing)}", here)
                continue
            change, beta = (
                self._number(driver, key, Decimal(0), here, low=-_MACRO_BOUND, high=_MACRO_BOUND)
                for key in ("change", "beta")
            )
            drivers.append(MacroDriver(str(name), change, beta))
        return str(link), tuple(drivers)

    def _section(
        self, spec: dict[str, Any], key: str, allowed: set[str], where: tuple[Any, ...]
    ) -> dict[str, Any]:
        value = spec.get(key) or {}
        if not isinstance(value, dict):
            self._error("SCENARIO_SHAPE", f"`{key}` must be a mapping", (*where, key))
            return {}
        self._keys(value, allowed, (*where, key))
        return value

    def _number(
        self,
        spec: dict[str, Any],
        key: str,
        default: Decimal,
        where: tuple[Any, ...],
        low: Decimal | None = None,
        high: Decimal | None = None,
    ) -> Decimal:
        if key not in spec:
            return default
        value = spec[key]
        if not isinstance(value, int | Decimal) or isinstance(value, bool):
            self._error("SCENARIO_VALUE", f"`{key}` must be a number", (*where, key))
            return default
        number = Decimal(value)
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            self._error("SCENARIO_VALUE", f"`{key}` must be within {span}", (*where, key))
            return default
        return number

    def _keys(self, spec: dict[str, Any], allowed: set[str], where: tuple[Any, ...]) -> None:
        for key in spec:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = (
                    f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(sorted(allowed))}"
                )
                self._error("SCENARIO_KEY", f"unknown key {key!r}{hint}", (*where, key), key=True)

    def _error(self, code: str, message: str, path: tuple[Any, ...], key: bool = False) -> None:
        self.sink.error(code, message, self.src.key_at(path) if key else self.src.at(path))


def _decimal(value: Any) -> Decimal | None:
    return Decimal(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else None
