"""Release bundles: one immutable folder per released policy version, `<name>-<version>-<id12>/`,
holding bundle.json (the policy text, its model packages by sha256, its test report, the semantic
diff against the previous release, the what-if impact when history was given) and approvals/, one
Ed25519 signature per approver over the bundle's content hash (its id). In approvals mode a server
serves, per policy, the newest release approved by enough distinct trusted keys, none the author's,
that was not rolled back."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.audit.canonical import sha256_hex
from engine.errors import CredoError, ReleaseRefused, UsageError
from engine.models.store import ModelStore
from engine.policy import Policy, load_policy_text
from engine.release.diff import diff_policies
from engine.release.signing import key_id, public_hex, sign_release, signature_holds
from engine.sources import POLICY_FILE

__all__ = [
    "Release",
    "Verdict",
    "approve",
    "build_release",
    "materialize",
    "read_release",
    "releases",
    "select",
    "served_release",
    "withdraw",
]

FORMAT = "credo-release/1"
BUNDLE = "bundle.json"
APPROVALS = "approvals"
WITHDRAWN = "withdrawn.json"
RELEASE_INFO = "release.json"  # beside a served release's policy.yaml


@dataclass(frozen=True)
class Release:
    directory: Path
    release_id: str  # sha256 of bundle.json's bytes as they are now
    manifest: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.manifest["policy"]["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["policy"]["version"])

    @property
    def seq(self) -> int:
        return int(self.manifest["seq"])

    @property
    def text(self) -> str:
        return str(self.manifest["policy"]["text"])

    @property
    def author(self) -> str:
        return str(self.manifest["author"]["key_id"])

    def approvals(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted((self.directory / APPROVALS).glob("*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return found


@dataclass
class Verdict:
    """Whether a release may serve: the distinct trusted approvers whose signatures hold, and every
    reason it may not."""

    release: Release
    approvers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    withdrawn: bool = False
    altered: bool = False  # content that no longer matches its hash or its signatures

    @property
    def approved(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        r = self.release
        return {
            "name": r.name,
            "version": r.version,
            "release_id": r.release_id,
            "seq": r.seq,
            "author": r.author,
            "approvers": self.approvers,
            "approved": self.approved,
            "withdrawn": self.withdrawn,
            "altered": self.altered,
            "problems": self.problems,
            "directory": str(r.directory),
        }


def read_release(directory: Path | str) -> Release:
    folder = Path(directory)
    if folder.name == BUNDLE:
        folder = folder.parent
    try:
        data = (folder / BUNDLE).read_bytes()
        manifest = json.loads(data)
    except (OSError, ValueError) as exc:
        raise ReleaseRefused(f"{folder}: not a readable release bundle ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ReleaseRefused(f"{folder}: not a {FORMAT} bundle")
    return Release(folder, sha256_hex(data), manifest)


def releases(root: Path | str) -> list[Release]:
    """Every bundle under `root` that can be read, by policy name and sequence."""
    found = []
    for bundle in sorted(Path(root).glob(f"*/{BUNDLE}")):
        try:
            found.append(read_release(bundle.parent))
        except (ReleaseRefused, KeyError, TypeError):
            continue
    return sorted(found, key=lambda r: (r.name, r.seq))


def build_release(
    policy: Policy,
    root: Path | str,
    *,
    models_dir: Path | str,
    tests: Mapping[str, Any],
    author: Ed25519PublicKey,
    impact: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    candidate: bool = False,
) -> Release:
    """Write the bundle of `policy` under `root`. Refused: failed tests, a version already released
    (with this text or another: versions are immutable). A `candidate` (a challenger or shadow
    version) never serves as the policy itself, only through an active release's experiment."""
    if tests.get("failed"):
        raise ReleaseRefused(
            f"policy {policy.name} {policy.version}: {tests['failed']} of its own tests fail"
        )
    earlier = [r for r in releases(root) if r.name == policy.name]
    for release in earlier:
        if release.version == policy.version:
            same = release.manifest["policy"]["sha256"] == policy.sha256
            raise ReleaseRefused(
                f"policy {policy.name} version {policy.version} is already released"
                f" as {release.release_id[:12]}"
                + ("" if same else " with another text; give a changed policy a new version")
            )
    previous = earlier[-1] if earlier else None
    diff = None
    if previous is not None:
        diff = diff_policies(
            load_policy_text(previous.text, name=f"{previous.name}@{previous.version}"), policy
        )
    manifest = {
        "format": FORMAT,
        "seq": (previous.seq + 1) if previous else 1,
        "candidate": candidate,
        "built_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "author": {"key_id": key_id(author), "public_key": public_hex(author)},
        "policy": {
            "name": policy.name,
            "version": policy.version,
            "sha256": policy.sha256,
            "text": policy.text,
        },
        "models": _models(policy, models_dir),
        "tests": dict(tests),
        "previous": None
        if previous is None
        else {"version": previous.version, "release_id": previous.release_id},
        "diff": None if diff is None else diff.to_dict(),
        "impact": None if impact is None else dict(impact),
    }
    data = (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()
    release_id = sha256_hex(data)
    target = Path(root) / f"{policy.name}-{policy.version}-{release_id[:12]}"
    Path(root).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    (staging / BUNDLE).write_bytes(data)
    (staging / APPROVALS).mkdir()
    os.replace(staging, target)  # the bundle appears whole or not at all
    return Release(target, release_id, manifest)


def _models(policy: Policy, models_dir: Path | str) -> list[dict[str, str]]:
    if policy.score is None:
        return []
    package = ModelStore(Path(models_dir)).load(policy.score.model_name, policy.score.model_version)
    return [{"name": package.name, "version": package.version, "sha256": package.sha256}]


def approve(release: Release, key: Ed25519PrivateKey, now: dt.datetime | None = None) -> Path:
    """Add the key's signature over the release id (an approval by the author is refused)."""
    public = key.public_key()
    kid = key_id(public)
    if kid == release.author:
        raise UsageError(f"key {kid} built release {release.release_id[:12]}; an author cannot approve it")
    signed = {
        "key_id": kid,
        "public_key": public_hex(public),
        "release_id": release.release_id,
        "signature": sign_release(key, release.release_id).hex(),
        "signed_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    }
    path = release.directory / APPROVALS / f"{kid}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(signed, indent=1, sort_keys=True) + "\n")
    return path


def verify(
    release: Release,
    trusted: Mapping[str, Ed25519PublicKey],
    required: int,
    models_dir: Path | str | None = None,
) -> Verdict:
    """Count the distinct trusted keys, other than the author's, whose signature holds over the
    bundle as it is now; name every reason the release may not serve."""
    verdict = Verdict(release)
    if not release.directory.name.endswith(release.release_id[:12]):
        verdict.problems.append(
            f"{release.directory.name}: content hash {release.release_id[:12]} differs from its name: altered"
        )
    policy = release.manifest["policy"]
    if sha256_hex(str(policy["text"]).encode("utf-8")) != policy["sha256"]:
        verdict.problems.append("the policy text does not hash to its recorded sha256: altered")
    for approval in release.approvals():
        kid = str(approval.get("key_id", ""))
        public = trusted.get(kid)
        if public is None or kid == release.author or kid in verdict.approvers:
            continue
        try:
            signature = bytes.fromhex(str(approval.get("signature", "")))
        except ValueError:
            signature = b""
        if signature_holds(public, signature, release.release_id):
            verdict.approvers.append(kid)
        else:
            verdict.problems.append(f"approval by {kid} does not hold for this content: altered bundle")
    verdict.altered = bool(verdict.problems)
    if len(verdict.approvers) < required:
        verdict.problems.append(
            f"{len(verdict.approvers)} of {required} required approvals by distinct trusted keys"
            " other than the author's"
        )
    if models_dir is not None:
        verdict.problems += _model_problems(release, models_dir)
    return verdict


def _model_problems(release: Release, models_dir: Path | str) -> list[str]:
    store = ModelStore(Path(models_dir))
    problems = []
    for model in release.manifest.get("models", []):
        try:
            sha = store.load(model["name"], model["version"]).sha256
        except CredoError as exc:
            problems.append(f"model {model['name']} {model['version']}: {exc}")
            continue
        if sha != model["sha256"]:
            problems.append(
                f"model {model['name']} {model['version']} is not the released one (sha256 {sha[:12]})"
            )
    return problems


def withdrawn(root: Path | str) -> set[str]:
    try:
        return set(json.loads((Path(root) / WITHDRAWN).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def select(
    root: Path | str,
    trusted: Mapping[str, Ed25519PublicKey],
    required: int,
    models_dir: Path | str | None = None,
) -> tuple[dict[str, Verdict], list[Verdict]]:
    """Per policy name, the release to serve (the newest approved one, not rolled back, that is not
    a candidate), and the verdict on every release found."""
    gone = withdrawn(root)
    verdicts = []
    active: dict[str, Verdict] = {}
    for release in releases(root):
        verdict = verify(release, trusted, required, models_dir)
        verdict.withdrawn = release.release_id in gone
        verdicts.append(verdict)
        if verdict.approved and not verdict.withdrawn and not release.manifest.get("candidate"):
            active[release.name] = verdict  # releases() is ordered by seq: the newest wins
    return active, verdicts


def withdraw(root: Path | str, release_ids: Iterable[str]) -> None:
    """Roll back: these releases no longer serve (the previous approved one of each policy does)."""
    path = Path(root) / WITHDRAWN
    ids = sorted(withdrawn(root) | set(release_ids))
    tmp = path.with_name(f".{WITHDRAWN}.{os.getpid()}")
    tmp.write_text(json.dumps(ids, indent=1) + "\n")
    os.replace(tmp, path)


def _write(folder: Path, verdict: Verdict) -> None:
    folder.mkdir(parents=True)
    (folder / POLICY_FILE).write_text(verdict.release.text, encoding="utf-8")
    served = {k: v for k, v in verdict.to_dict().items() if k in ("release_id", "seq", "author", "approvers")}
    (folder / RELEASE_INFO).write_text(json.dumps(served, indent=1, sort_keys=True) + "\n")


def _experiment_refs(text: str) -> list[tuple[str, str]]:
    """(name, version) of the challengers and shadows a policy text's experiment names."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    experiment = doc.get("experiment") if isinstance(doc, dict) else None
    if not isinstance(experiment, dict):
        return []
    refs = [a.get("policy") for a in experiment.get("arms") or [] if isinstance(a, dict)]
    refs += list(experiment.get("shadows") or [])
    found = []
    for ref in refs:
        if isinstance(ref, str) and "@" in ref:
            name, _, version = ref.partition("@")
            found.append((name, version))
    return found


def served_release(folder: Path | str) -> dict[str, Any] | None:
    """The release a served policy folder came from (approvals mode), or None."""
    try:
        info = json.loads((Path(folder) / RELEASE_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def materialize(active: Mapping[str, Verdict], dest: Path | str, verdicts: Iterable[Verdict] = ()) -> Path:
    """Write each active release's policy text as dest/<name>/policy.yaml (what the service loads)
    and, beside it, release.json: which release it is and who approved it (ListPolicies shows it).
    The challenger and shadow versions an active release's experiment names are written as
    dest/<name>@<version>/ when an approved release of that version is among `verdicts`."""
    root = Path(dest)
    shutil.rmtree(root, ignore_errors=True)
    approved = {(v.release.name, v.release.version): v for v in verdicts if v.approved and not v.withdrawn}
    for name, verdict in active.items():
        _write(root / name, verdict)
        for ref in _experiment_refs(verdict.release.text):
            candidate = approved.get(ref)
            if candidate is not None and ref != (name, verdict.release.version):
                _write(root / f"{ref[0]}@{ref[1]}", candidate)
    root.mkdir(parents=True, exist_ok=True)
    return root
