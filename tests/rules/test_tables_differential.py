"""Differential test of decision tables: random tables under every hit policy (first, unique, priority,
collect with and without aggregation), with literal and expression outputs, give the same rows,
outputs and trace on the compiled evaluator (the policy's generated hit step),
durable_rules and the reference evaluator, and refuse the same inputs (two matches in a unique table)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.errors import DiagnosticSink, PolicyRuntimeError
from engine.policy.codegen import compile_policy
from engine.policy.compiler import build_policy
from engine.policy.source import parse_source
from engine.rules import CompiledEvaluator, DurableEvaluator, ReferenceEvaluator

compiled = CompiledEvaluator()
durable = DurableEvaluator()
reference = ReferenceEvaluator()
_names = itertools.count()

N_CELLS = [
    "-",
    "< 10",
    "<= 10",
    ">= 20",
    "> 0",
    "[0..10]",
    "(5..25)",
    "[10..20)",
    "10",
    "0, 20",
    "not([0..5])",
    "!= 15",
    "x.n * 2 > 30",
]
D_CELLS = ["-", "(0.3..0.5]", "< 0.3", ">= 0.5", "0.5", "not(< 0.1)"]
K_CELLS = ["-", "a", "b", "a, c", "not(b)", "!= c"]
HITS = [
    ("first", None),
    ("unique", None),
    ("priority", None),
    ("collect", None),
    ("collect", "sum"),
    ("collect", "min"),
    ("collect", "max"),
    ("collect", "count"),
]


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, str]:
    hit, aggregate = draw(st.sampled_from(HITS))
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(N_CELLS),
                st.sampled_from(D_CELLS),
                st.sampled_from(K_CELLS),
                st.one_of(st.integers(0, 4), st.integers(0, 4), st.sampled_from(['"n + 1"', '"d * 2"'])),
            ),
            min_size=1,
            max_size=7,
        )
    )
    lines = [f'      - ["{n}", "{d}", "{k}", {out}]' for n, d, k, out in rows]
    outputs = "{o: {values: [3, 1, 4, 0, 2]}}" if hit == "priority" else "[o]"
    agg = f"    aggregate: {aggregate}\n" if aggregate else ""
    text = (
        f"""\
policy: diff{next(_names)}
version: "1"
currency: CNY
inputs:
  x.n: {{type: integer, required: false}}
  x.d: {{type: decimal, required: false}}
  x.k: {{type: enum, values: [a, b, c], required: false}}
decision_tables:
  T:
    hit: {hit}
{agg}    inputs: {{n: x.n, d: x.d, k: x.k}}
    outputs: {outputs}
    rows:
"""
        + "\n".join(lines)
        + "\n"
    )
    return text, hit


_NUMBERS = st.one_of(st.sampled_from([-1, 0, 5, 10, 15, 20, 25, 30]), st.integers(-5, 40))
_DECIMALS = st.sampled_from([Decimal(v) for v in ("0", "0.1", "0.3", "0.4", "0.5", "0.50", "0.7")])
_KINDS = st.sampled_from(["a", "b", "c"])
# a missing optional input (None) in about one case in five per field
facts = st.fixed_dictionaries(
    {
        "x.n": st.one_of(_NUMBERS, _NUMBERS, _NUMBERS, _NUMBERS, st.none()),
        "x.d": st.one_of(_DECIMALS, _DECIMALS, _DECIMALS, _DECIMALS, st.none()),
        "x.k": st.one_of(_KINDS, _KINDS, _KINDS, _KINDS, st.none()),
    }
)


def _run(table: Any, fact: dict[str, Any], evaluator: Any) -> Any:
    try:
        hit = table.evaluate(dict(fact), evaluator)
    except PolicyRuntimeError as exc:
        return ("error", exc.message)
    return (hit.rows, dict(hit.outputs), hit.lines)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=tables(), cases=st.lists(facts, min_size=10, max_size=20))
def test_tables_fire_the_same_rows_on_compiled_durable_and_reference(
    spec: tuple[str, str], cases: list[dict[str, Any]]
) -> None:
    text, hit = spec
    sink = DiagnosticSink()
    src = parse_source("diff.yaml", text, sink)
    assert src is not None
    policy = build_policy(src, sink)
    errors = [d for d in sink.items if d.is_error and d.code != "TABLE_OVERLAP"]
    assert errors == [], text
    policy.program = compile_policy(policy)  # the table's hit step as generated source
    table = policy.decision_tables["T"]
    assert table.hit == hit
    for fact in cases:
        want = _run(table, fact, reference)
        assert _run(table, fact, compiled) == want, (text, fact)
        assert _run(table, fact, durable) == want, (text, fact)
    event(f"hit {hit}: {sum(bool(_run(table, f, reference)[0]) for f in cases) > 0}")


def test_every_hit_policy_is_generated() -> None:
    assert {hit for hit, _ in HITS} == {"first", "unique", "priority", "collect"}
