"""Who may look: a login with one of the gRPC server's bearer tokens (the same token file) opens a
session held in an HttpOnly, SameSite=Strict cookie; the token itself never travels again, and
never in a URL. Every response carries a strict Content-Security-Policy and no-store caching."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from engine.server.security import token_ok

__all__ = ["COOKIE", "CSP", "REPORT_CSP", "Guard", "Sessions", "session_cookie"]

COOKIE = "credo_console"
SESSION_SECONDS = 8 * 3600
# Nothing but this origin's stylesheet and forms; no script at all, no frames, no other host.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A report written by a command is one self-contained file with its own <style>: it may use that,
# and nothing else (still no script), sandboxed so it cannot act as the console.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"
OPEN_PATHS = ("/login", "/static/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Sessions:
    """Logged-in sessions of this console process: random ids, each valid for SESSION_SECONDS."""

    def __init__(self, tokens: list[bytes] | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens = tokens
        self.clock = clock
        self._ids: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return self.tokens is not None

    def login(self, token: str) -> str | None:
        """A new session id if `token` is one of the tokens, else None."""
        if self.tokens is None or not token or not token_ok(token.strip().encode(), self.tokens):
            return None
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            self._ids = {k: v for k, v in self._ids.items() if v > now}
            self._ids[session] = now + SESSION_SECONDS
        return session

    def valid(self, session: str | None) -> bool:
        if self.tokens is None:
            return True
        with self._lock:
            expires = self._ids.get(session or "")
            return expires is not None and expires > self.clock()

    def logout(self, session: str | None) -> None:
        with self._lock:
            self._ids.pop(session or "", None)


class Guard:
    """ASGI middleware: sends the security headers on every response, refuses a form posted from
    another origin, and sends a visitor without a session to the login page."""

    def __init__(self, app: App, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        if scope.get("method") == "POST" and not _same_origin(headers):
            await _plain(send, 403, "a form posted from another site is refused")
            return
        if not path.startswith(OPEN_PATHS) and not self.sessions.valid(_cookie(headers.get("cookie", ""))):
            await _redirect(send, "/login")
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = dict(_SECURITY_HEADERS)
                extra["content-security-policy"] = REPORT_CSP if path.startswith("/reports/") else CSP
                kept = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in extra]
                message["headers"] = kept + [(k.encode(), v.encode()) for k, v in extra.items()]
            await send(message)

        await self.app(scope, receive, send_secured)


_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make Chromium post forms with Origin: null
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def session_cookie(session: str, *, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{flags}"


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _same_origin(headers: dict[str, str]) -> bool:
    """A browser says where a form came from (Origin, Sec-Fetch-Site); a tool that says neither is
    not a browser another site could have steered."""
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        return origin.partition("://")[2] == headers.get("host", "")
    return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-security-policy", CSP.encode()),
                *((k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"content-security-policy", CSP.encode()),
                *((k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
