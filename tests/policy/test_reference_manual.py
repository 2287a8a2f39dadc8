"""docs/policy-reference.md against the schema and the expression checker: every key a policy file
may hold is documented with the right required/default, nothing documented is unknown, and every
expression function has a row. Adding a key or a function without its manual entry fails here."""

from __future__ import annotations

import re
from pathlib import Path

from engine.expr.check import FUNCTIONS, ROUNDING_MODES
from engine.policy.reference import policy_keys, shown_default

MANUAL = Path(__file__).resolve().parents[2] / "docs" / "policy-reference.md"


def _section(title: str) -> str:
    text = MANUAL.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _rows(section: str) -> dict[str, list[str]]:
    """First cell (in backticks) -> the row's cells, for every table row of `section`."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        found = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if found:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", found.group(2))]
            assert found.group(1) not in rows, f"{found.group(1)} is documented twice"
            rows[found.group(1)] = cells
    return rows


def test_every_policy_key_is_in_the_manual_and_every_documented_key_exists() -> None:
    documented = _rows(_section("Policy keys"))
    schema = {key.path for key in policy_keys()}
    assert sorted(schema - set(documented)) == [], "keys the schema accepts but the manual does not document"
    assert sorted(set(documented) - schema) == [], "keys the manual documents but the schema refuses"


def test_the_manual_states_each_key_s_default_and_whether_it_is_required() -> None:
    documented = _rows(_section("Policy keys"))
    wrong = []
    for key in policy_keys():
        if key.path not in documented:  # reported by the test above
            continue
        kind, default, meaning = documented[key.path]
        assert kind and meaning, f"{key.path}: type and meaning must be filled in"
        if key.required != (default == "required"):
            wrong.append(f"{key.path}: schema says required={key.required}, manual says {default!r}")
        elif shown_default(key) is not None and default != f"`{shown_default(key)}`":
            wrong.append(f"{key.path}: schema default {shown_default(key)!r}, manual says {default!r}")
    assert wrong == []


def test_every_expression_function_is_in_the_manual_and_no_other() -> None:
    documented = {call.split("(")[0] for call in _rows(_section("Expressions"))}
    assert documented == set(FUNCTIONS)


def test_the_manual_documents_round_modes_the_checker_accepts() -> None:
    row = _rows(_section("Expressions"))["round(x, places, mode)"]
    assert all(f"'{mode}'" in row[1] for mode in ROUNDING_MODES)


def test_the_readme_links_the_manual() -> None:
    readme = (MANUAL.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/policy-reference.md" in readme
