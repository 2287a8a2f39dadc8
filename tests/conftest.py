"""Markers by place: tests under tests/e2e/ start real servers (`e2e`), every other test is `unit`;
`slow` is set by hand on stress tests. `make test` runs unit and e2e without slow; CI adds slow."""

from __future__ import annotations

from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        in_e2e = item.path.is_relative_to(E2E)
        item.add_marker(pytest.mark.e2e if in_e2e else pytest.mark.unit)
