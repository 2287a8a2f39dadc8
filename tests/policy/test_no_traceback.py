"""Whatever an author writes, loading reports diagnostics and never raises anything else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.expr import BOOLEAN, Scope, check
from engine.expr.types import INTEGER
from engine.policy import check_text

SHIPPED_PATH = Path(__file__).resolve().parents[2] / "policies" / "consumer_loan" / "policy.yaml"
SHIPPED = SHIPPED_PATH.read_text("utf-8")
JUNK = ["", " ", ":", "'", "[", "{", "x", "-", "#", "0", "@", "__", "\t", "é"]
LINES = SHIPPED.split("\n")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_gives_diagnostics_not_exceptions(text: str) -> None:
    for d in check_text(text, "x.yaml"):
        assert d.location.line >= 1 and d.location.col >= 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mangled_shipped_policy_gives_diagnostics_not_exceptions(data: st.DataObject) -> None:
    lines = list(LINES)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        j = data.draw(st.integers(0, len(lines[i])))
        junk = data.draw(st.sampled_from(JUNK))
        lines[i] = lines[i][:j] + junk + lines[i][j + 1 :]
    for d in check_text("\n".join(lines), "p.yaml"):
        assert d.code != "INTERNAL"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abn.()[]<>=!+-*/ 0123456789'\"andornotifelseinmaxlookupcoalesce,", max_size=40))
def test_random_expressions_are_checked_not_crashed(source: str) -> None:
    check(source, Scope({"a": INTEGER, "b.n": INTEGER}), BOOLEAN)
