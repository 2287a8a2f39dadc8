"""Release guards on a real `credo serve`: a served policy edited so one of its own tests fails is
refused at reload while its old version keeps answering every call, and a policy refused at start
is listed with its failed tests while the other policies serve."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import grpc
from credo.v1 import decision_pb2 as pb
from e2e_harness import POLICIES, CallLoop, Server, request, serve, shipped_cases

import engine.server  # noqa: F401
from engine.audit.connect import open_store

AGE_RULE = "when: applicant.age < 22"


def _edit_breaking_a_test(path: Path) -> None:
    """A new version whose minimum age moved to 18: its own "applicant under 22" test fails."""
    text = (
        path.read_text()
        .replace(AGE_RULE, "when: applicant.age < 18", 1)
        .replace('version: "2.0.0"', 'version: "2.0.1"', 1)
    )
    assert "2.0.1" in text and "< 18" in text
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class Versions(CallLoop):
    """Decide in a loop; every answered version and every failed call."""

    def __init__(self, server: Server, policy: str, application: dict[str, Any]):
        super().__init__(server, threads=2)
        self.policy, self.application = policy, application
        self.versions: list[str] = []
        self.failures: list[str] = []

    def one(self, stub: Any, index: int, n: int) -> None:
        try:
            answer = stub.Decide(request(f"g{index}-{n}", self.policy, self.application), timeout=30)
        except grpc.RpcError as err:
            with self._lock:
                self.failures.append(f"{err.code().name} {err.details()}")
            return
        with self._lock:
            self.versions.append(answer.policy.version)

    def count(self) -> int:
        with self._lock:
            return len(self.versions) + len(self.failures)


def _consumer_case() -> dict[str, Any]:
    return next(app for name, _, app, _ in shipped_cases() if name == "consumer_loan")


def _listed(server: Server) -> dict[str, pb.PolicyInfo]:
    answer = server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=10)
    return {p.name: p for p in answer.policies}


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_edit_that_fails_its_own_test_leaves_the_old_version_serving(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    source = policies / "consumer_loan" / "policy.yaml"
    with serve(tmp_path, policies=policies, workers=1) as server:
        with Versions(server, "consumer_loan", _consumer_case()) as calls:
            _wait(lambda: calls.count() >= 10, 60, "calls before the edit")
            _edit_breaking_a_test(source)
            _wait(lambda: _listed(server)["consumer_loan"].status == "RELOAD_FAILED", 90, "the refusal")
            mark = calls.count()
            _wait(lambda: calls.count() >= mark + 10, 60, "calls after the refusal")
        assert calls.failures == []
        assert set(calls.versions) == {"2.0.0"}
        info = _listed(server)["consumer_loan"]
        assert info.version == "2.0.0"
        assert any("applicant under 22 is declined" in e for e in info.errors), list(info.errors)
        assert server.logged("reload_refused"), server.log()[-2000:]


def test_policy_failing_its_tests_at_start_is_refused_and_the_others_serve(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    _edit_breaking_a_test(policies / "consumer_loan" / "policy.yaml")
    with serve(tmp_path, policies=policies, workers=1) as server:
        listed = _listed(server)
        assert listed["consumer_loan"].status == "REFUSED"
        assert any("applicant under 22 is declined" in e for e in listed["consumer_loan"].errors)
        assert listed["german_credit"].status == "SERVING"
        german = next(app for name, _, app, _ in shipped_cases() if name == "german_credit")
        assert server.stub.Decide(request("g", "german_credit", german), timeout=30).decision_id
        try:
            server.stub.Decide(request("c", "consumer_loan", _consumer_case()), timeout=30)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "refused" in (err.details() or "")
        else:
            raise AssertionError("a refused policy answered")
        assert any(e.get("policy") == "consumer_loan" for e in server.logged("policy_refused"))


# -- approvals mode: `credo serve --releases DIR --trust KEYS --approvals 2`


def _keys(tmp_path: Path) -> dict[str, Path]:
    """alice writes policies; bob and carol approve; all three are trusted (alice's own approval of
    her release must still not count)."""
    from engine.release.signing import generate_key

    trust = tmp_path / "trust"
    trust.mkdir()
    keys = {}
    for who in ("alice", "bob", "carol"):
        private, public = generate_key(tmp_path / who)
        shutil.copy(public, trust / public.name)
        keys[who] = private
    keys["trust"] = trust
    return keys


def _release(policy_dir: Path, releases: Path, author: Path) -> Path:
    from engine.cli import main

    before = set(releases.glob("*")) if releases.exists() else set()
    argv = ["release", "build", str(policy_dir), "--author-key", str(author), "--releases", str(releases)]
    assert main([*argv, "--models", str(POLICIES.parent / "models")]) == 0
    (built,) = set(releases.glob("*")) - before
    return built


def _approve(bundle: Path, key: Path) -> None:
    from engine.cli import main

    assert main(["release", "approve", str(bundle), "--key", str(key)]) == 0


def _serve_releases(tmp_path: Path, releases: Path, keys: dict[str, Path]) -> Any:
    extra = ["--releases", str(releases), "--trust", str(keys["trust"]), "--approvals", "2"]
    return serve(tmp_path, policies=None, workers=1, extra=extra)


def test_releases_serve_with_two_approvals_and_roll_back(tmp_path: Path) -> None:
    from engine.cli import main

    keys = _keys(tmp_path)
    releases = tmp_path / "releases"
    work = tmp_path / "work" / "consumer_loan"
    shutil.copytree(POLICIES / "consumer_loan", work)
    first = _release(work, releases, keys["alice"])
    _approve(first, keys["bob"])
    _approve(first, keys["carol"])
    source = work / "policy.yaml"
    source.write_text(
        source.read_text()
        .replace('version: "2.0.0"', 'version: "2.1.0"', 1)
        .replace("cap: 200000", "cap: 150000")
    )
    second = _release(work, releases, keys["alice"])
    _approve(second, keys["bob"])  # one approval of two: refused
    application = _consumer_case()
    with _serve_releases(tmp_path, releases, keys) as server:

        def version(rid: str) -> str:
            return str(
                server.stub.Decide(request(rid, "consumer_loan", application), timeout=30).policy.version
            )

        assert version("one-approval") == "2.0.0"
        info = _listed(server)["consumer_loan"]
        assert info.release_id and first.name.endswith(info.release_id[:12])
        assert len(info.approvers) == 2
        assert "german_credit" not in _listed(server)  # never released: not served
        refused = [e for e in server.logged("release_refused") if e.get("version") == "2.1.0"]
        assert refused and any("1 of 2 required approvals" in p for p in refused[0]["errors"])

        _approve(second, keys["carol"])  # the second distinct trusted approval: 2.1.0 goes live
        _wait(lambda: version(f"v{time.monotonic_ns()}") == "2.1.0", 90, "release 2.1.0 to serve")
        assert second.name.endswith(_listed(server)["consumer_loan"].release_id[:12])

        argv = ["release", "rollback", "consumer_loan", "--releases", str(releases)]
        assert main([*argv, "--trust", str(keys["trust"]), "--approvals", "2"]) == 0
        _wait(lambda: version(f"r{time.monotonic_ns()}") == "2.0.0", 90, "the rollback to 2.0.0")


def test_bundle_altered_by_one_byte_is_refused(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    releases = tmp_path / "releases"
    bundles = {
        name: _release(POLICIES / name, releases, keys["alice"])
        for name in ("consumer_loan", "german_credit")
    }
    for bundle in bundles.values():
        _approve(bundle, keys["bob"])
        _approve(bundle, keys["carol"])
    data = bytearray((bundles["consumer_loan"] / "bundle.json").read_bytes())
    at = data.index(b"cap: 200000") + len(b"cap: ")
    data[at] = ord("9")  # the limit cap 200000 -> 900000, one byte
    (bundles["consumer_loan"] / "bundle.json").write_bytes(bytes(data))
    with _serve_releases(tmp_path, releases, keys) as server:
        listed = _listed(server)
        assert "consumer_loan" not in listed and listed["german_credit"].status == "SERVING"
        try:
            server.stub.Decide(request("altered", "consumer_loan", _consumer_case()), timeout=30)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("an altered release answered")
        (refused,) = [e for e in server.logged("release_refused") if e.get("policy") == "consumer_loan"]
        assert any("altered" in p for p in refused["errors"])


def test_policies_and_releases_together_are_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    keys = _keys(tmp_path)
    argv = ["--policies", str(POLICIES), "--releases", str(tmp_path), "--trust", str(keys["trust"])]
    run = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "--port", "0", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "hot reload of policy files is refused in approvals mode" in run.stderr


def test_decide_names_the_arm_and_list_policies_the_experiment(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    source = policies / "consumer_loan" / "policy.yaml"
    text = source.read_text()
    for version in ("2.1.0", "3.0.0"):
        (policies / f"consumer_loan@{version}").mkdir()
        (policies / f"consumer_loan@{version}" / "policy.yaml").write_text(
            text.replace('version: "2.0.0"', f'version: "{version}"', 1)
        )
    source.write_text(
        text + "\nexperiment:\n  key: applicant.id_number\n"
        "  arms: [{policy: consumer_loan@2.1.0, share: 0.5}]\n  shadows: [consumer_loan@3.0.0]\n"
    )
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with serve(tmp_path, policies=policies, workers=1, extra=["--store", url]) as server:
        info = _listed(server)["consumer_loan"]
        assert list(info.experiment_arms) == ["consumer_loan@2.1.0 share 0.5", "shadow consumer_loan@3.0.0"]
        assert len(server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=10).policies) == 3
        answers = []
        for i in range(12):
            application = _consumer_case()
            application = {**application, "applicant": {**application["applicant"], "id_number": f"E{i}"}}
            answers.append(server.stub.Decide(request(f"e{i}", "consumer_loan", application), timeout=30))
        arms = {a.arm for a in answers}
        assert arms <= {"champion", "consumer_loan@2.1.0"} and len(arms) == 2, arms
        assert all((a.policy.version == "2.1.0") == (a.arm == "consumer_loan@2.1.0") for a in answers)
        # the shadow process records a shadow of each answer; none was ever an answer
        _wait(lambda: len(_shadow_records(url)) == 12, 120, "12 shadow records")
        shadows = _shadow_records(url)
        assert {r.extra["shadow_of"] for r in shadows} == {a.decision_id for a in answers}
        assert {r.policy["version"] for r in shadows} == {"3.0.0"}
        assert not any(a.arm.startswith("shadow") for a in answers)


def _shadow_records(url: str) -> list[Any]:
    store = open_store(url, create=False)
    try:
        return [r for r in store.iter_records() if str(r.decision.get("arm", "")).startswith("shadow:")]
    finally:
        store.close()
