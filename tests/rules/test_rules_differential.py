"""Differential property test: the compiled evaluator, durable_rules and the reference evaluator fire
exactly the same rules on random rule sets and random facts (150 rule sets x 20-30 facts: 3,000+
cases per run)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_strategies import facts, numbers, rulesets, strings, wide_rulesets

from engine.rules import CompiledEvaluator, DurableEvaluator, ReferenceEvaluator
from engine.rules.encoding import encode_value
from engine.rules.ir import RuleSet

MIN_CASES = 2_000


def test_compiled_and_durable_fire_exactly_what_the_reference_fires() -> None:
    compiled, durable, reference = CompiledEvaluator(), DurableEvaluator(), ReferenceEvaluator()
    checked: list[int] = []

    # Few rule sets, many facts each: every ruleset is registered once and leaks its C memory.
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ruleset=rulesets(), cases=st.lists(facts(), min_size=20, max_size=30))
    def agree(ruleset: RuleSet, cases: list[dict[str, Any]]) -> None:
        for fact in cases:
            want = reference.fire(ruleset, fact)
            assert compiled.fire(ruleset, fact) == want, fact
            assert durable.fire(ruleset, fact) == want, fact
        checked.append(len(cases))

    agree()
    assert sum(checked) >= MIN_CASES


def test_all_three_agree_on_wide_rulesets_with_many_activations() -> None:
    compiled, durable, reference = CompiledEvaluator(), DurableEvaluator(), ReferenceEvaluator()

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ruleset=wide_rulesets(), cases=st.lists(facts(), min_size=15, max_size=20))
    def agree(ruleset: RuleSet, cases: list[dict[str, Any]]) -> None:
        for fact in cases:
            want = reference.fire(ruleset, fact)
            assert compiled.fire(ruleset, fact) == want, fact
            assert durable.fire(ruleset, fact) == want, fact

    agree()


@settings(max_examples=1000, deadline=None)
@given(
    pair=st.one_of(
        st.tuples(numbers, numbers),
        st.tuples(strings, strings),
        st.tuples(st.booleans(), st.booleans()),
    )
)
def test_encoding_preserves_order_and_equality(pair: tuple[Any, Any]) -> None:
    left, right = pair
    assert (encode_value(left) == encode_value(right)) == (left == right)
    assert (encode_value(left) < encode_value(right)) == (left < right)
