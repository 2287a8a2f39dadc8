"""Generated expression source (engine.expr.emit) against the closures it replaces on the compiled
path: random well-typed expressions on random facts (missing values, zeros, mixed int and Decimal)
give the same value of the same type, and raise exactly when the closure raises."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_expressions import SCOPE, TABLES

from engine.errors import PolicyRuntimeError
from engine.expr import check, compile_value
from engine.expr import types as t
from engine.expr.emit import RUNTIME, TRAPS, ExprWriter

NUMBERS = ["a", "b", "n", "m", "applicant.age", "0", "2", "0.5", "lookup(spread, s)"]
CONDITIONS = ["flag", "kind in ['x', 'y']", "kind not in ['z']", "s == 'A'", "True"]


def numbers(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(NUMBERS)
    if depth == 0:
        return leaf
    inner = numbers(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda x, op, y: f"({x} {op} {y})", inner, st.sampled_from(["+", "-", "*", "/"]), inner),
        st.builds(lambda x: f"-{x}", inner),
        st.builds(
            lambda f, x, y: f"{f}({x}, {y})", st.sampled_from(["min", "max", "coalesce"]), inner, inner
        ),
        st.builds(lambda x: f"abs({x})", inner),
        st.builds(
            lambda x, p: f"round({x}{p})",
            inner,
            st.sampled_from(["", ", 2", ", 1, 'half_up'", ", 0, 'ceiling'"]),
        ),
        st.builds(lambda c, x, y: f"({x} if {c} else {y})", conditions(depth - 1), inner, inner),
    )


def conditions(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(CONDITIONS)
    if depth == 0:
        return leaf
    inner, nested = numbers(depth - 1), conditions(depth - 1)
    ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
    return st.one_of(
        leaf,
        st.builds(lambda x, op, y: f"({x} {op} {y})", inner, ops, inner),
        st.builds(lambda x, y, z: f"({x} < {y} <= {z})", inner, inner, inner),
        st.builds(lambda c, d, op: f"({c} {op} {d})", nested, nested, st.sampled_from(["and", "or"])),
        st.builds(lambda c: f"not {c}", nested),
    )


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


FACTS = st.fixed_dictionaries(
    {
        "a": maybe(st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False)),
        "b": maybe(st.sampled_from([Decimal(0), Decimal("0.00"), Decimal("1.5"), Decimal("-3")])),
        "n": maybe(st.integers(-50, 50)),
        "m": maybe(st.sampled_from([0, 1, 7])),
        "applicant.age": maybe(st.integers(18, 90)),
        "flag": maybe(st.booleans()),
        "s": maybe(st.sampled_from(["A", "B", "C"])),
        "kind": maybe(st.sampled_from(["x", "y", "z"])),
    }
)


def emitted(node: t.Node, rounding: str) -> Any:
    """The function the generated module would hold for `node`."""
    namespace: dict[str, Any] = dict(RUNTIME)

    def bind(value: Any, prefix: str) -> str:
        name = f"{prefix}{len(namespace)}"
        namespace[name] = value
        return name

    writer = ExprWriter(bind, TABLES, rounding)
    writer.start()
    text = writer.value(node)
    loads = "".join(f"    {line}\n" for line in writer.loads())
    exec(
        compile(f"def f(fact):\n    get = fact.get\n{loads}    return {text}\n", "<emitted>", "exec"),
        namespace,
    )
    return namespace["f"]


def _outcome(fn: Any, fact: dict[str, Any], errors: tuple[type[BaseException], ...]) -> Any:
    try:
        value = fn(fact)
    except errors:
        return "raises"
    return (type(value).__name__, value)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    source=st.one_of(numbers(3), conditions(2)),
    rounding=st.sampled_from(["half_even", "half_up", "down"]),
    facts=st.lists(FACTS, min_size=4, max_size=4),
)
def test_generated_expressions_equal_their_closures(
    source: str, rounding: str, facts: list[dict[str, Any]]
) -> None:
    node, errors = check(source, SCOPE)
    assume(node is not None and not errors)
    assert node is not None
    closure = compile_value(node, tables=TABLES, rounding=rounding, source=source)
    generated = emitted(node, rounding)
    for fact in facts:
        want = _outcome(closure, fact, (PolicyRuntimeError,))
        assert _outcome(generated, fact, TRAPS) == want, (source, fact)


def test_an_operand_that_raises_raises_even_beside_a_missing_one() -> None:
    """The closures evaluate both operands before looking for None: so must the generated code."""
    node, _ = check("a + n / m", SCOPE)
    assert node is not None
    generated = emitted(node, "half_even")
    fact = {"a": None, "n": 1, "m": 0}
    try:
        generated(fact)
    except TRAPS:
        pass
    else:
        raise AssertionError("n / 0 beside a missing a returned instead of raising")


def test_names_become_locals_and_literals_are_quoted() -> None:
    node, _ = check("applicant.age * 2 if kind == 'x' else 0.5", SCOPE)
    assert node is not None
    writer = ExprWriter(lambda value, prefix: f"{prefix}0")
    writer.start()
    text = writer.value(node)
    assert writer.loads() == ["kind = get('kind')", "applicant_age = get('applicant.age')"]
    assert "'x'" in text and "D0" in text and "applicant.age" not in text
