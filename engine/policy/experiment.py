"""The `experiment` section: challenger versions that decide a stable share of the traffic, and
shadow versions that decide every request after the answer, recorded and never answered.

    experiment:
      key: applicant.id_number            # a declared input: the same value, the same arm, always
      arms: [{policy: consumer_loan@1.1.0, share: 0.1}]
      shadows: [consumer_loan@2.0.0]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["CHAMPION", "REF_PATTERN", "Arm", "Experiment"]

CHAMPION = "champion"
REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*@[0-9A-Za-z.+-]+$"


@dataclass(frozen=True)
class Arm:
    name: str
    version: str
    share: Decimal

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Experiment:
    key: str  # the declared input whose value assigns the arm
    salt: str  # the champion's name: assignment is independent of versions, workers and restarts
    arms: tuple[Arm, ...]
    shadows: tuple[tuple[str, str], ...]

    def assign(self, application: Mapping[str, Any]) -> Arm | None:
        """The challenger arm this application falls in, or None (the champion): a stable hash of
        the key's value, uniform on [0, 1), against the arms' cumulative shares."""
        value = _at(application, self.key)
        if value is None:
            return None
        digest = hashlib.sha256(f"{self.salt}\x00{value}".encode()).digest()
        point = Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2**64)
        edge = Decimal(0)
        for arm in self.arms:
            edge += arm.share
            if point < edge:
                return arm
        return None


def _at(application: Mapping[str, Any], path: str) -> Any:
    value: Any = application
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
