"""A stand-in decision core for the server's process-model tests (reload, crash, auth, limits):
it reads each policy.yaml's name and version and declines applicants under 21, nothing more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from engine.decision import Decision, Outcome, PolicyRef, Reason, TraceEntry
from engine.errors import FieldViolation, InvalidInput, NotFound, PolicyError, VersionNotLoaded
from engine.replay import ReplayResult
from engine.service import PendingDecision


class FakeService:
    def __init__(self, policies_dir: Path, models_dir: Path, store: Any = None, ledger: Any = None):
        self.policies: dict[str, PolicyRef] = {}
        self.log = None  # nothing is recorded
        self.loaded_at = dt.datetime.now(dt.UTC).isoformat()
        for path in sorted(Path(policies_dir).glob("*/policy.yaml")):
            raw = path.read_bytes()
            doc = yaml.safe_load(raw)
            if not isinstance(doc, dict) or "version" not in doc:
                from engine.errors import Diagnostic, Location

                raise PolicyError([Diagnostic("SCHEMA", "no version", Location(str(path), 1, 1))])
            self.policies[str(doc["policy"])] = PolicyRef(
                str(doc["policy"]), str(doc["version"]), hashlib.sha256(raw).hexdigest()
            )
        # A worker that should crash on a given request (kill -9 tests) reads this from the env.
        self.slow = float(os.environ.get("CREDO_FAKE_SLOW", "0"))

    def decide(
        self,
        policy: str,
        application: Mapping[str, Any],
        request_id: str,
        language: str = "en",
        version: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Decision:
        ref = self.policies.get(policy)
        if ref is None:
            raise NotFound(f"unknown policy {policy!r}")
        if version and version != ref.version:
            raise VersionNotLoaded(f"policy {policy} version {version} is not loaded (serving {ref.version})")
        age = (application.get("applicant") or {}).get("age")
        if not isinstance(age, int):
            raise InvalidInput([FieldViolation("applicant.age", "must be an integer")])
        if self.slow:
            started = os.environ.get("CREDO_FAKE_STARTED")
            if started:  # tells a test this call is in flight (a file named after the request)
                Path(started, request_id).touch()
            time.sleep(self.slow)
        declined = age < 21
        return Decision(
            decision_id=uuid.uuid4().hex,
            request_id=request_id,
            outcome=Outcome.DECLINE if declined else Outcome.APPROVE,
            reasons=(Reason("AGE_MIN", "too young", "eligibility", "age_min"),) if declined else (),
            score=None,
            segments=(),
            limit=None if declined else Decimal("10000.00"),
            annual_rate=None if declined else Decimal("0.0725"),
            offers=(),
            policy=ref,
            models=(),
            trace=(TraceEntry("eligibility", ("age_min",) if declined else (), 0.01),),
            decided_at=dt.datetime.now(dt.UTC).isoformat(),
        )

    def submit(self, *args: Any, **kwargs: Any) -> PendingDecision:
        return PendingDecision(self.decide(*args, **kwargs))

    def get_decision(self, decision_id: str | None = None, request_id: str | None = None) -> Decision:
        raise NotFound("this service keeps no decision log")

    def replay(self, decision_id: str) -> ReplayResult:
        raise NotFound("this service keeps no decision log")

    def warm_up(self) -> None:
        pass

    def list_policies(self) -> list[dict[str, Any]]:
        return [
            {"name": r.name, "version": r.version, "sha256": r.sha256, "loaded_at": self.loaded_at}
            for r in self.policies.values()
        ]
