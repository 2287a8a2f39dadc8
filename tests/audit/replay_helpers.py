"""Helpers for the replay and what-if tests: a private copy of the shipped policies (so a test may
edit them on disk), their own test inputs, synthetic applications, and a service with a real log.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from engine.audit.log import DecisionLog
from engine.audit.pii import PiiVault
from engine.audit.pii_keys import MasterKey
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
START = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
TEST_KEY = MasterKey(bytes(range(32)))  # the personal-data master key of the tests' stores


def copy_policies(dest: Path) -> Path:
    """The shipped policies/ folder copied under `dest` (same bytes, so the same sha256)."""
    target = dest / "policies"
    shutil.copytree(ROOT / "policies", target)
    return target


def shipped_inputs(policies: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(policy name, test name, application) for every test of every shipped policy."""
    out = []
    for path in sorted(policies.glob("*/policy.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc.get("tests") or []:
            application = json.loads(json.dumps(case["input"], default=str))  # dates etc. as text
            out.append((str(doc["policy"]), str(case["name"]), application))
    return out


def minute_clock(start: dt.datetime = START) -> Callable[[], dt.datetime]:
    """A clock one minute further on every call, so windows over history are exact."""
    ticks = iter(range(10**9))
    return lambda: start + dt.timedelta(minutes=next(ticks))


def service_with_log(
    policies: Path, url: str, clock: Callable[[], dt.datetime] | None = None
) -> DecisionService:
    log = DecisionLog(url)
    # SQLite: the key file made beside the store, which every later service and command finds;
    # PostgreSQL has no such default (an operator passes --pii-key-file): the tests' key
    vault = None if url.startswith("sqlite:") else PiiVault(log.store, TEST_KEY)
    if clock is None:
        return DecisionService(policies, MODELS, store=log, pii=vault)
    return DecisionService(policies, MODELS, store=log, clock=clock, pii=vault)


def synthetic_applications(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Generated consumer_loan applicants as nested JSON (the generator's dotted columns)."""
    from engine.models.synthetic import generate

    apps = []
    for row in generate(n, seed).to_dict("records"):
        nested: dict[str, dict[str, Any]] = {}
        for column, value in row.items():
            if column == "default_12m":
                continue
            group, name = column.split(".", 1)
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, float):
                value = str(int(value)) if value.is_integer() else repr(value)
            nested.setdefault(group, {})[name] = value
        if nested["loan"]["purpose"] == "debt_consolidation":
            nested["loan"]["purpose"] = "other"
        apps.append(nested)
    return apps
