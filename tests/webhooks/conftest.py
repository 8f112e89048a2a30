"""A real HTTP receiver for webhook tests: a threaded server on 127.0.0.1 that verifies nothing
itself and records every request it gets (or answers slowly, with an error, or not at all)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Start/stop on a fixed port; `status` and `delay` shape the answers."""

    port: int = 0
    status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()},
                                                          body, self.path, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.requests]

    def unique(self) -> dict[str, Received]:
        """Requests de-duplicated by webhook-id, as a receiver should."""
        with self._lock:
            return {r.headers["webhook-id"]: r for r in self.requests}


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The receiver-side check of docs/webhooks.md: any v1 signature matching, a fresh timestamp."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1].encode())
               for sig in headers["webhook-signature"].split() if sig.startswith("v1,"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def webhook_app(app):
    """The app, allowed to call the local receiver."""
    app.config["WEBHOOK_ALLOWED_HOSTS"] = ["127.0.0.1"]
    return app


@pytest.fixture
def webhook_stack(stack):
    """Workers and beat allowed to call the local receiver, sweeping every second."""
    stack.env.update({"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SWEEP_SECONDS": "1",
                      "WEBHOOK_TIMEOUT_SECONDS": "2"})
    return stack
