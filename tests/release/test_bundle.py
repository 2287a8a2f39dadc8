"""Release bundles and approvals: a bundle carries the policy text, its models by sha256, its test
report, the diff against the previous release and, given history, the what-if impact; an approval
counts only from a distinct trusted key that is not the author's, and only while the bundle is
byte-for-byte what was signed; a version is released once; failing tests are never released."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from release_helpers import MODELS, POLICIES, break_a_test, bump_version, copy_policies

from engine.cli import main
from engine.errors import ReleaseRefused, UsageError
from engine.policy import load_policy
from engine.policy.testing import run_tests
from engine.release.bundle import (
    APPROVALS,
    BUNDLE,
    Release,
    approve,
    build_release,
    materialize,
    read_release,
    select,
    withdraw,
)
from engine.release.signing import generate_key, load_private_key, load_public_key, trusted_keys
from engine.service import DecisionService, decide_for_tests


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    trust = tmp_path / "trust"
    trust.mkdir()
    found = {"trust": trust}
    for who in ("alice", "bob", "carol", "mallory"):
        private, public = generate_key(tmp_path / who)
        if who != "mallory":
            public.rename(trust / public.name)
        found[who] = private
    return found


def _report(policy_path: Path) -> dict[str, object]:
    policy = load_policy(policy_path)
    report = run_tests(policy, lambda p, app: decide_for_tests(p, app, models_dir=MODELS))
    return {"passed": report.passed, "failed": report.failed}


def _build(policy_path: Path, root: Path, author: Path) -> Release:
    return build_release(
        load_policy(policy_path),
        root,
        models_dir=MODELS,
        tests=_report(policy_path),
        author=load_public_key(author),
    )


def test_bundle_holds_text_models_tests_and_the_diff_to_the_previous_release(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    first = read_release(_build(source, tmp_path / "rel", keys["alice"]).directory)
    assert first.manifest["policy"]["text"] == source.read_text()
    assert (
        first.manifest["models"][0]["name"] == "consumer_pd"
        and len(first.manifest["models"][0]["sha256"]) == 64
    )
    assert first.manifest["tests"]["failed"] == 0 and first.manifest["tests"]["passed"] > 0
    assert first.manifest["diff"] is None and first.seq == 1
    source.write_text(bump_version(source.read_text()).replace("cap: 200000", "cap: 150000", 1))
    second = read_release(_build(source, tmp_path / "rel", keys["alice"]).directory)
    assert second.seq == 2 and second.manifest["previous"]["release_id"] == first.release_id
    changes = {c["path"]: c for c in second.manifest["diff"]["changes"]}
    assert (changes["limit.cap"]["old"], changes["limit.cap"]["new"]) == (200000, 150000)


def test_a_released_version_is_never_built_again_and_failing_tests_never_released(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    _build(source, tmp_path / "rel", keys["alice"])
    with pytest.raises(ReleaseRefused, match="already released"):
        _build(source, tmp_path / "rel", keys["alice"])
    source.write_text(source.read_text().replace("cap: 200000", "cap: 150000", 1))
    with pytest.raises(ReleaseRefused, match="with another text"):
        _build(source, tmp_path / "rel", keys["alice"])
    source.write_text(bump_version(break_a_test(source.read_text())))
    with pytest.raises(ReleaseRefused, match="of its own tests fail"):
        _build(source, tmp_path / "rel", keys["alice"])
    assert len(list((tmp_path / "rel").glob(f"*/{BUNDLE}"))) == 1


def test_approvals_count_distinct_trusted_keys_never_the_authors(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    root = tmp_path / "rel"
    release = _build(POLICIES / "consumer_loan" / "policy.yaml", root, keys["alice"])
    with pytest.raises(UsageError, match="an author cannot approve"):
        approve(release, load_private_key(keys["alice"]))
    trusted = trusted_keys(keys["trust"])
    approve(release, load_private_key(keys["mallory"]))  # not trusted
    approve(release, load_private_key(keys["bob"]))
    approve(release, load_private_key(keys["bob"]))  # the same key twice
    active, (verdict,) = select(root, trusted, 2)
    assert active == {} and verdict.approvers == [verdict.approvers[0]] and not verdict.altered
    assert "1 of 2 required approvals" in verdict.problems[0]
    approve(release, load_private_key(keys["carol"]))
    active, (verdict,) = select(root, trusted, 2)
    assert verdict.approved and set(active) == {"consumer_loan"}


def test_one_byte_altered_voids_every_approval(tmp_path: Path, keys: dict[str, Path]) -> None:
    root = tmp_path / "rel"
    release = _build(POLICIES / "german_credit" / "policy.yaml", root, keys["alice"])
    for who in ("bob", "carol"):
        approve(release, load_private_key(keys[who]))
    bundle = release.directory / BUNDLE
    data = bytearray(bundle.read_bytes())
    data[data.index(b'"seq": 1') + len(b'"seq": ')] = ord("7")
    bundle.write_bytes(bytes(data))
    active, (verdict,) = select(root, trusted_keys(keys["trust"]), 2)
    assert active == {} and verdict.altered and verdict.approvers == []
    assert any("differs from its name: altered" in p for p in verdict.problems)
    assert sum("does not hold" in p for p in verdict.problems) == 2


def test_rollback_withdraws_the_active_release_and_the_previous_serves(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    root = tmp_path / "rel"
    built = [_build(source, root, keys["alice"])]
    source.write_text(bump_version(source.read_text()))
    built.append(_build(source, root, keys["alice"]))
    for release in built:
        for who in ("bob", "carol"):
            approve(release, load_private_key(keys[who]))
    trusted = trusted_keys(keys["trust"])
    assert select(root, trusted, 2)[0]["consumer_loan"].release.version == "2.0.1"
    argv = ["release", "rollback", "consumer_loan", "--releases", str(root), "--trust", str(keys["trust"])]
    assert main(argv) == 0
    assert select(root, trusted, 2)[0]["consumer_loan"].release.version == "2.0.0"
    assert main(argv) == 1  # nothing earlier than 2.0.0
    assert "no earlier approved release" in capsys.readouterr().err
    withdraw(root, [])  # idempotent: nothing new withdrawn
    assert select(root, trusted, 2)[0]["consumer_loan"].release.version == "2.0.0"


def test_build_with_a_store_records_the_what_if_impact_over_history(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policies = copy_policies(tmp_path)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    service = DecisionService(policies, MODELS, store=url)
    policy = service.policy("consumer_loan")
    try:
        for index, case in enumerate(policy.tests):
            service.decide("consumer_loan", case.input, f"history-{index}")
    finally:
        service.log.close()
    source = policies / "consumer_loan" / "policy.yaml"
    source.write_text(bump_version(source.read_text()).replace("cap: 200000", "cap: 150000", 1))
    argv = ["release", "build", str(source.parent), "--author-key", str(keys["alice"]), "--store", url]
    assert main([*argv, "--releases", str(tmp_path / "rel"), "--models", str(MODELS)]) == 0
    release_id = capsys.readouterr().out.split()[1]
    (folder,) = (tmp_path / "rel").glob(f"*-{release_id[:12]}")
    impact = json.loads((folder / BUNDLE).read_text())["impact"]
    assert impact["decisions"] == len(policy.tests)
    assert impact["policy"]["version"] == "2.0.1"
    assert (folder / APPROVALS).is_dir()


def test_a_candidate_release_serves_only_through_the_active_releases_experiment(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    policies = copy_policies(tmp_path)
    source = policies / "consumer_loan" / "policy.yaml"
    text = source.read_text()
    root = tmp_path / "rel"
    source.write_text(
        text
        + "\nexperiment:\n  key: applicant.id_number\n  arms: [{policy: consumer_loan@2.1.0, share: 0.2}]\n"
    )
    champion = _build(source, root, keys["alice"])
    source.write_text(text.replace('version: "2.0.0"', 'version: "2.1.0"', 1))
    challenger = build_release(
        load_policy(source),
        root,
        models_dir=MODELS,
        tests=_report(source),
        author=load_public_key(keys["alice"]),
        candidate=True,
    )
    for release in (champion, challenger):
        for who in ("bob", "carol"):
            approve(release, load_private_key(keys[who]))
    active, verdicts = select(root, trusted_keys(keys["trust"]), 2)
    assert {n: v.release.version for n, v in active.items()} == {"consumer_loan": "2.0.0"}
    served = materialize(active, tmp_path / "served", verdicts)
    assert sorted(p.name for p in served.iterdir()) == ["consumer_loan", "consumer_loan@2.1.0"]
    (info,) = DecisionService(served, MODELS).list_policies()
    assert info["status"] == "SERVING" and info["release"]["release_id"] == champion.release_id
    assert info["experiment"]["arms"] == [{"policy": "consumer_loan@2.1.0", "share": "0.2"}]
