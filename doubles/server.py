"""The tiny threaded HTTP server the provider doubles share.

A double is a real HTTP server on loopback (port 0 = any free port), served from a
daemon thread, so our clients are exercised through sockets, timeouts and all.
Subclasses implement `handle(request)` and `mint_for_demo(payload)`; this base
records requests, injects failures and serves the dev-only `/__double__/` endpoints:

- `POST /__double__/codes {"user": "demo", ...}` → `{"code": "..."}`
- `POST /__double__/fail {"kind": "busy", "path": "/oauth2/token"?}` → `{"ok": true}`
"""
from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Clock = Callable[[], float]

# Failures every double can inject; subclasses add provider-specific kinds.
COMMON_FAILURES = frozenset({"slow", "reset", "malformed"})
MAX_BODY = 64 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    form: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        payload: Any,
        status: int = 200,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, {"Content-Type": content_type, **(headers or {})})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", {"Location": location})


class DoubleServer:
    """Base class: start()/stop()/url, `.requests`, `fail_next(kind)`."""

    name = "double"
    failure_kinds: frozenset[str] = COMMON_FAILURES

    def __init__(self, *, clock: Clock = time.time, host: str = "127.0.0.1", port: int = 0) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.slow_seconds = 1.0  # longer than the tests' client timeout
        self.verbose = False
        self._lock = threading.RLock()
        self._failures: list[tuple[str, str | None]] = []
        self._stopping = threading.Event()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> DoubleServer:
        self._stopping.clear()
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"double": self})
        self._httpd = _QuietServer((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> DoubleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- test controls -----------------------------------------------------

    def fail_next(self, kind: str, *, path: str | None = None) -> None:
        """Make the next request (to `path`, if given) fail in the given way."""
        if kind not in self.failure_kinds:
            kinds = ", ".join(sorted(self.failure_kinds))
            raise ValueError(f"{self.name} double cannot inject {kind!r}; use one of: {kinds}")
        with self._lock:
            self._failures.append((kind, path))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    # --- for subclasses ----------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def failure_response(self, kind: str, request: Request) -> Response:
        raise NotImplementedError(kind)

    def mint_for_demo(self, payload: dict[str, Any]) -> str:
        raise NotImplementedError

    # --- dispatch ----------------------------------------------------------

    def _take_failure(self, path: str) -> str | None:
        with self._lock:
            for i, (kind, only_path) in enumerate(self._failures):
                if only_path is None or only_path == path:
                    del self._failures[i]
                    return kind
        return None

    def _serve(self, request: Request) -> Response | None:
        """The response to send, or None to drop the connection without answering."""
        if request.path.startswith("/__double__/"):
            return self._dev_endpoint(request)
        with self._lock:
            self.requests.append({
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "form": dict(request.form),
                "headers": dict(request.headers),
            })
        kind = self._take_failure(request.path)
        if kind == "reset":
            return None
        if kind == "slow":
            self._stopping.wait(self.slow_seconds)
        elif kind == "malformed":
            return Response.html("<html><body><h1>502 Bad Gateway</h1></body></html>")
        elif kind is not None:
            return self.failure_response(kind, request)
        return self.handle(request)

    def _dev_endpoint(self, request: Request) -> Response:
        payload = request.json()
        if request.method != "POST" or not isinstance(payload, dict):
            return Response.json({"error": "POST a JSON object"}, 400)
        try:
            if request.path == "/__double__/codes":
                return Response.json({"code": self.mint_for_demo(payload)})
            if request.path == "/__double__/fail":
                self.fail_next(str(payload.get("kind")), path=payload.get("path"))
                return Response.json({"ok": True})
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, 400)
        return Response.json({"error": "not found"}, 404)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) makes our late write fail: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    double: DoubleServer
    protocol_version = "HTTP/1.0"
    server_version = "nginx"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._respond()

    def do_POST(self) -> None:  # noqa: N802
        self._respond()

    def do_PUT(self) -> None:  # noqa: N802
        self._respond()

    def do_DELETE(self) -> None:  # noqa: N802
        self._respond()

    def _read_request(self) -> Request:
        parts = urlsplit(self.path)
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        form: dict[str, str] = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                form.setdefault(key, value)
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, value)
        return Request(self.command, parts.path, query, headers, body, form)

    def _respond(self) -> None:
        try:
            response = self.double._serve(self._read_request())
        except Exception as exc:  # a bug in a double must not hang the client
            body = f"double error: {type(exc).__name__}".encode()
            response = Response(500, body, {"Content-Type": "text/plain"})
        if response is None:
            # RST instead of FIN, like a crashed upstream or a middlebox reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        # Quiet by default; never print query strings (WeChat puts the app secret there).
        if self.double.verbose:
            path = urlsplit(self.path).path
            status = args[1] if len(args) > 1 else ""
            sys.stderr.write(f"[{self.double.name}] {self.command} {path} {status}\n")
