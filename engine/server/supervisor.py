"""The `credo serve` supervisor: starts N worker processes on one port (SO_REUSEPORT), replaces
workers that die, and reloads policies by starting a new generation and draining the old one.

A new generation validates and compiles the policy set in fresh processes before they listen: if that
fails the old workers keep serving. Rulesets are never re-registered in a running process.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from engine.server.drift_gauges import DriftGauges
from engine.server.worker import WorkerConfig

log = logging.getLogger("credo.supervisor")

STARTUP_TIMEOUT = 120.0


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    generation: int
    started: float
    cpu: int | None = None  # the CPU this worker keeps to itself (see worker_cpus)
    ready: bool = False
    draining_since: float | None = None
    failure: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Check the port is free (a bind without SO_REUSEPORT fails if anyone listens), then hold it with
    SO_REUSEPORT so workers can share it; port 0 picks a free one.

    Both binds set SO_REUSEADDR: connections of a previous run left in TIME-WAIT must not refuse a
    restart for up to two minutes (a socket still listening on the port refuses it all the same)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    bind_host = "" if host in ("0.0.0.0", "::", "[::]") else host.strip("[]")
    if port:
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((bind_host, port))
        finally:
            probe.close()
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((bind_host, port))
    return holder, holder.getsockname()[1]


def worker_cpus(count: int) -> list[int | None]:
    """The CPU each of `count` workers is pinned to: one each when the workers are exactly as many
    as the CPUs this server may run on, else none (the kernel places them).

    A worker is one Python process whose threads (gRPC's poller, the handler threads, grpc's I/O)
    take turns on the GIL: on one CPU each hand-over is a local wake-up, spread over several it is a
    cross-CPU one, slow on a VM. Pinned, `credo serve --workers 2` on 2 vCPUs answered 25-45% more
    Decide and echo calls at 16 in flight, with ~10% less CPU per Decide. With fewer workers than
    CPUs pinning would leave CPUs unused (and several servers would share the first ones); with
    more, workers would wait on a busy CPU while another is free."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return [None] * count
    if len(allowed) != count:
        return [None] * count
    return list(allowed)


def snapshot(*roots: str) -> dict[str, tuple[int, int]]:
    """mtime and size of every file under the roots (what the policy watcher compares)."""
    found: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                found[path] = (st.st_mtime_ns, st.st_size)
    return found


class Supervisor:
    def __init__(
        self,
        config: WorkerConfig,
        workers: int,
        *,
        metrics_port: int | None = None,
        watch_interval: float = 1.0,
        announce: IO[str] | None = None,
        drift_every: float = 0.0,
        drift_window_days: float = 30.0,
    ):
        self.config = config
        self.count = workers
        self.cpus = worker_cpus(workers)
        self.metrics_port = metrics_port
        self.watch_interval = watch_interval
        self.announce = announce or sys.stdout
        self.state_dir = Path(tempfile.mkdtemp(prefix="credo-serve-"))
        self.workers: list[Worker] = []
        self.generation = 0
        self._reload_requested = False
        self._stop = False
        self._restart_backoff = 0.0
        self.last_errors: list[str] = []
        self._quick = False
        self.drift_every = drift_every  # seconds between drift gauge refreshes; 0: no drift gauges
        self.drift_window_days = drift_window_days
        self.drift: DriftGauges | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        multiproc = self.state_dir / "metrics"
        multiproc.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)  # before prometheus_client loads
        from engine.server import metrics

        metrics.write_supervisor_counters()
        self.metrics = metrics
        holder, port = reserve_port(self.config.host, self.config.port)
        self.config = replace(self.config, port=port, state_dir=str(self.state_dir))
        signal.signal(signal.SIGHUP, lambda *_: self._request_reload())
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(signal.SIGINT, lambda *_: self._request_stop(quick=True))
        try:
            started = self._start_generation(self.config)
            if started is None:
                return 2
            self.workers = started
            if self.metrics_port is not None:
                if self.drift_every > 0 and self.config.store and not self.config.echo:
                    self.drift = DriftGauges(
                        self.config.store, self.config.models, self.drift_every, self.drift_window_days
                    )
                    self.drift.start()
                metrics.serve_metrics(self.metrics_port, collectors=[self.drift] if self.drift else [])
            self._announce(port)
            self._loop()
            return 0
        finally:
            self._shutdown()
            holder.close()
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _request_reload(self) -> None:
        self._reload_requested = True

    def _request_stop(self, quick: bool = False) -> None:
        """SIGTERM drains the workers (health NOT_SERVING, stop listening, answer what is in flight,
        exit as soon as nothing is, within the grace); SIGINT skips waiting for busy connections."""
        self._stop = True
        self._quick = quick

    def _announce(self, port: int) -> None:
        host = self.config.host
        target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        secure = bool(self.config.tls_cert)
        lines = [
            f"credo serving on {target} ({self.count} worker(s), pid {os.getpid()}, "
            f"{'TLS' if secure else 'plaintext'}); policies from {self.config.policies}",
            "  health:   grpcurl -plaintext " + target + " grpc.health.v1.Health/Check"
            if not secure
            else "  health:   grpcurl " + target + " grpc.health.v1.Health/Check",
            "  policies: grpcurl -plaintext " + target + " credo.v1.DecisionService/ListPolicies",
            "  decide:   .venv/bin/python scripts/client_example.py " + target,
            "  reload:   kill -HUP " + str(os.getpid()) + "  (or edit a policy file)",
        ]
        if self.metrics_port is not None:
            lines.append(f"  metrics:  http://127.0.0.1:{self.metrics_port}/metrics")
        print("\n".join(lines), file=self.announce, flush=True)

    def _loop(self) -> None:
        seen = snapshot(self.config.policies, self.config.models)
        next_watch = time.monotonic() + self.watch_interval
        pending_change = False
        while not self._stop:
            self._reap()
            now = time.monotonic()
            if now >= next_watch:
                next_watch = now + self.watch_interval
                current = snapshot(self.config.policies, self.config.models)
                if current != seen:
                    seen = current
                    pending_change = True  # wait one quiet interval: editors write in several steps
                elif pending_change:
                    pending_change = False
                    log.info("policy files changed")
                    self._reload()
            if self._reload_requested:
                self._reload_requested = False
                log.info(
                    "reload requested (SIGHUP)", extra={"event": "reload_requested", "trigger": "SIGHUP"}
                )
                self._reload()
            time.sleep(0.1)

    def _shutdown(self) -> None:
        if self.drift is not None:
            self.drift.stop()
        for worker in self.workers:
            self._drain(worker, signal.SIGINT if self._quick else signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_seconds + 5
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
        log.info("supervisor stopped")

    # -- workers ---------------------------------------------------------------------------------

    def _spawn(self, config: WorkerConfig, cpu: int | None) -> Worker:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.server.worker", replace(config, cpu=cpu).to_json()],
            stdout=subprocess.PIPE,
            text=True,
        )
        return Worker(proc, config.generation, time.monotonic(), cpu)

    def _start_workers(self, workers: list[Worker], superseding: Sequence[Worker] = ()) -> bool:
        """Bring up fresh workers: once every one has built its decision core, tell the workers they
        supersede (SIGUSR2: a pinned version they lack is now UNAVAILABLE, retry, not refused), then
        let the fresh ones listen together (SIGUSR1). So no caller reaches a worker of the new set
        while the old set still refuses the version that set serves."""
        if not self._wait_for(workers, "built", STARTUP_TIMEOUT):
            return False
        for worker in superseding:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGUSR2)
        for worker in workers:
            worker.proc.send_signal(signal.SIGUSR1)
        return self._wait_for(workers, "ready", STARTUP_TIMEOUT)

    def _wait_for(self, workers: list[Worker], event: str, timeout: float) -> bool:
        """Wait until every worker reported `event`; False as soon as one failed or the time is up."""
        deadline = time.monotonic() + timeout
        waiting = {w.proc.stdout.fileno(): w for w in workers if w.proc.stdout}
        while waiting and time.monotonic() < deadline and not self._stop:
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
            for fd in readable:
                worker = waiting.pop(fd)
                if not self._read_status(worker, event):
                    return False
            if any(w.proc.poll() is not None for w in waiting.values()):
                return False
        return not waiting

    def _read_status(self, worker: Worker, event: str) -> bool:
        assert worker.proc.stdout is not None
        line = worker.proc.stdout.readline()
        try:
            message: dict[str, Any] = json.loads(line) if line else {}
        except ValueError:
            message = {}
        if message.get("event") == event:
            worker.ready = event == "ready"
            return True
        worker.failure = [str(e) for e in message.get("errors", [])] or [
            f"worker exited with {worker.proc.wait()}"
        ]
        return False

    def _start_generation(
        self, base: WorkerConfig, superseding: Sequence[Worker] = ()
    ) -> list[Worker] | None:
        self.generation += 1
        config = replace(base, generation=self.generation)
        fresh = [self._spawn(config, cpu) for cpu in self.cpus]
        if self._start_workers(fresh, superseding):
            log.info(
                "generation ready", extra={"generation": self.generation, "pids": [w.pid for w in fresh]}
            )
            return fresh
        errors = sorted({e for w in fresh for e in w.failure}) or ["workers did not become ready"]
        log.error("generation failed", extra={"generation": self.generation, "errors": errors})
        for worker in fresh:
            self._drain(worker)
        for worker in fresh:
            try:
                worker.proc.wait(timeout=self.config.grace_seconds + 5)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
        self.last_errors = errors
        if self.generation == 1:
            print("credo serve: cannot start:\n  " + "\n  ".join(errors), file=sys.stderr, flush=True)
        return None

    def _drain(self, worker: Worker, how: signal.Signals = signal.SIGTERM) -> None:
        if worker.proc.poll() is None and (worker.draining_since is None or how is signal.SIGINT):
            worker.draining_since = worker.draining_since or time.monotonic()
            worker.proc.send_signal(how)

    def _reap(self) -> None:
        """Replace workers of the current generation that died; forget drained ones that exited."""
        for worker in list(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            self.workers.remove(worker)
            self.metrics.mark_dead(worker.pid)
            if worker.draining_since is not None:
                continue
            log.error(
                "worker died; replacing it",
                extra={"event": "worker_replaced", "worker_pid": worker.pid, "exit_code": code},
            )
            self.metrics.WORKER_RESTARTS.inc()
            quick = time.monotonic() - worker.started < 5
            self._restart_backoff = min(10.0, self._restart_backoff * 2 or 0.5) if quick else 0.0
            time.sleep(self._restart_backoff)
            fresh = self._spawn(replace(self.config, generation=self.generation), worker.cpu)
            self.workers.append(fresh)
            if not self._start_workers([fresh]):
                log.error("replacement worker failed", extra={"errors": fresh.failure})
        for worker in self.workers:
            if worker.draining_since is not None and worker.proc.poll() is None:
                limit = self.config.grace_seconds + 5
                if time.monotonic() - worker.draining_since > limit:
                    worker.proc.kill()

    def _reload(self) -> None:
        old = [w for w in self.workers if w.draining_since is None]
        fresh = self._start_generation(self.config, superseding=old)
        status = self.state_dir / "reload.json"
        if fresh is None:
            self.metrics.RELOADS.labels(result="failed").inc()
            tmp = status.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"status": "RELOAD_FAILED", "errors": self.last_errors, "at": time.time()})
            )
            tmp.replace(status)
            log.error(
                "reload refused; the previous policy set keeps serving",
                extra={"event": "reload_refused", "errors": self.last_errors},
            )
            return
        status.unlink(missing_ok=True)
        self.workers.extend(fresh)
        for worker in old:
            self._drain(worker)
        self.metrics.RELOADS.labels(result="ok").inc()
        log.info("reloaded", extra={"generation": self.generation, "drained": [w.pid for w in old]})
