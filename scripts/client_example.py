"""A minimal Python client of credo.v1.DecisionService using the generated stubs.

Run `make run` in one terminal, then: .venv/bin/python scripts/client_example.py [HOST:PORT]
"""

from __future__ import annotations

import sys
import uuid

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import engine.server  # noqa: F401  (puts the generated credo.v1 package on sys.path)

# isort: split
from credo.v1 import decision_pb2, decision_pb2_grpc


def main(target: str = "127.0.0.1:50051") -> None:
    with grpc.insecure_channel(target) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        for policy in stub.ListPolicies(decision_pb2.ListPoliciesRequest(), timeout=5).policies:
            print(f"policy {policy.name} {policy.version} {policy.status}")

        application = struct_pb2.Struct()
        application.update(
            {
                "applicant": {
                    "age": 34,
                    "income_monthly": "18000.00",
                    "employment_type": "salaried",
                    "employment_months": 60,
                    "residence_type": "rent",
                },
                "debt": {"monthly_payments": "2500.00"},
                "bureau": {
                    "score": 720,
                    "delinquencies_24m": 0,
                    "inquiries_6m": 1,
                    "utilisation": "0.35",
                    "months_on_file": 84,
                    "bankruptcy": False,
                },
                "loan": {"amount": "50000", "term_months": 24, "purpose": "consumption"},
                "flags": {"blacklisted": False},
            }
        )
        request = decision_pb2.DecideRequest(
            request_id=str(uuid.uuid4()),  # your idempotency key: retry with the same one
            policy="consumer_loan",
            application=application,
            language="en",
        )
        try:
            decision = stub.Decide(request, timeout=2.0)
        except grpc.RpcError as err:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            print(f"{err.code().name}: {err.details()}")
            for detail in status.details if status else ():
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    for v in bad.field_violations:
                        print(f"  {v.field}: {v.description}")
            return
        print(
            decision_pb2.Outcome.Name(decision.outcome),
            decision.limit,
            decision.annual_rate,
            decision.currency,
        )
        for reason in decision.reasons:
            print(f"  {reason.code}: {reason.text}")
        for offer in decision.offers:
            print(
                f"  offer {offer.product} {offer.amount} x {offer.term_months}m {offer.repayment_method} "
                f"rate {offer.annual_rate} APR {offer.apr} instalment {offer.instalment}"
            )


if __name__ == "__main__":
    main(*sys.argv[1:2])
