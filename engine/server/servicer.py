"""The gRPC DecisionService servicer: decode, delegate to engine.service.DecisionService, encode.

A worker enters its decision core one call at a time (durable_rules is not thread-safe), under one lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
from credo.v1 import decision_pb2 as pb
from credo.v1 import decision_pb2_grpc as pb_grpc

from engine.decision import Decision
from engine.errors import (
    DEADLINE_EXCEEDED,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    Unavailable,
    VersionNotLoaded,
)
from engine.server import convert, metrics
from engine.server.errors import MappedError, abort, map_error, plain_error
from engine.server.logs import KeyedLine, mask_application, mask_labels
from engine.service import DecisionCore

log = logging.getLogger("credo.server")
# the line each decision logs at INFO
_decision_line = KeyedLine(
    log, "decision", ("request_id", "decision_id", "policy", "outcome", "reasons", "millis", "labels")
)

_NO_DEADLINE = 10 * 365 * 86400.0
HANDING_OVER = "this worker is handing over to the current policy set"


class Flag:
    """A one-way flag a signal handler may set. threading.Event.set() takes the Event's lock, and a
    handler runs on the main thread between two bytecodes, possibly while that same thread holds
    that lock inside Event.wait(): the handler then waits forever on its own thread (a worker's start
    hung so). Assigning a bool takes no lock; readers poll is_set()."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class DecisionServicer(pb_grpc.DecisionServiceServicer):
    def __init__(
        self,
        service: DecisionCore,
        *,
        pii: Mapping[str, frozenset[str]] | None = None,
        reload_status: Path | None = None,
    ):
        self.service = service
        self.pii = dict(pii or {})
        self.reload_status = reload_status
        # Held while the decision core runs: one decision at a time in this process, run on the
        # gRPC handler thread itself. A dedicated decision thread did the same serialisation, but
        # the hand-off to it (queue put, two thread wake-ups under the GIL) cost more than a decision's
        # rule stages.
        self._decider = threading.Lock()
        # Set when this worker hands over (reload or shutdown): its connections are moving away.
        # Set by the worker's signal handlers, so a Flag (no lock), not a threading.Event.
        self.draining = Flag()
        # Set when a newer policy set starts listening: a pinned version this worker lacks may be
        # the one the new set serves.
        self.superseded = Flag()
        self._worker = (("credo-worker", str(os.getpid())),)
        # credo_decisions_total's child per (policy, outcome): labels() checks and hashes its
        # arguments under a lock on every call
        self._counted: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        with self._decider:  # wait for a decision still running
            pass

    # -- RPCs ------------------------------------------------------------------------------------

    def Decide(self, request: pb.DecideRequest, context: grpc.ServicerContext) -> pb.Decision:
        # Which worker answered (its pid, as in its log lines): how `credo bench` sees the balance.
        context.set_trailing_metadata(self._worker)
        try:
            return self._decide(request, context)
        except Exception as exc:
            mapped = self._mapped(exc, request)
            abort(context, mapped)
            raise  # unreachable: abort raises

    def DecideStream(
        self, request_iterator: Iterator[pb.DecideRequest | bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.Decision]:
        """Rows arrive as messages, or as the raw bytes `add_to_server` hands over: a row that does
        not decode is answered with its `error` like any bad row, and the stream goes on."""
        for item in request_iterator:
            if self.draining.is_set():
                # This row and those behind it were not decided: the caller resends them on a new
                # stream, which lands on a worker of the current policy set.
                context.abort(grpc.StatusCode.UNAVAILABLE, HANDING_OVER + "; reopen the stream")
            request = None
            try:
                request = (
                    item if isinstance(item, pb.DecideRequest) else convert.decode(item, pb.DecideRequest)
                )
                yield self._decide(request, context)
            except DeadlineExceeded:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
            except Exception as exc:
                mapped = self._mapped(exc, request)
                yield pb.Decision(
                    request_id=request.request_id if request is not None else "",
                    error=pb.DecisionError(
                        status=mapped.code.name,
                        code=mapped.credo_code,
                        message=mapped.message,
                        violations=[
                            pb.FieldViolation(field=v.field, description=v.description)
                            for v in mapped.violations
                        ],
                    ),
                )

    def GetDecision(self, request: pb.GetDecisionRequest, context: grpc.ServicerContext) -> pb.Decision:
        key = request.WhichOneof("key")
        try:
            if key is None:
                raise NotFound("give decision_id or request_id")
            decision = self.service.get_decision(
                decision_id=request.decision_id or None, request_id=request.request_id or None
            )
            return convert.decision_to_pb(decision)
        except Exception as exc:
            abort(context, self._mapped(exc, None))
            raise

    def Replay(self, request: pb.ReplayRequest, context: grpc.ServicerContext) -> pb.ReplayResponse:
        try:
            replayed = self._on_decider(lambda: self.service.replay(request.decision_id), context)
            return convert.replay_to_pb(replayed)
        except Exception as exc:
            abort(context, self._mapped(exc, None))
            raise

    def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: grpc.ServicerContext
    ) -> pb.ListPoliciesResponse:
        try:
            infos = [convert.policy_info_to_pb(p) for p in self.service.list_policies()]
        except Exception as exc:
            abort(context, self._mapped(exc, None))
            raise
        self._apply_reload_status(infos)
        return pb.ListPoliciesResponse(policies=infos)

    # -- internals -------------------------------------------------------------------------------

    def _decide(self, request: pb.DecideRequest, context: grpc.ServicerContext) -> pb.Decision:
        started = time.perf_counter()
        call = convert.request_to_call(request)
        # the request's fields as read once there: each read of a message field makes a new str
        policy: str = call["policy"]
        metrics.IN_FLIGHT.inc()
        try:
            # Only the decision itself holds the worker's lock; the wait for its audit record's
            # commit happens outside it, so concurrent requests share one group commit.
            pending = self._on_decider(lambda: self.service.submit(**call), context)
            decision: Decision = pending.result()
        except VersionNotLoaded:
            if self.superseded.is_set():  # the caller may pin the version the new workers serve
                raise Unavailable(HANDING_OVER + "; retry") from None
            raise
        finally:
            metrics.IN_FLIGHT.dec()
        # slim by default: schedules and the trace only when asked for (GetDecision has them all)
        answer = convert.decision_to_pb(
            decision, schedules=request.include_schedules, trace=request.include_trace
        )
        elapsed = time.perf_counter() - started
        outcome = decision.outcome.value
        counted = self._counted.get((policy, outcome))
        if counted is None:  # one per served policy and outcome: the policy decided, so it exists
            counted = metrics.DECISIONS.labels(policy=policy, outcome=outcome)
            self._counted[policy, outcome] = counted
        counted.inc()
        metrics.DECISION_SECONDS.observe(elapsed)  # stage timings are in the trace, not in metrics
        if log.isEnabledFor(logging.INFO):
            labels = call["labels"]
            _decision_line(
                call["request_id"],
                decision.decision_id,
                f"{decision.policy.name}@{decision.policy.version}",
                outcome,
                [r.code for r in decision.reasons],
                round(elapsed * 1000, 3),
                mask_labels(labels, self.pii.get(policy, ())) if labels else {},
            )
        return answer

    def _on_decider(self, work: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        """Run `work` holding the decision lock, giving up if the caller's deadline passes before
        the lock is ours (a queued decision never starts; a started one finishes)."""
        remaining = context.time_remaining()
        if remaining is not None and remaining > _NO_DEADLINE:
            remaining = None  # grpc reports "no deadline" as a huge number of seconds
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded()
        if not self._decider.acquire(timeout=-1 if remaining is None else remaining):
            raise DeadlineExceeded()
        try:
            return work()
        finally:
            self._decider.release()

    def _mapped(self, exc: Exception, request: pb.DecideRequest | None) -> MappedError:
        if isinstance(exc, DeadlineExceeded):
            metrics.REJECTED.labels(code=DEADLINE_EXCEEDED).inc()
            return plain_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        context: dict[str, Any] = {}
        if request is not None:
            context = {
                "request_id": request.request_id,
                "policy": request.policy,
                "policy_version": request.policy_version,
            }
            try:
                application = convert.struct_to_application(request.application)
                masked = mask_application(application, self.pii.get(request.policy, frozenset()))
                context["application"] = json.loads(json.dumps(masked, default=str))
            except Exception:
                context["application"] = "<unreadable>"
        mapped = map_error(exc, context)
        metrics.REJECTED.labels(code=mapped.code.name).inc()
        if mapped.code is not grpc.StatusCode.INTERNAL:
            log.info(
                "rejected",
                extra={
                    **{k: v for k, v in context.items() if k != "application"},
                    "status": mapped.code.name,
                    "error_code": mapped.credo_code,
                },
            )
        return mapped

    def _apply_reload_status(self, infos: list[pb.PolicyInfo]) -> None:
        """Mark policies whose last reload failed (the old version keeps serving)."""
        if self.reload_status is None or not self.reload_status.exists():
            return
        try:
            status = json.loads(self.reload_status.read_text())
        except (OSError, ValueError):
            return
        if status.get("status") != "RELOAD_FAILED":
            return
        errors = [str(e) for e in status.get("errors", [])]
        named = [i for i in infos if any(f"/{i.name}/" in e or f"{i.name}/" in e for e in errors)]
        for info in named or infos:
            info.status = "RELOAD_FAILED"
            info.errors.extend(errors)


def add_to_server(servicer: DecisionServicer, server: grpc.Server) -> None:
    """Serve `servicer` as credo.v1.DecisionService with handlers that receive the raw request
    bytes and decode them themselves: grpc's own deserializer answers a message that does not
    decode (truncated, invalid UTF-8, a Struct nested too deeply) INTERNAL "Exception deserializing
    request!" and ends a DecideStream, where the caller's error is INVALID_ARGUMENT."""

    def unary(
        method: Callable[[Any, grpc.ServicerContext], Any], message: type[Any], reply: type[Any]
    ) -> Any:
        def handle(data: bytes, context: grpc.ServicerContext) -> Any:
            try:
                request = convert.decode(data, message)
            except InvalidInput as exc:
                abort(context, servicer._mapped(exc, None))
                raise  # unreachable: abort raises
            return method(request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=_raw, response_serializer=reply.SerializeToString
        )

    handlers = {
        "Decide": unary(servicer.Decide, pb.DecideRequest, pb.Decision),
        "DecideStream": grpc.stream_stream_rpc_method_handler(
            servicer.DecideStream,
            request_deserializer=_raw,
            response_serializer=pb.Decision.SerializeToString,
        ),
        "GetDecision": unary(servicer.GetDecision, pb.GetDecisionRequest, pb.Decision),
        "Replay": unary(servicer.Replay, pb.ReplayRequest, pb.ReplayResponse),
        "ListPolicies": unary(servicer.ListPolicies, pb.ListPoliciesRequest, pb.ListPoliciesResponse),
    }
    name = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)


def _raw(data: bytes) -> bytes:
    return data  # a deserializer that cannot fail: decoding is the handler's, with a proper status
