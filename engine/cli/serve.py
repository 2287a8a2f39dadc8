"""`credo serve`: run the gRPC decision service (a supervisor and N worker processes on one port).

See engine/server/supervisor.py for the process model and engine/server/worker.py for one worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.options import add_rule_engine_option
from engine.errors import CredoError

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve", help="serve decisions over gRPC", description="Serve credo.v1.DecisionService over gRPC."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"worker processes sharing the port (default {DEFAULT_WORKERS})",
    )
    p.add_argument("--policies", default=None, help="policy directory (default policies)")
    p.add_argument(
        "--releases",
        default=None,
        help="approvals mode: serve only approved release bundles from this folder (credo release); "
        "policy files are not hot-reloaded",
    )
    p.add_argument("--trust", default=None, help="approvals mode: folder of trusted approvers' *.pub keys")
    p.add_argument(
        "--approvals",
        type=int,
        default=2,
        help="approvals mode: distinct trusted approvals required (default 2)",
    )
    p.add_argument("--models", default="models", help="model store directory (default models)")
    p.add_argument(
        "--store",
        default=None,
        help="audit store URL (sqlite:///path, postgresql://...): every decision is recorded before it is "
        "answered, and a retried request_id is recognised by every worker; without a store nothing is "
        "recorded, replay is impossible, and idempotency is each worker's memory of its recent answers "
        "(64 MiB of them): a retry that reaches another worker, comes after a restart or after its "
        "answer was forgotten is decided again, and GetDecision finds only what that worker remembers",
    )
    p.add_argument("--tls-cert", default=None, help="server certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="server private key (PEM)")
    p.add_argument("--tls-client-ca", default=None, help="CA for client certificates: enables mutual TLS")
    p.add_argument("--token-file", default=None, help="bearer tokens, one per line: calls must present one")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--drift-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="refresh the models' drift gauges from --store this often (default 300; 0 disables; "
        "needs --metrics-port)",
    )
    p.add_argument(
        "--drift-window",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="drift over the last DAYS (default 30)",
    )
    p.add_argument(
        "--console-port",
        type=int,
        default=None,
        help="also serve the read-only web console on this port (`credo console` on the same store,"
        " host and token file; personal data masked)",
    )
    p.add_argument("--reports", default=None, help="with --console-port: folder of reports it lists")
    p.add_argument(
        "--allow-insecure-remote", action="store_true", help="allow listening beyond loopback without TLS"
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="largest request or response (default 4 MiB); larger -> RESOURCE_EXHAUSTED",
    )
    p.add_argument("--threads", type=int, default=8, help="gRPC handler threads per worker (default 8)")
    p.add_argument(
        "--max-connection-age",
        type=float,
        default=1.0,
        help="seconds before a client connection is told to move (graceful GOAWAY; calls open on it, "
        "long streams too, are not cut): keeps connections spread over the workers and moves them to "
        "new workers within ~2 s of a reload (default 1)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        help="longest a draining worker keeps answering open connections that still send calls "
        "(default: max connection age x 1.1 + 0.5); an idle one stops at once",
    )
    p.add_argument(
        "--grace",
        "--grace-seconds",
        dest="grace_seconds",
        type=float,
        default=20.0,
        help="SIGTERM stops accepting calls, finishes those in flight and exits as soon as none remain, "
        "within this many seconds (default 20: fits a 30 s Kubernetes termination grace period)",
    )
    p.add_argument(
        "--pii-key-file",
        help="master key sealing personal data in the audit store (default: $CREDO_PII_KEY_FILE,"
        " $CREDO_PII_KEY, or for SQLite a key file beside the database, created if absent)",
    )
    p.add_argument(
        "--allow-plaintext-pii",
        action="store_true",
        help="store personal data unsealed (development only; announced at start)",
    )
    p.add_argument("--watch-interval", type=float, default=1.0, help="policy file poll interval (s)")
    add_rule_engine_option(p)
    p.add_argument(
        "--shadow-rate",
        type=float,
        default=0.01,
        help="share of decisions re-checked on durable_rules after they are answered, counted in "
        "credo_shadow_checks_total{result} (default 0.01; 0 disables)",
    )
    p.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)  # benchmark floor service
    p.add_argument("--service-factory", default="engine.service:DecisionService", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.server.logs import setup_logging
    from engine.server.security import is_loopback, tls_problem
    from engine.server.supervisor import Supervisor
    from engine.server.worker import WorkerConfig

    setup_logging()
    if bool(args.tls_cert) != bool(args.tls_key):
        print("credo serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.tls_client_ca and not args.tls_cert:
        print("credo serve: --tls-client-ca needs --tls-cert and --tls-key", file=sys.stderr)
        return 2
    problem = tls_problem(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    if problem:
        print(f"credo serve: TLS: {problem}", file=sys.stderr)
        return 2
    if not args.tls_cert and not is_loopback(args.host) and not args.allow_insecure_remote:
        print(
            f"credo serve: refusing to listen on {args.host} without TLS; give --tls-cert/--tls-key "
            "or --allow-insecure-remote",
            file=sys.stderr,
        )
        return 2
    releases = _releases_mode(args)
    if releases is None:
        return 2
    for label, path in (("--policies", args.policies), ("--models", args.models)):
        if not Path(path).is_dir():
            print(f"credo serve: {label} {path}: not a directory", file=sys.stderr)
            return 2
    if args.workers < 1:
        print("credo serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.drift_every < 0 or args.drift_window <= 0:
        print("credo serve: --drift-every must be >= 0 and --drift-window > 0", file=sys.stderr)
        return 2
    if not 0.0 <= args.shadow_rate <= 1.0:
        print("credo serve: --shadow-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if args.store and not args.echo:
        from engine.audit.pii import prepare_writer

        try:  # the workers inherit the key's place through the environment; said as a JSON log line
            said = prepare_writer(args.store, args.pii_key_file, args.allow_plaintext_pii)
            logging.getLogger("credo.serve").warning(said)
        except CredoError as exc:
            print(f"credo serve: {exc}", file=sys.stderr)
            return 2
    # A draining worker with busy clients waits until their connections aged out (+10% jitter).
    drain = args.drain_seconds if args.drain_seconds is not None else args.max_connection_age * 1.1 + 0.5
    config = WorkerConfig(
        host=args.host,
        port=args.port,
        policies=str(Path(args.policies).resolve()),
        models=str(Path(args.models).resolve()),
        store=args.store,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        token_file=args.token_file,
        threads=args.threads,
        max_message_bytes=args.max_message_bytes,
        max_connection_age=args.max_connection_age,
        drain_seconds=drain,
        grace_seconds=args.grace_seconds,
        echo=args.echo,
        service_factory=args.service_factory,
        rule_engine=args.rule_engine,
        shadow_rate=args.shadow_rate,
        extra={"releases": releases} if releases else {},
    )
    console = _start_console(args) if args.console_port is not None else None
    try:
        supervisor = Supervisor(
            config,
            args.workers,
            metrics_port=args.metrics_port,
            watch_interval=args.watch_interval,
            drift_every=args.drift_every,
            drift_window_days=args.drift_window,
        )
        code = supervisor.run()
    except OSError as exc:
        print(
            f"credo serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    finally:
        if console is not None:
            console.terminate()
            try:
                console.wait(timeout=10)
            except subprocess.TimeoutExpired:
                console.kill()
    # The workers have exited and the state directory is gone: skip the interpreter's teardown (grpc's
    # took over a second on a loaded machine), so SIGTERM -> exit stays well within 2 s.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _releases_mode(args: argparse.Namespace) -> dict[str, object] | None:
    """Approvals mode settings ({} without --releases); None (after saying why) if unusable. In
    approvals mode the watched folder is the release folder: a new approval, release or rollback
    starts a new generation, while an edited policy file never goes live."""
    from engine.errors import CredoError
    from engine.release.signing import trusted_keys

    if not args.releases:
        if args.trust:
            print("credo serve: --trust needs --releases", file=sys.stderr)
            return None
        args.policies = args.policies or "policies"
        return {}
    if args.policies:
        print(
            "credo serve: --policies with --releases: hot reload of policy files is refused in approvals"
            " mode; build, approve and serve releases instead",
            file=sys.stderr,
        )
        return None
    if not args.trust or args.approvals < 1:
        print("credo serve: --releases needs --trust KEYS and --approvals of at least 1", file=sys.stderr)
        return None
    try:
        trusted_keys(args.trust)
    except CredoError as exc:
        print(f"credo serve: {exc.message}", file=sys.stderr)
        return None
    args.policies = args.releases
    return {"trust": str(Path(args.trust).resolve()), "approvals": args.approvals}


def _start_console(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """`credo console` beside the gRPC server, in its own process (it stops when this one is gone)."""
    command = [sys.executable, "-m", "engine", "console", "--port", str(args.console_port)]
    command += ["--host", args.host, "--policies", args.policies, "--models", args.models]
    command += ["--parent-pid", str(os.getpid())]
    for flag, value in (
        ("--store", args.store),
        ("--token-file", args.token_file),
        ("--reports", args.reports),
        ("--releases", args.releases),
        ("--trust", args.trust),
    ):
        if value:
            command += [flag, str(value)]
    if args.releases:
        command += ["--approvals", str(args.approvals)]
    return subprocess.Popen(command)
