"""The generated source of list, item, membership, string and date expressions (engine.expr.emit)
computes what their closures compute, on the same facts, missing values included."""

from __future__ import annotations

from typing import Any

import pytest
from test_lists_dates_strings import FACT, SCOPE, VALUES

from engine.expr import check, compile_value
from engine.expr.emit import RUNTIME, ExprWriter

MISSING = {**FACT, "lines": None, "flags": None, "born": None, "name": None}
EMPTY = {**FACT, "lines": (), "flags": (), "amounts": ()}


def emitted(source: str) -> tuple[Any, Any]:
    """(the generated function, the closure) of `source`."""
    node, errors = check(source, SCOPE)
    assert node is not None, errors
    namespace: dict[str, Any] = dict(RUNTIME)

    def bind(value: Any, prefix: str) -> str:
        name = f"{prefix}{len(namespace)}"
        namespace[name] = value
        return name

    writer = ExprWriter(bind)
    writer.start()
    text = writer.value(node)
    loads = "".join(f"    {line}\n" for line in writer.loads())
    exec(
        compile(f"def f(fact):\n    get = fact.get\n{loads}    return {text}\n", "<emitted>", "exec"),
        namespace,
    )
    return namespace["f"], compile_value(node)


@pytest.mark.parametrize("source", [source for source, _ in VALUES])
@pytest.mark.parametrize("fact", [FACT, MISSING, EMPTY], ids=["full", "missing", "empty"])
def test_generated_source_computes_what_the_closure_computes(source: str, fact: dict[str, Any]) -> None:
    generated, closure = emitted(source)
    got, want = generated(fact), closure(fact)
    assert got == want and type(got) is type(want)


def test_a_boolean_list_call_in_a_condition_is_emitted_once_not_recursively() -> None:
    generated, closure = emitted(
        "any(lines, .dpd > 30) and not all(lines, .kind == 'card') or 'vip' not in flags"
    )
    for fact in (FACT, MISSING, EMPTY):
        assert generated(fact) == closure(fact)
