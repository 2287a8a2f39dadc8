"""Where policies and models come from: one `Source` interface, implemented over a directory, over a
decision's archive in the audit store, and in memory (tests). Each caches what it loaded; a policy
is addressed by name only (never a path), and a model's sha256 pin is checked in one place
(engine.models.cache.ModelCache)."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from engine.audit.archive import restore_archive
from engine.audit.store import AuditStore
from engine.errors import ArchiveMissing, FieldViolation, InvalidInput, NotFound, shown
from engine.models.cache import ModelCache
from engine.models.scoring import OnnxScorer
from engine.models.store import ModelPackage
from engine.policy import Policy, load_policy, load_policy_text

__all__ = [
    "POLICY_FILE",
    "POLICY_NAME",
    "ArchiveSource",
    "DirectorySource",
    "MemorySource",
    "Source",
    "check_policy_name",
]

POLICY_FILE = "policy.yaml"
POLICY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Source(Protocol):
    """Policies by name and verified model packages, from one place."""

    def policy(self, name: str) -> Policy:
        """The compiled policy `name`: NotFound if there is none, PolicyError if it does not load."""
        ...

    def policy_names(self) -> list[str]: ...

    def model(self, name: str, version: str, sha256: str | None) -> tuple[ModelPackage, OnnxScorer]:
        """The package and its scorer; MODEL_HASH_MISMATCH when `sha256` is not the package's."""
        ...


def check_policy_name(name: str) -> None:
    """A policy is named, never located: anything but `[a-z][a-z0-9_]{0,63}` (a path, `..`, NUL, 256
    characters) is InvalidInput, the caller's error, before any file is looked at."""
    if not isinstance(name, str) or not POLICY_NAME.fullmatch(name):
        raise InvalidInput(
            [
                FieldViolation(
                    "policy", f"{shown(name)} is not a policy name ([a-z][a-z0-9_]{{0,63}}; never a path)"
                )
            ]
        )


class _Policies:
    """Policies loaded once per name, whatever thread asks first."""

    def __init__(self, load: Callable[[str], Policy]):
        self._load = load
        self._loaded: dict[str, Policy] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Policy:
        check_policy_name(name)
        policy = self._loaded.get(name)
        if policy is None:
            with self._lock:
                policy = self._loaded.get(name)
                if policy is None:
                    policy = self._loaded[name] = self._load(name)
        return policy


class DirectorySource:
    """`policies_dir/<name>/policy.yaml` and model packages under `models_dir/<name>/<version>/`."""

    def __init__(self, policies_dir: Path | str, models_dir: Path | str):
        self.policies_dir = Path(policies_dir)
        self.models = ModelCache(models_dir)
        self._policies = _Policies(self._load)

    def policy(self, name: str) -> Policy:
        return self._policies.get(name)

    def policy_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.policies_dir.glob(f"*/{POLICY_FILE}"))

    def model(self, name: str, version: str, sha256: str | None) -> tuple[ModelPackage, OnnxScorer]:
        return self.models(name, version, sha256)

    def _load(self, name: str) -> Policy:
        path = self.policies_dir / name / POLICY_FILE
        if not path.is_file():
            raise NotFound(f"policy {name!r} not found under {self.policies_dir}")
        return load_policy(path)


class MemorySource:
    """Policy texts held in memory by name (tests, tools); models from a directory."""

    def __init__(self, policies: Mapping[str, str], models_dir: Path | str):
        self.texts = dict(policies)
        self.models = ModelCache(models_dir)
        self._policies = _Policies(self._load)

    def policy(self, name: str) -> Policy:
        return self._policies.get(name)

    def policy_names(self) -> list[str]:
        return sorted(self.texts)

    def model(self, name: str, version: str, sha256: str | None) -> tuple[ModelPackage, OnnxScorer]:
        return self.models(name, version, sha256)

    def _load(self, name: str) -> Policy:
        text = self.texts.get(name)
        if text is None:
            raise NotFound(f"policy {name!r} is not in this in-memory source")
        return load_policy_text(text, name=f"<memory>/{name}/{POLICY_FILE}")


class ArchiveSource:
    """The files one decision's archive index names (`policies/<name>/policy.yaml`, `models/...`),
    restored from the audit store under `root` with every sha256 checked (ArchiveMissing otherwise)
    and read as a DirectorySource: a replay never sees today's files."""

    def __init__(self, store: AuditStore, index: Mapping[str, str], root: Path):
        self.index = dict(index)
        try:
            restore_archive(store, self.index, root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        self.root = root
        self.files = DirectorySource(root / "policies", root / "models")

    def policy(self, name: str) -> Policy:
        return self.files.policy(name)

    def policy_names(self) -> list[str]:
        return self.files.policy_names()

    def model(self, name: str, version: str, sha256: str | None) -> tuple[ModelPackage, OnnxScorer]:
        return self.files.model(name, version, sha256)

    def policy_by_sha256(self, sha256: str, what: str) -> Policy:
        """The archived policy whose text hashes to `sha256`; ArchiveMissing (naming `what`) if the
        archive holds no such text or the text does not hash as the index says."""
        names = sorted(
            path.split("/")[1]
            for path, digest in self.index.items()
            if path.startswith("policies/") and path.endswith(f"/{POLICY_FILE}") and digest == sha256
        )
        if not names:
            raise ArchiveMissing(
                f"{what}: its archive holds no policy text with sha256 {sha256};"
                " refusing to replay on other files"
            )
        policy = self.policy(names[0])
        if policy.sha256 != sha256:
            raise ArchiveMissing(
                f"{what}: archived policies/{names[0]}/{POLICY_FILE} has sha256 {policy.sha256}, the record"
                f" says {sha256}"
            )
        return policy
