"""The Drive API v3 emulator's HTTP server.

A stdlib ThreadingHTTPServer speaking HTTP/1.1 keep-alive. Routes live at Google's paths
(`/drive/v3/...`, the docs export links `/feeds/download/...`, images `/docsz/...`, OAuth
`/token`); the API is also answered without the `/drive/v3` prefix so a client whose
`api_endpoint` is the bare emulator URL works too. Nothing here imports Google client code:
the emulator must agree with Google, not with itself.
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.emulator import resources as res
from pipeline.emulator.model import Dataset
from pipeline.emulator.routes import ApiError, ApiRoutes, _unb64

FAULT_KINDS = ("429", "403", "500", "503", "drop")


@dataclass
class _Tokens:
    """Access tokens the emulator accepts: the configured one plus those /token issued."""

    fixed: str | None
    issued: set[str]

    def ok(self, token: str, revoked: set[str]) -> bool:
        if not token:
            return False
        if self.fixed is None or token == self.fixed or token in self.issued:
            return True
        # A service account may skip the token endpoint and send a self-signed JWT, which
        # Google's APIs accept (google-auth does this with always_use_jwt_access).
        claims = _jwt_claims(token)
        return bool(
            claims and claims.get("iss") and claims["iss"] not in revoked
            and isinstance(claims.get("exp"), (int, float)) and claims["exp"] > time.time()
            and claims.get("aud")
        )


class Emulator:
    """A running (or startable) Drive emulator over one `Dataset`."""

    def __init__(
        self,
        ds: Dataset,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        faults: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        token: str | None = "test-token",
        host: str = "127.0.0.1",
        port: int = 0,
        retry_after: int = 1,
    ) -> None:
        self.ds = ds
        self.latency = latency
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        for kind in self.faults:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(FAULT_KINDS)}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], not {fault_rate}")
        self.seed = seed
        self.host, self.port = host, port
        self.retry_after = retry_after
        self.tokens = _Tokens(token, set())
        self.revoked: set[str] = set()  # service-account emails / refresh tokens /token refuses
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.user_agents: set[str] = set()  # every User-Agent seen, as Google's logs would show them
        self.faults_injected: list[tuple[int, str]] = []  # (request number, fault kind)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        if not self._server:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}/"

    @property
    def api_endpoint(self) -> str:
        """The `client_options={"api_endpoint": ...}` value for googleapiclient.discovery.build."""
        return self.url + "drive/v3/"

    @property
    def root_folder_id(self) -> str:
        return self.ds.root_id

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults_injected.clear()

    def start(self) -> Emulator:
        handler = type("BoundHandler", (_Handler,), {"emu": self})
        server = _Server((self.host, self.port), handler)
        server.emu = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="drive-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Start (unless started) and block until interrupted (the CLI)."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # idle keep-alive connections would otherwise hold their threads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ per request
    def _record(self, method: str, path: str, q: dict[str, str], faultable: bool = True) -> str | None:
        """Log the request and draw its fault (None = serve it) from the seeded sequence."""
        with self._lock:
            self.requests.append((method, path, q))
            n = len(self.requests)
            if faultable and self.fault_rate > 0 and self.faults and self._rng.random() < self.fault_rate:
                kind = self.faults[self._rng.randrange(len(self.faults))]
                self.faults_injected.append((n, kind))
                return kind
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    emu: Emulator

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.emu._lock:
            self.emu._conns.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request (or connections we drop on purpose) are normal here;
        # anything else is a bug worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.emu._lock:
            self.emu._conns.discard(request)
        super().shutdown_request(request)



class _Handler(ApiRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"  # what Google's frontends call themselves
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACKs add
    # ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    emu: Emulator
    _pending: tuple[int, bytes, str, dict[str, str]] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are counted, not logged: logs would carry tokens in URLs of some clients

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        # Handlers only prepare the response; `_dispatch` writes it after the dataset lock is
        # released, so one slow reader never holds up other connections.
        self._pending = (status, body, ctype, headers or {})

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        status, body, ctype, headers = pending
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Origin, X-Origin, Referer")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n", "application/json; charset=UTF-8", headers)

    def _error(self, err: ApiError) -> None:
        self._json(err.code, err.body(), err.headers)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        emu = self.emu
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        body = b""
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        # Faults hit the API, exports and images; the token endpoint stays reliable so that
        # fault tests exercise the client's retries, not google-auth's.
        with emu._lock:
            emu.user_agents.add(self.headers.get("User-Agent", ""))
        fault = emu._record(self.command, path, q, faultable=path != "/token")
        if emu.latency:
            time.sleep(emu.latency)
        self._pending = None
        try:
            try:
                self._route(fault, path, q, body)
            except ApiError as err:
                self._error(err)
            self._flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, fault: str | None, path: str, q: dict[str, str], body: bytes) -> None:
        if fault:
            return self._fault(fault)
        if path == "/token" and self.command == "POST":
            return self._token(body)
        if path.startswith("/docsz/"):
            return self._image(path, q)
        self._check_auth()
        if self.command not in ("GET", "HEAD"):
            # docpipe's scope is drive.readonly; Google answers writes with that scope so.
            raise ApiError(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
        if path == "/feeds/download/documents/export/Export":
            return self._export_link(q)
        api = path[len("/drive/v3"):] if path.startswith("/drive/v3/") else path
        self._api(api, q)

    def _fault(self, kind: str) -> None:
        emu = self.emu
        if kind == "drop":
            # Close without answering: the client sees a reset / empty reply.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "429":
            raise ApiError(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers={"Retry-After": str(emu.retry_after)})
        if kind == "403":
            raise ApiError(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")
        if kind == "500":
            raise ApiError(500, "Internal Error", "internalError")
        raise ApiError(503, "Service Unavailable", "backendError")

    def _check_auth(self) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            raise ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "required", location="Authorization", location_type="header",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not self.emu.tokens.ok(token.strip(), self.emu.revoked):
            raise ApiError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError", location="Authorization", location_type="header",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
            )

    # ---------------------------------------------------------------- OAuth
    def _token(self, body: bytes) -> None:
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")
        emu = self.emu

        def refuse(error: str, description: str, status: int = 400) -> None:
            self._json(status, {"error": error, "error_description": description})

        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = _jwt_claims(form.get("assertion", ""))
            if claims is None:
                return refuse("invalid_grant", "Invalid JWT: malformed assertion.")
            now = time.time()
            aud = claims.get("aud")
            if not isinstance(aud, str) or urllib.parse.urlsplit(aud).path != "/token":
                return refuse("invalid_grant", "Invalid JWT: audience is not this token endpoint.")
            if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - 60:
                return refuse("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
            if not claims.get("iss"):
                return refuse("invalid_grant", "Invalid JWT: no issuer.")
            if claims["iss"] in emu.revoked:
                return refuse("invalid_grant", "Invalid JWT Signature.")
            if not claims.get("scope") and not claims.get("target_audience"):
                return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        elif grant == "refresh_token":
            rt = form.get("refresh_token", "")
            if not rt or not form.get("client_id"):
                return refuse("invalid_request", "Missing required parameter: refresh_token or client_id.")
            if rt in emu.revoked:
                return refuse("invalid_grant", "Token has been expired or revoked.")
        else:
            return refuse("unsupported_grant_type", f"Invalid grant_type: {grant}")
        token = "ya29.emu-" + secrets.token_urlsafe(24)
        with emu._lock:
            emu.tokens.issued.add(token)
        self._json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # ---------------------------------------------------------------- downloads
    def _image(self, path: str, q: dict[str, str]) -> None:
        parts = path.split("/")
        if len(parts) != 4:
            raise ApiError(404, "Not Found", "notFound")
        file_id, name = parts[2], urllib.parse.unquote(parts[3])
        ds = self.emu.ds
        with ds.lock:
            f = ds.files.get(file_id)
            img = f.images.get(name) if f else None
        if img is None or q.get("key") != res.image_key(file_id, name):
            raise ApiError(404, "Not Found", "notFound")
        mime, data = img
        self._send(200, data, mime, {"Cache-Control": "private, max-age=86400"})

def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    """The payload of a JWT (the signature is not checked: the emulator has no key registry)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") not in ("RS256", "ES256") or not isinstance(claims, dict):
        return None
    return claims


__all__ = ["Emulator", "ApiError", "FAULT_KINDS"]
