"""The guards every served policy passes: its own tests pass, and its version names one text only
(a version seen before with another sha256 — by this server or in the audit store's archive — is
refused). A refused policy is listed with its reasons and never decides."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from engine.policy import Policy
from engine.policy.testing import Decide, run_tests

__all__ = ["VersionLedger", "archived_version_conflicts", "test_failures", "version_conflict"]


def test_failures(policy: Policy, decide: Decide) -> list[str]:
    """Each failed expectation of the policy's own tests, `file:line:col: test NAME failed: what`."""
    report = run_tests(policy, decide)
    return [
        f"{r.location}: test {r.name} failed: {problem}" for r in report.results for problem in r.failures
    ]


def version_conflict(policy: Policy, seen_sha256: Iterable[str], where: str) -> str | None:
    """The refusal of a policy whose version was seen with another text (versions are immutable)."""
    others = sorted(set(seen_sha256) - {policy.sha256})
    if not others:
        return None
    return (
        f"{policy.path}: policy {policy.name} version {policy.version} changed: {where} holds it with"
        f" sha256 {others[0][:12]}, this text is {policy.sha256[:12]}; give a changed policy a new version"
    )


def archived_version_conflicts(policy: Policy, texts: Iterable[bytes]) -> str | None:
    """Compare with the policy texts a store archived under the same name (`texts`): the same version
    with another sha256 is a conflict."""
    seen = []
    for text in texts:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if (
            isinstance(doc, dict)
            and str(doc.get("version")) == policy.version
            and doc.get("policy") == policy.name
        ):
            seen.append(hashlib.sha256(text).hexdigest())
    return version_conflict(policy, seen, "the audit store's archive")


class VersionLedger:
    """The versions a server has served, `{name: {version: sha256}}`, and the names its current
    generation serves; a JSON file in the supervisor's state folder that each worker generation reads
    and extends, so a reload cannot bring back a served version with another text."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"versions": {}, "serving": []}
        return {"versions": dict(data.get("versions", {})), "serving": list(data.get("serving", []))}

    def seen(self, name: str, version: str) -> list[str]:
        sha = self.read()["versions"].get(name, {}).get(version)
        return [sha] if sha else []

    def serving(self) -> set[str]:
        return set(self.read()["serving"])

    def record(self, served: Iterable[Mapping[str, Any]]) -> None:
        """Record the policies a generation serves (`name`, `version`, `sha256`): written atomically;
        every worker of one generation writes the same content."""
        served = list(served)
        with self._lock:
            data = self.read()
            for info in served:
                data["versions"].setdefault(info["name"], {})[info["version"]] = info["sha256"]
            data["serving"] = sorted(info["name"] for info in served)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, self.path)
