"""Pipeline fixtures: a DecisionService on tests/pipeline/fixtures with frozen clock, ids and timer."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import FIXTURES, MODELS, FrozenClock

from engine.service import DecisionService


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., DecisionService]]:
    made: list[DecisionService] = []

    def make(**kwargs: Any) -> DecisionService:
        counter = itertools.count(1)
        kwargs.setdefault("clock", FrozenClock())
        kwargs.setdefault("ids", lambda now: f"00000000-0000-7000-8000-{next(counter):012d}")
        kwargs.setdefault("timer", lambda: 0.0)
        service = DecisionService(kwargs.pop("policies_dir", FIXTURES), MODELS, **kwargs)
        made.append(service)
        return service

    yield make
    for service in made:
        if service.log is not None:
            service.log.close()


@pytest.fixture
def service(make_service: Callable[..., DecisionService]) -> DecisionService:
    return make_service()
