"""`credo console --store URL`: the read-only web console (decisions and their replay, policies,
monitoring, reports) on http://HOST:PORT. Without --token-file it listens on loopback only."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "console",
        help="serve the read-only web console",
        description="Serve the web console: decisions with replay, policies, monitoring and reports.",
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--store",
        default=os.environ.get("CREDO_AUDIT_STORE", "sqlite:///credo-audit.db"),
        help="audit store URL (default: $CREDO_AUDIT_STORE or %(default)s)",
    )
    p.add_argument("--policies", default="policies", help="policy directory (default policies)")
    p.add_argument("--models", default="models", help="model store directory (default models)")
    p.add_argument(
        "--token-file", default=None, help="bearer tokens, one per line: the login page asks for one"
    )
    p.add_argument(
        "--pii-key-file",
        default=None,
        help="personal-data key: decision pages show personal data (default: masked; the key beside a"
        " SQLite store is not picked up on its own)",
    )
    p.add_argument("--reports", type=Path, default=None, help="folder of what-if / simulation reports")
    p.add_argument("--releases", type=Path, default=None, help="release folder: the Policies page lists it")
    p.add_argument(
        "--trust", type=Path, default=None, help="trusted public keys the approvals are checked with"
    )
    p.add_argument("--approvals", type=int, default=2, help="approvals a release needs (default 2)")
    p.add_argument(
        "--secure-cookie", action="store_true", help="mark the session cookie Secure (behind an HTTPS proxy)"
    )
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)  # `credo serve`'s
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.console.app import ConsoleConfig, build_app
    from engine.server.security import is_loopback, read_tokens

    tokens = None
    if args.token_file:
        try:
            tokens = read_tokens(args.token_file)
        except (OSError, ValueError) as exc:
            print(f"credo console: --token-file: {exc}", file=sys.stderr)
            return 2
    elif not is_loopback(args.host):
        print(
            f"credo console: refusing to listen on {args.host} without a login; give --token-file",
            file=sys.stderr,
        )
        return 2
    for label, path in (("--policies", args.policies), ("--models", args.models)):
        if not Path(path).is_dir():
            print(f"credo console: {label} {path}: not a directory", file=sys.stderr)
            return 2
    if args.pii_key_file:
        from engine.audit.pii_keys import MasterKey
        from engine.errors import CredoError

        try:  # a bad key file is said now, not on the first page that needs it
            MasterKey.read(args.pii_key_file)
        except CredoError as exc:
            print(f"credo console: --pii-key-file {args.pii_key_file}: {exc}", file=sys.stderr)
            return 2
    config = ConsoleConfig(
        store=args.store,
        policies=Path(args.policies),
        models=Path(args.models),
        reports=args.reports,
        releases=args.releases,
        trust=args.trust,
        approvals=args.approvals,
        tokens=tokens,
        pii_key_file=Path(args.pii_key_file) if args.pii_key_file else None,
        secure_cookie=args.secure_cookie,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(config), host=args.host, port=args.port, log_level="warning", access_log=False
        )
    )
    if args.parent_pid:
        _stop_with_parent(server, args.parent_pid)
    announce = _Announce(server, args.host)
    threading.Thread(target=announce.wait, daemon=True).start()
    try:
        server.run()
    except OSError as exc:
        print(f"credo console: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0 if server.started else 2


class _Announce:
    """Prints the console's URL once it listens (port 0 is resolved to the one picked)."""

    def __init__(self, server: Any, host: str) -> None:
        self.server = server
        self.host = host

    def wait(self) -> None:
        while not self.server.started:
            if self.server.should_exit:
                return
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        print(f"credo console on http://{shown}:{port}/", flush=True)


def _stop_with_parent(server: Any, parent: int) -> None:
    """Under `credo serve`, stop when the supervisor is gone (even if it was killed)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        server.should_exit = True

    threading.Thread(target=watch, daemon=True).start()
