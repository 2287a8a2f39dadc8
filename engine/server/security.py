"""Transport security of the server: TLS / mutual TLS credentials from files and bearer tokens
compared in constant time. Health checks stay open so load balancers can probe without a token.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from engine.server import metrics

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
STREAM_METHODS = frozenset(
    {
        "/credo.v1.DecisionService/DecideStream",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)


def read_tokens(path: str | Path) -> list[bytes]:
    """Tokens from a file, one per line; blank lines and # comments ignored."""
    tokens = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.append(line.encode())
    if not tokens:
        raise ValueError(f"{path}: no tokens")
    return tokens


def token_ok(presented: bytes, tokens: list[bytes]) -> bool:
    """Constant-time match against every token (no early exit reveals which one came close)."""
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(presented, token)
    return ok


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` matching one of the tokens."""

    def __init__(self, tokens: list[bytes]):
        self.tokens = tokens

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        if details.method in OPEN_METHODS:
            return continuation(details)
        presented = b""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                if text.startswith("Bearer "):
                    presented = text[len("Bearer ") :].strip().encode()
        if presented and token_ok(presented, self.tokens):
            return continuation(details)
        metrics.REJECTED.labels(code="UNAUTHENTICATED").inc()
        return self._deny_stream if details.method in STREAM_METHODS else self._deny


def server_credentials(cert: str, key: str, client_ca: str | None) -> grpc.ServerCredentials:
    """TLS from PEM files; with a client CA, clients must present a certificate it signed (mTLS)."""
    pair = [(Path(key).read_bytes(), Path(cert).read_bytes())]
    if client_ca:
        return grpc.ssl_server_credentials(
            pair, root_certificates=Path(client_ca).read_bytes(), require_client_auth=True
        )
    return grpc.ssl_server_credentials(pair)


def tls_problem(cert: str, key: str, client_ca: str | None) -> str | None:
    """Why these PEM files cannot serve TLS, in one line, or None. Checked before any worker starts:
    grpc only reports 'Failed to bind' from inside a worker, after a traceback."""

    def no_passphrase() -> bytes:
        raise ValueError("the private key is encrypted; give an unencrypted PEM key")

    for option, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-client-ca", client_ca)):
        if path is not None and not Path(path).is_file():
            return f"{option} {path}: no such file"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except OSError as exc:
        if not isinstance(exc, ssl.SSLError):
            return f"--tls-cert {cert} / --tls-key {key}: {exc.strerror or exc}"
        return (
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key "
            f"({exc.reason or exc})"
        )
    except ValueError as exc:
        return f"--tls-key {key}: {exc}"
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except OSError as exc:
            if not isinstance(exc, ssl.SSLError):
                return f"--tls-client-ca {client_ca}: {exc.strerror or exc}"
            return f"--tls-client-ca {client_ca}: not a PEM CA certificate ({exc.reason or exc})"
    return None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
