"""The bytes a caller receives: every shipped policy test input, sent as a DecideRequest and decided
with a frozen clock, ids and timer, answers with the very bytes pinned in golden/wire_sha256.json,
slim (Decide's default), with schedules, with the trace, and in full (GetDecision). The server's
encoding may get faster; what it sends must not change by one byte.
Regenerate after an intended change: CREDO_UPDATE_GOLDEN=1 pytest tests/server/test_server_wire_bytes.py"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from credo.v1 import decision_pb2 as pb
from google.protobuf import struct_pb2

from engine.server import convert
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "wire_sha256.json"
VARIANTS = {
    "slim": {"schedules": False, "trace": False},
    "schedules": {"schedules": True, "trace": False},
    "trace": {"schedules": False, "trace": True},
    "full": {"schedules": True, "trace": True},
}


def _shipped_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(policy, test slug, application as a caller sends it) for every shipped test that decides."""
    cases = []
    for path in sorted((ROOT / "policies").glob("*/policy.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            if "error" not in test.get("expect", {}):
                slug = re.sub(r"[^a-z0-9]+", "_", test["name"].lower()).strip("_")
                cases.append((doc["policy"], slug, json.loads(json.dumps(test["input"], default=str))))
    return cases


CASES = _shipped_cases()


def _wire(service: DecisionService, policy: str, slug: str, app: dict[str, Any]) -> dict[str, bytes]:
    struct = struct_pb2.Struct()
    struct.update(app)
    request = pb.DecideRequest(request_id=f"wire-{policy}-{slug}", policy=policy, application=struct)
    decision = service.submit(**convert.request_to_call(request)).result()
    return {
        # deterministic: a Struct's keys (outputs, trace values) are a map, whose order on the
        # wire protobuf leaves open (it differs between two processes of the same server)
        name: convert.decision_to_pb(decision, **options).SerializeToString(deterministic=True)
        for name, options in VARIANTS.items()
    }


def _hashes() -> dict[str, str]:
    ids = itertools.count(1)
    service = DecisionService(
        ROOT / "policies",
        ROOT / "models",
        clock=lambda: dt.datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=dt.UTC),
        ids=lambda now: f"00000000-0000-7000-8000-{next(ids):012d}",
        timer=lambda: 0.0,
    )
    return {
        f"{policy}/{slug}/{variant}": hashlib.sha256(data).hexdigest()
        for policy, slug, app in CASES
        for variant, data in _wire(service, policy, slug, app).items()
    }


def test_every_shipped_input_answers_with_the_pinned_bytes() -> None:
    got = _hashes()
    if os.environ.get("CREDO_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert len(got) == len(VARIANTS) * len(CASES) >= len(VARIANTS) * 40
    assert got == json.loads(GOLDEN.read_text(encoding="utf-8"))
    # the same answers again: now from whatever the encoder kept from the first ones
    assert _hashes() == got
