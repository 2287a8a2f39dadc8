"""Archive of the files a decision depended on (policy text, model files), stored by sha256 beside
the records, and their restoration into a directory so replay needs nothing but the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.audit.canonical import sha256_hex
from engine.audit.store import AuditStore, Blob
from engine.errors import ARCHIVE_PATH, ArchiveMissing, UsageError

__all__ = ["Archive", "archive_files", "decision_archive", "restore_archive"]


@dataclass(frozen=True)
class Archive:
    """Blobs to pass to DecisionLog.append, and the index {relative path: sha256} the record keeps
    (e.g. "policy.yaml", "models/consumer_pd/1.0.0/model.onnx"). Build once per loaded policy."""

    blobs: tuple[Blob, ...]
    index: dict[str, str]


def archive_files(files: Mapping[str, Path | bytes], kind: Mapping[str, str] | None = None) -> Archive:
    """An Archive of {relative path: file path or content}. `kind` optionally labels each path
    ("policy", "model"); by default paths under models/ are "model" and the rest "policy"."""
    blobs: list[Blob] = []
    index: dict[str, str] = {}
    for name, source in sorted(files.items()):
        _check_relative(name)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        sha = sha256_hex(data)
        label = (kind or {}).get(name) or ("model" if name.startswith("models/") else "policy")
        blobs.append(Blob(sha, label, name, data))
        index[name] = sha
    return Archive(tuple(blobs), index)


# Folders beside a policy that no decision reads: stress scenarios for `credo simulate`.
NOT_DECISION_INPUTS = frozenset({"scenarios"})


def decision_archive(
    policy_dir: Path | str, model_dirs: Sequence[tuple[str, str, Path | str]] = ()
) -> Archive:
    """The files a decision depends on, laid out as replay loads them: every file of the policy's
    folder under "policies/<folder name>/" (not its scenarios/), every file of each model package
    (model.onnx, card.json, model.cbm ...) under "models/<name>/<version>/". Restored,
    `root/policies/<name>/policy.yaml` loads with engine.policy.load_policy and `root/models` is a
    ModelStore root."""
    policy_root = Path(policy_dir)
    files: dict[str, Path | bytes] = {}
    for path in _files_under(policy_root):
        if path.relative_to(policy_root).parts[0] in NOT_DECISION_INPUTS:
            continue
        files[f"policies/{policy_root.name}/{path.relative_to(policy_root).as_posix()}"] = path
    for name, version, folder in model_dirs:
        root = Path(folder)
        for path in _files_under(root):
            files[f"models/{name}/{version}/{path.relative_to(root).as_posix()}"] = path
    return archive_files(files)


def _files_under(root: Path) -> list[Path]:
    def hidden(path: Path) -> bool:
        return any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)

    return sorted(p for p in root.rglob("*") if p.is_file() and not hidden(p))


def restore_archive(store: AuditStore, index: Mapping[str, str], dest: Path | str) -> Path:
    """Write every archived file of `index` under `dest` (same relative paths), checking each hash.
    Raises ArchiveMissing naming every file that is absent or does not match its sha256."""
    root = Path(dest)
    problems: list[str] = []
    for name, sha in sorted(index.items()):
        _check_relative(name)
        stored = store.get_blob(sha)
        if stored is None:
            problems.append(f"{name} (sha256 {sha}) is not in the archive")
            continue
        if sha256_hex(stored.data) != sha:
            problems.append(f"{name} (sha256 {sha}) is altered in the archive")
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(stored.data)
    if problems:
        raise ArchiveMissing("cannot restore archived files: " + "; ".join(problems))
    return root


def _check_relative(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name:
        raise UsageError(
            f"archive path {name!r} must be relative and stay inside its directory", code=ARCHIVE_PATH
        )
