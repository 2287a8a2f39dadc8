"""`credo serve` with the shipped policies and models, called over gRPC with the generated stubs:
health, field violations, every shipped policy test case, idempotent retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from credo.v1 import decision_pb2 as pb
from e2e_harness import POLICIES, Server, request, serve, shipped_cases, shipped_policies
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from engine.audit import open_store
from engine.server.errors import violations_from_status

CASES = shipped_cases()


@pytest.fixture(scope="module")
def audit_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'audit.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, audit_url: str) -> Iterator[Server]:
    # with the audit store, as `make run` serves: a retry is recognised whichever worker it reaches
    # (without one, only the worker that answered knows the request_id)
    tmp = tmp_path_factory.mktemp("serve")
    store = ["--store", audit_url]
    with serve(tmp, policies=POLICIES, workers=2, extra=store) as running:
        yield running


def test_policies_are_shipped() -> None:
    assert shipped_policies(), "no policies/*/policy.yaml: the decision e2e tests have nothing to decide"
    assert CASES, "the shipped policies carry no tests: cases"


def test_health_is_serving(server: Server) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "credo.v1.DecisionService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_list_policies_names_every_shipped_policy(server: Server) -> None:
    listed = server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5).policies
    assert {p.name for p in listed} >= {name for name, _, _ in shipped_policies()}
    assert all(p.version and len(p.sha256) == 64 for p in listed)
    assert all(p.loaded_at.startswith("20") for p in listed)  # was always empty


def test_a_core_system_can_book_an_offer_and_the_record_keeps_the_callers_labels(
    server: Server, audit_url: str
) -> None:
    readme = json.loads(
        (Path(__file__).resolve().parents[1] / "pipeline" / "readme_applicant.json").read_text()
    )
    labels = {"channel": "mobile", "branch": "sh-021"}
    answer = server.stub.Decide(
        request("e2e-book", "consumer_loan", readme, language="zh", labels=labels, include_schedules=True),
        timeout=30,
    )
    assert answer.objective == "expected_profit_npv" and answer.offers
    for offer in answer.offers:
        assert offer.offer_id and offer.valid_until > answer.decided_at[:10]
        assert offer.HasField("expected_loss")
        if offer.repayment_method == "revolving":  # a credit line: terms instead of a schedule
            assert offer.product_name == "循环授信额度" and not offer.schedule
            assert offer.revolving.minimum_payment_rate == "0.03" and offer.revolving.interest_free_days == 50
            continue
        assert offer.product_name == "个人消费贷"
        assert [(f.kind, f.amount) for f in offer.fees] == [("upfront", "500.00")]
        assert all(row.due_date > answer.decided_at[:10] for row in offer.schedule)
    assert "revolving" in [o.repayment_method for o in answer.offers]
    stored = server.stub.GetDecision(pb.GetDecisionRequest(decision_id=answer.decision_id), timeout=10)
    assert list(stored.offers) == list(answer.offers)  # rebuilt from the lean record, dates and all
    store = open_store(audit_url, create=False)
    try:
        record = store.get(answer.decision_id)
        assert record is not None and record.extra["labels"] == labels
    finally:
        store.close()


@pytest.mark.parametrize("policy", [name for name, _, _ in shipped_policies()])
def test_empty_application_lists_every_missing_required_input(server: Server, policy: str) -> None:
    doc = next(d for n, _, d in shipped_policies() if n == policy)
    required = {
        path
        for path, spec in (doc.get("inputs") or {}).items()
        if isinstance(spec, dict) and spec.get("required", True) and "default" not in spec
    }
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request("e2e-empty", policy, {}), timeout=10)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    fields = {v.field for v in violations_from_status(status)}
    assert fields >= required, f"missing violations for {sorted(required - fields)}"


def test_bad_types_get_field_violations_not_internal(server: Server) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        bad = {"applicant": {"age": "old", "income_monthly": -5}}
        server.stub.Decide(request("e2e-bad", "consumer_loan", bad), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    fields = {v.field for v in violations_from_status(status)}
    assert {"applicant.age", "applicant.income_monthly"} <= fields


def test_unknown_policy_is_not_found(server: Server) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request("e2e-unknown", "no_such_policy", {"a": 1}), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("policy", "name", "application", "expect"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_shipped_policy_case(server: Server, policy: str, name: str, application: dict, expect: dict) -> None:
    if "error" in expect:  # a case that must be refused, e.g. {error: INVALID_INPUT}
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Decide(request(f"case-{policy}-{name}", policy, application), timeout=30)
        status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
        assert status is not None and _error_reason(status) == expect["error"]
        return
    decision = server.stub.Decide(request(f"case-{policy}-{name}", policy, application), timeout=30)
    assert pb.Outcome.Name(decision.outcome) == expect["outcome"]
    codes = [r.code for r in decision.reasons]
    for code in expect.get("reasons", []):
        assert code in codes
    if "grade" in expect:
        assert decision.score.grade == expect["grade"]
    assert decision.policy.name == policy and decision.decision_id


def test_retry_with_same_request_id_returns_the_same_decision(server: Server) -> None:
    policy, _, application, _ = CASES[0]
    first = server.stub.Decide(request("e2e-idem", policy, application), timeout=30)
    again = server.stub.Decide(request("e2e-idem", policy, application), timeout=30)
    assert again.decision_id == first.decision_id
    # another valid payload is a conflict; an invalid one is refused as invalid (and changes nothing)
    applicant = application["applicant"]
    changed = {**application, "applicant": {**applicant, "age": applicant["age"] + 1}}
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request("e2e-idem", policy, changed), timeout=30)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request("e2e-idem", policy, dict(application, unknown_field=1)), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_decide_stream_answers_in_order_with_errors_inline(server: Server) -> None:
    policy, _, application, _ = CASES[0]
    requests = [request(f"e2e-stream-{i}", policy, application) for i in range(5)]
    requests.insert(2, request("e2e-stream-bad", policy, {}))
    answers = list(server.stub.DecideStream(iter(requests), timeout=60))
    assert [a.request_id for a in answers] == [r.request_id for r in requests]
    assert answers[2].error.status == "INVALID_ARGUMENT" and answers[2].error.violations
    assert all(not a.HasField("error") and a.decision_id for i, a in enumerate(answers) if i != 2)


def test_the_client_example_runs(server: Server) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "scripts" / "client_example.py"
    out = subprocess.run(
        [sys.executable, str(example), server.target],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=example.parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert "policy " in out.stdout


def test_get_decision_by_request_id_and_decision_id(server: Server) -> None:
    policy, _, application, _ = CASES[0]
    full = {"include_schedules": True, "include_trace": True}  # GetDecision always answers in full
    decided = server.stub.Decide(request("e2e-get", policy, application, **full), timeout=30)
    by_request = server.stub.GetDecision(pb.GetDecisionRequest(request_id="e2e-get"), timeout=10)
    by_id = server.stub.GetDecision(pb.GetDecisionRequest(decision_id=decided.decision_id), timeout=10)
    assert by_request == decided and by_id == decided
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetDecision(pb.GetDecisionRequest(request_id="never-sent"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_answers_are_slim_unless_schedules_or_trace_are_asked_for(server: Server) -> None:
    """Issue 12.4: three full schedules were 70% of a ~5.3 KB answer nobody asked for. By default an
    offer carries its terms, instalment, totals and APR; the schedules and trace come on request,
    and GetDecision recomputes the schedules from the (lean) record."""
    policy, application = next((c[0], c[2]) for c in CASES if c[3].get("outcome") == "APPROVE")
    slim = server.stub.Decide(request("e2e-slim", policy, application), timeout=30)
    assert slim.offers and not any(o.schedule for o in slim.offers) and not slim.trace
    assert all(o.apr and o.instalment and o.total_interest and o.term_months for o in slim.offers)
    rows = server.stub.Decide(request("e2e-rows", policy, application, include_schedules=True), timeout=30)
    assert all(o.schedule for o in rows.offers) and not rows.trace
    traced = server.stub.Decide(request("e2e-trace", policy, application, include_trace=True), timeout=30)
    assert traced.trace and not any(o.schedule for o in traced.offers)
    stored = server.stub.GetDecision(pb.GetDecisionRequest(decision_id=slim.decision_id), timeout=10)
    assert [list(o.schedule) for o in stored.offers] == [list(o.schedule) for o in rows.offers]
    assert [t.stage for t in stored.trace] == [t.stage for t in traced.trace]
    for offer in stored.offers:
        offer.ClearField("schedule")
    stored.ClearField("trace")
    assert stored == slim
    assert slim.ByteSize() * 2 < rows.ByteSize()


def test_pinned_version_not_loaded_is_failed_precondition(server: Server) -> None:
    policy, _, application, _ = CASES[0]
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Decide(request("e2e-pin", policy, application, policy_version="0.0.0-never"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    loaded = next(
        p for p in server.stub.ListPolicies(pb.ListPoliciesRequest(), timeout=5).policies if p.name == policy
    )
    pinned = server.stub.Decide(
        request("e2e-pin-ok", policy, application, policy_version=loaded.version), timeout=30
    )
    assert pinned.policy.version == loaded.version


def test_a_client_built_from_the_proto_alone_can_decide(server: Server, tmp_path: Path) -> None:
    """Stubs generated afresh from protos/ (no engine code) in a separate interpreter, as a Go or
    Node client would from the .proto; plus server reflection lists the service."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    policy, _, application, expect = CASES[0]
    script = f"""
import json, sys
from grpc_tools import protoc
import grpc_tools, os
include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
code = protoc.main(["protoc", "-I{root / "protos"}", "-I" + include, "--python_out={tmp_path}",
                    "--grpc_python_out={tmp_path}", "credo/v1/decision.proto"])
assert code == 0
sys.path.insert(0, "{tmp_path}")
import grpc
from google.protobuf import struct_pb2
from credo.v1 import decision_pb2, decision_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
channel = grpc.insecure_channel("{server.target}")
app = struct_pb2.Struct()
app.update(json.loads({json.dumps(json.dumps(application, default=str))}))
d = decision_pb2_grpc.DecisionServiceStub(channel).Decide(
    decision_pb2.DecideRequest(request_id="proto-only", policy="{policy}", application=app), timeout=30)
print(decision_pb2.Outcome.Name(d.outcome))
answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
print(sorted(s.name for a in answers for s in a.list_services_response.service))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == expect["outcome"]
    assert "credo.v1.DecisionService" in lines[1] and "grpc.health.v1.Health" in lines[1]


def _error_reason(status: status_pb2.Status) -> str:
    """The Credo error code packed as google.rpc.ErrorInfo.reason."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_a_node_client_that_knows_only_the_proto_can_decide(server: Server, tmp_path: Path) -> None:
    """scripts/node_client loads protos/credo/v1/decision.proto at run time with @grpc/proto-loader: no
    generated code and no Credo code, as a bank's Node service would."""
    import shutil
    import subprocess

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    root = Path(__file__).resolve().parents[2]
    client = tmp_path / "scripts" / "node_client"
    shutil.copytree(root / "scripts" / "node_client", client, ignore=shutil.ignore_patterns("node_modules"))
    shutil.copytree(root / "protos", tmp_path / "protos")
    install = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent"],
        cwd=client,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr

    def decide(application: dict, request_id: str) -> subprocess.CompletedProcess[str]:
        app_file = tmp_path / f"{request_id}.json"
        app_file.write_text(json.dumps(application, default=str))
        command = [node, "decide.js", server.target, policy, str(app_file), request_id]
        return subprocess.run(command, cwd=client, capture_output=True, text=True, timeout=60)

    policy, _, application, _ = next(c for c in CASES if c[3].get("outcome") == "APPROVE")
    good = decide(application, "node-e2e")
    assert good.returncode == 0, good.stdout + good.stderr
    decision = json.loads(good.stdout)
    assert decision["outcome"] == "APPROVE" and decision["request_id"] == "node-e2e"
    assert decision["offers"] and decision["currency"]
    bad = decide({"applicant": {"age": "x"}}, "node-bad")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["code"] == "INVALID_ARGUMENT"
