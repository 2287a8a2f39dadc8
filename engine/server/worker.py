"""One worker process of `credo serve`: builds the decision core, then serves gRPC on the shared port.

The core is built (policies validated and compiled) before the port is bound, so a worker that
cannot load the policy set never receives a call. Run by the supervisor: python -m engine.server.worker JSON
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import logging
import os
import signal
import socket
import stat
import sys
import tempfile
import time
from concurrent import futures
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from credo.v1 import decision_pb2 as pb
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.errors import PolicyError, PolicySetInvalid
from engine.pipeline.shadow import ShadowCheck
from engine.release.bundle import materialize, select
from engine.release.guards import VersionLedger
from engine.release.shadows import spread_children
from engine.release.signing import trusted_keys
from engine.rules import DEFAULT_ENGINE
from engine.rules import evaluator as rule_engine
from engine.server import metrics
from engine.server.echo import SERVICE as ECHO_SERVICE
from engine.server.echo import echo_handler
from engine.server.health import StoreHealth
from engine.server.logs import pii_paths, setup_logging
from engine.server.monitor_servicer import SERVICE_NAME as MONITOR_SERVICE_NAME
from engine.server.monitor_servicer import build_monitor, register_monitor
from engine.server.security import BearerTokenInterceptor, read_tokens, server_credentials
from engine.server.servicer import DecisionServicer, add_to_server
from engine.service import DecisionCore, DecisionService

log = logging.getLogger("credo.worker")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name
LEDGER = "versions.json"


@dataclass
class WorkerConfig:
    host: str
    port: int
    policies: str
    models: str
    store: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    token_file: str | None = None
    threads: int = 8
    max_message_bytes: int = 4 * 1024 * 1024
    drain_seconds: float = 1.6
    max_connection_age: float = 1.0
    grace_seconds: float = 20.0
    echo: bool = False
    generation: int = 0
    state_dir: str | None = None
    service_factory: str = "engine.service:DecisionService"
    extra: dict[str, Any] = field(default_factory=dict)
    rule_engine: str = DEFAULT_ENGINE
    shadow_rate: float = 0.0
    cpu: int | None = None  # pinned to this CPU, with every thread it starts (supervisor.worker_cpus)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def build_service(config: WorkerConfig) -> DecisionCore:
    """The transport-neutral decision core (engine.service.DecisionService by default)."""
    module_name, _, attr = config.service_factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    kwargs: dict[str, Any] = {}
    if config.store:
        kwargs["store"] = config.store
    if isinstance(factory, type) and issubclass(factory, DecisionService):  # not the test stand-ins
        kwargs["rule_engine"] = config.rule_engine
        kwargs["shadow"] = shadow_check(config) if config.shadow_rate > 0 else None
        kwargs["on_shadow_drop"] = metrics.SHADOW_POLICY_DROPPED.inc
    if config.state_dir:
        kwargs["ledger"] = Path(config.state_dir) / LEDGER
    service = factory(Path(config.policies), Path(config.models), **kwargs)
    # Load and compile every policy now, before listening: a set with one broken policy is refused
    # as a whole (at reload the previous generation keeps serving it). A policy refused by a release
    # guard (failed tests, a changed text under a served version) refuses the set only if it is
    # serving now; one that never served is listed as REFUSED while the others serve.
    serving = ledger(config).serving() if config.state_dir else set()
    infos = [info for info in service.list_policies() if isinstance(info, dict)]
    errors = [
        f"{info.get('name')}: {error}"
        for info in infos
        if info.get("status", "SERVING") != "SERVING"
        and (info.get("status") != "REFUSED" or info.get("name") in serving)
        for error in (info.get("errors") or ["does not load"])
    ]
    if errors:
        raise PolicySetInvalid(errors)
    for info in infos:
        if info.get("status") == "REFUSED":
            log.error(
                "policy refused; the other policies serve",
                extra={"event": "policy_refused", "policy": info.get("name"), "errors": info.get("errors")},
            )
    service.warm_up()
    return service


def shadow_check(config: WorkerConfig) -> ShadowCheck:
    """The worker's shadow check: durable_rules re-checks the sample (the reference evaluator when
    durable decides), counted in credo_shadow_checks_total{result}."""
    engine = "reference" if config.rule_engine == "durable" else "durable"
    return ShadowCheck(
        config.shadow_rate,
        rule_engine(engine),
        on_result=lambda result: metrics.SHADOW_CHECKS.labels(result=result).inc(),
    )


def serve_releases(config: WorkerConfig) -> WorkerConfig:
    """In approvals mode (`extra.releases`), the config to serve the selected releases with: each
    policy's newest approved release written into a folder of this worker's own; every release that
    may not serve is logged with its reasons."""
    settings = config.extra.get("releases")
    if not settings:
        return config
    trusted = trusted_keys(settings["trust"])
    active, verdicts = select(config.policies, trusted, int(settings["approvals"]), config.models)
    for verdict in verdicts:
        if not verdict.approved:
            log.error(
                "release refused",
                extra={
                    "event": "release_refused",
                    "policy": verdict.release.name,
                    "version": verdict.release.version,
                    "release_id": verdict.release.release_id,
                    "errors": verdict.problems,
                },
            )
    # An altered bundle of a policy being served refuses the new generation (the previous one keeps
    # serving) rather than silently falling back to an older release.
    serving = ledger(config).serving() if config.state_dir else set()
    altered = [
        f"{v.release.name}: release {v.release.release_id[:12]}: {problem}"
        for v in verdicts
        if v.altered and v.release.name in serving
        for problem in v.problems
    ]
    if altered:
        raise PolicySetInvalid(altered)
    chosen = {name: v.release.release_id[:12] for name, v in active.items()}
    log.info("serving releases", extra={"event": "releases_selected", "releases": chosen})
    base = Path(config.state_dir) if config.state_dir else Path(tempfile.mkdtemp(prefix="credo-releases-"))
    folder = materialize(active, base / f"released-{config.generation}-{os.getpid()}", verdicts)
    return replace(config, policies=str(folder))


def ledger(config: WorkerConfig) -> VersionLedger:
    """The supervisor's record of the versions its generations served (engine.release.guards)."""
    return VersionLedger(Path(config.state_dir or ".") / LEDGER)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (no orphans holding the port)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_listening(port: int) -> None:
    """Close this process's listening socket(s) on `port` without shutting the server down.

    gRPC Python has no call for it, and server.stop() cancels calls that race with its GOAWAY
    (grpc/grpc#41785). Unlistened, the kernel sends new connections to the other workers of the
    SO_REUSEPORT group while existing connections age out gracefully (max_connection_age)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and sock.getsockname()[1] == port:
                sock.shutdown(socket.SHUT_RD)
                log.info("listener closed", extra={"fd": fd})
        except OSError:
            pass
        finally:
            sock.detach()


def _notify(event: str, **fields: Any) -> None:
    """One JSON line to the supervisor on stdout (the control channel; logs go to stderr)."""
    sys.stdout.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")
    sys.stdout.flush()


class Asked:
    """What the supervisor's signals asked of this worker. The handlers only assign attributes and
    set lock-free Flags: a handler runs on the main thread between two bytecodes, possibly while that
    thread holds a threading.Event's lock inside wait(), and a handler calling Event.set() then waits
    on its own thread forever (a worker's start hung so, 2 in ~36 e2e starts). The main thread polls."""

    __slots__ = ("listen", "quick", "servicer", "stop")

    def __init__(self) -> None:
        self.listen = False  # SIGUSR1: the whole new set is built
        self.stop = False  # SIGTERM (drain) or SIGINT (quick)
        self.quick = False  # the last stop signal was SIGINT
        self.servicer: DecisionServicer | None = None

    def on_stop(self, signum: int, _frame: Any) -> None:
        self.quick = signum == signal.SIGINT  # Ctrl-C: stop now; SIGTERM: drain
        self.stop = True
        if self.servicer is not None:
            self.servicer.draining.set()
            self.servicer.superseded.set()

    def on_listen(self, _signum: int, _frame: Any) -> None:
        self.listen = True

    def on_superseded(self, _signum: int, _frame: Any) -> None:
        # A newer set is about to listen: a caller pinning the version it serves is sent on
        # (UNAVAILABLE, retry) rather than refused here.
        if self.servicer is not None:
            self.servicer.superseded.set()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.on_stop)
        signal.signal(signal.SIGINT, self.on_stop)
        signal.signal(signal.SIGUSR1, self.on_listen)
        signal.signal(signal.SIGUSR2, self.on_superseded)


POLL_SECONDS = 0.05  # how soon the main thread acts on a signal's flag


def serve(config: WorkerConfig) -> int:
    asked = Asked()
    asked.install()
    started = time.monotonic()
    if config.cpu is not None:
        pin(config.cpu)
    try:
        config = serve_releases(config)
        service = build_service(config)
        monitor = build_monitor(config.policies, config.store)  # None: no monitoring policy or store
    except PolicyError as exc:
        _notify("failed", errors=[str(d) for d in exc.diagnostics if d.is_error] or [str(exc)])
        return 3
    except PolicySetInvalid as exc:
        _notify("failed", errors=exc.errors)
        return 3
    except Exception as exc:
        log.exception("worker could not build the decision service")
        _notify("failed", errors=[f"{type(exc).__name__}: {exc}"])
        return 3
    state = Path(config.state_dir) if config.state_dir else None
    servicer = DecisionServicer(
        service, pii=pii_paths(config.policies), reload_status=state / "reload.json" if state else None
    )
    asked.servicer = servicer
    if asked.stop:  # a stop signal came while the core was being built
        servicer.draining.set()
        servicer.superseded.set()
    arrivals = ArrivalClock()
    interceptors: list[grpc.ServerInterceptor] = [arrivals]
    if config.token_file:
        interceptors.append(BearerTokenInterceptor(read_tokens(config.token_file)))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="credo-grpc"),
        interceptors=interceptors,
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            # Connections are recycled with a graceful GOAWAY (gRFC A9): this spreads long-lived
            # clients over the workers and is how a draining worker sheds its connections safely.
            # No max_connection_age_grace: calls already open on an aged connection (a long
            # DecideStream) are never cut by ageing, only by a worker's own bounded stop.
            ("grpc.max_connection_age_ms", int(config.max_connection_age * 1000)),
        ],
    )
    add_to_server(servicer, server)
    monitor_servicer = register_monitor(server, monitor) if monitor is not None else None
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    if monitor_servicer is not None:
        names.append(MONITOR_SERVICE_NAME)
    if config.echo:
        server.add_generic_rpc_handlers([echo_handler()])
        names.append(ECHO_SERVICE)
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    audit_log = service.log
    store_health = None
    if audit_log is not None:
        store_health = StoreHealth(health_servicer, ("", SERVICE_NAME), audit_log.store.probe)
        audit_log.on_commit = store_health
    # What was built to serve (policies, compiled code, models, the gRPC server) lives as long as
    # this worker: frozen out of the collector, a full collection no longer walks it all (at 16 in
    # flight ~190 -> ~85 µs of collection per Decide, its pauses ~190-285 -> ~75-110 ms).
    gc.collect()
    gc.freeze()
    # Listen only when the supervisor says the whole new set is built (binding is listening).
    _notify("built", generation=config.generation)
    while not asked.listen:
        if asked.stop or os.getppid() == 1:  # the set failed, or the supervisor is gone
            return 0
        time.sleep(POLL_SECONDS)
    address = f"{config.host}:{config.port}"
    try:
        if config.tls_cert and config.tls_key:
            bound = server.add_secure_port(
                address, server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
            )
        else:
            bound = server.add_insecure_port(address)
    except (RuntimeError, OSError):
        bound = 0  # grpc's "Failed to bind" (e.g. a TLS file changed since `credo serve` checked it)
    if not bound:
        _notify("failed", errors=[f"cannot bind {address}"])
        return 4
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "worker serving",
        extra={
            "address": address,
            "generation": config.generation,
            "startup_seconds": round(time.monotonic() - started, 3),
        },
    )
    if config.state_dir:
        ledger(config).record(i for i in service.list_policies() if i.get("status", "SERVING") == "SERVING")
    _notify("ready", generation=config.generation)
    while not asked.stop:
        if os.getppid() == 1:  # supervisor gone and no death signal arrived
            break
        time.sleep(POLL_SECONDS)
    drain(server, servicer, health_servicer, arrivals, config, quick=asked.quick)
    if monitor_servicer is not None:
        monitor_servicer.close()
    if store_health is not None:
        store_health.close()
    if isinstance(service, DecisionService):
        service.close(config.grace_seconds)  # the shadow process records what was queued, then stops
    if audit_log is not None:
        audit_log.close()  # every answered decision is committed already; this closes the store cleanly
    return 0


def pin(cpu: int) -> None:
    """Run this worker on `cpu`: the threads it has (imports start some: numpy's, ONNX Runtime's)
    and, inherited, every thread it starts later. Its shadow process is let out onto every CPU the
    server was given (engine.release.shadows.spread_children)."""
    spread_children(frozenset(os.sched_getaffinity(0)))
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), {cpu})
    except OSError:  # the CPU was taken from us since the supervisor looked: the kernel places us
        log.warning("worker not pinned to its CPU", extra={"cpu": cpu})


class ArrivalClock(grpc.ServerInterceptor):
    """Remembers when the last call arrived: a draining worker with no recent call can stop at once."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.last = time.monotonic()
        return continuation(details)


QUIET_SECONDS = 0.5


def drain(
    server: grpc.Server,
    servicer: DecisionServicer,
    health_servicer: health.HealthServicer,
    arrivals: ArrivalClock,
    config: WorkerConfig,
    *,
    quick: bool,
) -> None:
    """Stop within `grace_seconds` without dropping a call: health NOT_SERVING, stop listening, keep
    answering on open connections until no call arrived for QUIET_SECONDS or every connection has
    aged out (graceful GOAWAY: clients move to the other workers), then stop, letting calls still in
    flight finish in what remains of the grace. An idle worker so exits within about a second."""
    started = time.monotonic()
    health_servicer.enter_graceful_shutdown()
    servicer.draining.set()
    log.info("worker draining", extra={"generation": config.generation})
    _stop_listening(config.port)
    aged = started + min(config.drain_seconds, config.grace_seconds)
    while not quick and time.monotonic() < aged:
        if time.monotonic() - max(arrivals.last, started) >= QUIET_SECONDS:
            break
        time.sleep(0.05)
    left = max(0.0, config.grace_seconds - (time.monotonic() - started))
    server.stop(left).wait()
    servicer.close()
    log.info(
        "worker stopped",
        extra={"generation": config.generation, "seconds": round(time.monotonic() - started, 3)},
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    setup_logging()
    _die_with_parent()
    config = WorkerConfig(**json.loads(args[0]))
    code = serve(config)
    # Every call is answered and its record committed: skip the interpreter's teardown (grpc's and the
    # rule engine's took up to a second), so a stopping server exits promptly.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
