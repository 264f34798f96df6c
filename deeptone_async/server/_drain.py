"""Graceful draining: on SIGTERM a server stops taking streams and lets open ones finish.

While a server drains, ``GET /health`` answers 503 with ``"status": "draining"`` (so a load
balancer sends new clients elsewhere), a new ``/stream`` gets an error message and close
1012 (service restart) and ``POST /analyse`` gets 503; open streams go on until they end or
``timeout_s`` passes, when the server stops and closes the rest with 1012.
:class:`Drain` is the state; :class:`DrainingApp` the ASGI wrapper that applies it;
``_runner._Server`` starts it on SIGTERM and stops once it is done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Drain", "DrainingApp"]

Message = dict[str, Any]
CLOSE_SERVICE_RESTART = 1012


class Drain:
    """A server's draining state.

    Args:
        timeout_s: most seconds open streams may go on after draining starts.
        active: how many streams and uploads are open (``StreamServer.slots.active``).
        on_start: called when draining starts (e.g. to set a metric).
    """

    def __init__(self, timeout_s: float = 30.0, active: Callable[[], int] | None = None,
                 on_start: Callable[[], None] | None = None) -> None:
        self.timeout_s = timeout_s
        self.active = active or (lambda: 0)
        self._on_start = on_start
        self.started_at: float | None = None

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def start(self) -> None:
        """Start draining (again: no effect). Safe in a signal handler."""
        if self.started_at is None:
            self.started_at = time.monotonic()
            if self._on_start is not None:
                self._on_start()

    def done(self) -> bool:
        """Draining and either nothing is open or the timeout has passed."""
        if self.started_at is None:
            return False
        return self.active() <= 0 or time.monotonic() - self.started_at >= self.timeout_s


class DrainingApp:
    """Wraps the server's ASGI app: while ``drain`` is draining, refuses new streams and
    uploads and reports it in ``/health``; otherwise passes everything through."""

    def __init__(self, app: Any, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    @property
    def state(self) -> Any:
        return getattr(self.app, "state", None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.drain.draining or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            error = "the server is draining (shutting down): connect again, to another server"
            await send({"type": "websocket.send", "text": json.dumps({"message_type": "error", "error": error})})
            await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})
        elif path == "/health":
            await self._health(scope, receive, send)
        elif path in ("/analyse", "/process_file"):
            await _json(send, 503, {"error": "the server is draining (shutting down): send the file to another server"})
        else:
            await self.app(scope, receive, send)

    async def _health(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        try:
            doc = json.loads(b"".join(parts))
        except ValueError:
            doc = {}
        doc["status"] = "draining"
        await _json(send, 503, doc)


async def _json(send: Any, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
