"""The console's web application (Starlette, server-rendered Jinja2 pages, read-only): routes,
the store and key it reads with, and the mapping of every caller-controlled value to a clear 4xx."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from engine.audit.connect import open_store
from engine.audit.pii import PiiVault
from engine.audit.pii_keys import MasterKey
from engine.audit.search import DecisionQuery
from engine.audit.store import SqlStore
from engine.console import charts, views
from engine.console.background import DriftJobs
from engine.console.security import COOKIE, Guard, Sessions, session_cookie
from engine.errors import CredoError, StoreUnavailable
from engine.release.diff import diff_texts
from engine.replay import Replayer
from engine.service import DecisionService

__all__ = ["ConsoleConfig", "build_app"]

HERE = Path(__file__).parent
log = logging.getLogger("credo.console")
DECISION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHA256 = re.compile(r"[0-9a-f]{64}")
CURSOR = re.compile(r"(\d{4}-\d\d-\d\dT[0-9:.]+\+00:00)~([0-9a-f-]{36})")
POLICY = re.compile(r"[a-z][a-z0-9_]{0,63}")
REPORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MONITOR_DAYS = 30
DRIFT_SECONDS = 300.0  # a window's drift report is recomputed at most this often


@dataclass(frozen=True)
class ConsoleConfig:
    store: str
    policies: Path = Path("policies")
    models: Path = Path("models")
    reports: Path | None = None
    releases: Path | None = None  # a release folder: the Policies page lists its bundles and approvals
    trust: Path | None = None  # trusted public keys the approvals are checked against
    approvals: int = 2  # approvals by distinct trusted keys a release needs to serve
    tokens: list[bytes] | None = None  # None: no login (loopback only; `credo console` checks)
    pii_key_file: Path | None = None  # None: personal data stays masked
    secure_cookie: bool = False
    drift_wait: float = 10.0  # seconds the monitoring page waits for PSI before showing it pending
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


class Reader:
    """The store, the personal-data vault and the replayer of one console, opened on first use (the
    store may not exist yet when the console starts beside a fresh server) and read-only."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._store: SqlStore | None = None
        self._vault: PiiVault | None = None
        self._replayer: Replayer | None = None
        self.drift = DriftJobs(
            lambda since, until: views.drift(self.store(), views.Window(since, until), config.models),
            wait=config.drift_wait,
            keep=DRIFT_SECONDS,
        )
        self.service = DecisionService(config.policies, config.models)

    def store(self) -> SqlStore:
        with self._lock:
            if self._store is None:
                store = open_store(self.config.store, create=False, readonly=True)
                if not isinstance(store, SqlStore):  # every store URL opens an SQL store today
                    raise StoreUnavailable(f"{self.config.store}: not an SQL store")
                master = MasterKey.read(self.config.pii_key_file) if self.config.pii_key_file else None
                self._vault = PiiVault(store, master)
                self._store = store
            return self._store

    def vault(self) -> PiiVault:
        self.store()
        assert self._vault is not None
        return self._vault

    def replayer(self) -> Replayer:
        store = self.store()
        with self._lock:
            if self._replayer is None:
                self._replayer = Replayer(store, vault=self._vault)
            return self._replayer

    def close(self, timeout: float = 30.0) -> None:
        """Close the store once no drift computation reads it. Regression: closing the SQLite
        connection under a drift job still querying it crashed the process (a segfault in sqlite3);
        a job still running after `timeout` leaves the store to the process's exit."""
        if not self.drift.close(timeout):
            log.warning("console closing with a drift report still computing: its store is left open")
            return
        with self._lock:
            if self._replayer is not None:
                self._replayer.close()
            if self._store is not None:
                self._store.close()


def build_app(config: ConsoleConfig) -> Starlette:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    sessions = Sessions(config.tokens)
    reader = Reader(config)

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = env.get_template(template).render(
            path=request.url.path, login=sessions.required, outcomes=views.OUTCOMES, **context
        )
        return HTMLResponse(page, status_code=status)

    async def login_page(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html", error="")
        form = await request.form()
        session = sessions.login(str(form.get("token", "")))
        if session is None:
            return render(request, "login.html", status=401, error="That token is not valid.")
        response = RedirectResponse("/decisions", status_code=303)
        response.headers.append("set-cookie", session_cookie(session, secure=config.secure_cookie))
        return response

    async def logout(request: Request) -> Response:
        sessions.logout(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.headers.append("set-cookie", f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
        return response

    async def home(request: Request) -> Response:
        return RedirectResponse("/decisions", status_code=303)

    async def decisions(request: Request) -> Response:
        q = request.query_params
        query = DecisionQuery(
            outcome=_choice(q.get("outcome", ""), views.OUTCOMES, "outcome"),
            policy=_matching(q.get("policy", ""), POLICY, "policy name"),
            since=_day(q.get("since", ""), "since"),
            until=_day(q.get("until", ""), "until", end=True),
            before=_cursor(q.get("before", "")),
        )
        found = await run_in_threadpool(views.decisions_page, reader.store(), query)
        filters = {k: q.get(k, "") for k in ("outcome", "policy", "since", "until")}
        return render(request, "decisions.html", found=found, filters=filters, message="")

    async def find(request: Request) -> Response:
        form = await request.form()
        wanted = str(form.get("id", "")).strip()
        kind = str(form.get("kind", "decision_id"))
        if not wanted or len(wanted) > 128 or kind not in ("decision_id", "request_id"):
            raise HTTPException(400, "give a decision_id or a request_id (at most 128 characters)")
        store = reader.store()
        if kind == "decision_id":
            record = (
                await run_in_threadpool(store.get, wanted.lower())
                if DECISION_ID.fullmatch(wanted.lower())
                else None
            )
        else:
            record = await run_in_threadpool(store.get_by_request, wanted)
        if record is None:
            found = {"rows": [], "next": ""}
            filters = dict.fromkeys(("outcome", "policy", "since", "until"), "")
            return render(
                request, "decisions.html", status=404, found=found, filters=filters,
                message=f"No decision has that {kind}.",
            )  # fmt: skip
        return RedirectResponse(f"/decisions/{record.decision_id}", status_code=303)

    async def decision(request: Request) -> Response:
        return await _decision_page(request, replay=False)

    async def replay(request: Request) -> Response:
        return await _decision_page(request, replay=True)

    async def _decision_page(request: Request, replay: bool) -> Response:
        decision_id = request.path_params["decision_id"]
        if not DECISION_ID.fullmatch(decision_id):
            raise HTTPException(404, "not a decision id")
        store = reader.store()
        record = await run_in_threadpool(store.get, decision_id)
        if record is None:
            raise HTTPException(404, f"no decision {decision_id}")
        story = await run_in_threadpool(views.decision_story, store, reader.vault(), record)
        result = None
        if replay:
            try:
                result = await run_in_threadpool(reader.replayer().replay_record, record)
            except CredoError as exc:
                story["replay_error"] = f"{exc.code}: {exc}"
        return render(request, "decision.html", story=story, replay=result)

    async def monitoring(request: Request) -> Response:
        q = request.query_params
        today = config.clock().date().isoformat()
        until = _day(q.get("until", "") or today, "until", end=True)
        assert until is not None
        since = _day(q.get("since", ""), "since") or until - dt.timedelta(days=MONITOR_DAYS)
        if since >= until:
            raise HTTPException(400, "since must be before until")
        window = views.Window(since, until)
        data = await run_in_threadpool(views.monitoring, reader.store(), window)
        report = await run_in_threadpool(reader.drift.get, since, until)
        panels = views.drift_panels(report) if report is not None else None
        for panel in panels or ():
            limits = panel["thresholds"]
            bands = [(limits.watch, f"watch {limits.watch:g}"), (limits.action, f"action {limits.action:g}")]
            chart = charts.svg_lines(
                panel["points"], panel["series"], f"PSI of {panel['model']}", bands=bands
            )
            panel["chart"] = Markup(chart)
        svgs = {
            "volumes": charts.svg_lines(data["points"], data["volumes"], "decisions per day"),
            "rates": charts.svg_lines(data["points"], data["rates"], "outcome rates per day", percent=True),
            "scores": charts.svg_bars(
                [(str(lo), float(n)) for lo, n in data["scores"]], "score distribution (points)"
            ),
        }
        shown = {
            "since": since.date().isoformat(),
            "until": (until - dt.timedelta(days=1)).date().isoformat(),
        }
        svg = {k: Markup(v) for k, v in svgs.items()}
        return render(request, "monitoring.html", data=data, svgs=svg, window=shown, drift=panels)

    async def policies_page(request: Request) -> Response:
        store = _optional_store(reader)
        data = await run_in_threadpool(views.policies, reader.service, store, config)
        return render(request, "policies.html", data=data, diff=None, picked={})

    async def diff(request: Request) -> Response:
        q = request.query_params
        a = _matching(q.get("a", ""), SHA256, "policy sha256")
        b = _matching(q.get("b", ""), SHA256, "policy sha256")
        if not a or not b:
            raise HTTPException(400, "pick two policy versions to compare")
        store = _optional_store(reader)
        data = await run_in_threadpool(views.policies, reader.service, store, config)
        texts = {p["sha256"]: (f"{p['name']} {p['version']} (served)", p) for p in data["served"]}
        old, new = _policy_text(reader, a, texts), _policy_text(reader, b, texts)
        lines = views.policy_diff(old, new)
        semantic = diff_texts(old[1], new[1])
        return render(
            request, "policies.html", data=data, diff=lines, semantic=semantic, picked={"a": a, "b": b}
        )

    async def reports_page(request: Request) -> Response:
        return render(request, "reports.html", reports=views.reports(config.reports))

    async def report(request: Request) -> Response:
        name = request.path_params["name"]
        listed = {r["name"] for r in views.reports(config.reports)}
        if not REPORT.fullmatch(name) or name not in listed or config.reports is None:
            raise HTTPException(404, "no such report")
        return FileResponse(config.reports / name / "report.html", media_type="text/html")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return render(request, "error.html", status=exc.status_code, message=exc.detail)

    async def store_error(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", status=503, message=f"the audit store cannot be read: {exc}")

    async def credo_error(request: Request, exc: Exception) -> Response:
        # not the visitor's doing (every value they send is checked above): the console's own setup,
        # such as a personal-data key that is not the store's
        return render(request, "error.html", status=500, message=f"the console cannot show this: {exc}")

    routes = [
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home),
        Route("/decisions", decisions),
        Route("/decisions/find", find, methods=["POST"]),
        Route("/decisions/{decision_id}", decision),
        Route("/decisions/{decision_id}/replay", replay, methods=["POST"]),
        Route("/monitoring", monitoring),
        Route("/policies", policies_page),
        Route("/policies/diff", diff),
        Route("/reports", reports_page),
        Route("/reports/{name}/", report),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            StoreUnavailable: store_error,
            CredoError: credo_error,
        },
        lifespan=lifespan,
    )
    app.add_middleware(Guard, sessions=sessions)
    return app


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value and value not in allowed:
        raise HTTPException(400, f"{what} must be one of {', '.join(allowed)}")
    return value


def _matching(value: str, pattern: re.Pattern[str], what: str) -> str:
    if value and not pattern.fullmatch(value):
        raise HTTPException(400, f"not a {what}")
    return value


def _day(value: str, what: str, end: bool = False) -> dt.datetime | None:
    """A YYYY-MM-DD day as UTC midnight; `end`: the midnight after it (an inclusive last day)."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{what}: not a date (YYYY-MM-DD)") from None
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start + dt.timedelta(days=1) if end else start


def _cursor(value: str) -> tuple[str, str] | None:
    if not value:
        return None
    match = CURSOR.fullmatch(value)
    if match is None:
        raise HTTPException(400, "not a page cursor")
    return match.group(1), match.group(2)


def _optional_store(reader: Reader) -> SqlStore | None:
    try:
        return reader.store()
    except StoreUnavailable:
        return None


def _policy_text(reader: Reader, sha: str, served: dict[str, tuple[str, dict[str, Any]]]) -> tuple[str, str]:
    if sha in served:
        label, info = served[sha]
        policy = reader.service.policy(info["name"])
        return label, policy.text
    store = _optional_store(reader)
    blob = store.get_blob(sha) if store is not None else None
    if blob is None or blob.kind != "policy":
        raise HTTPException(404, f"no policy version {sha[:12]} served or archived")
    return f"{blob.name} (archived {sha[:12]})", blob.data.decode("utf-8", "replace")
