"""``GET /metrics``: Prometheus metrics of the streaming server, with prometheus-client.

:class:`MetricsApp` wraps the server's ASGI app and watches its traffic, so the metrics
need no hook inside the stream handler:

==================================  =========  ============================================
metric                              type       meaning
==================================  =========  ============================================
deeptone_active_streams             gauge      WebSocket streams open now
deeptone_streams_total              counter    streams accepted
deeptone_results_total              counter    result messages sent
deeptone_audio_seconds_total        counter    audio received by streams, seconds
deeptone_result_lag_seconds         histogram  from the arrival of a period's last audio to
                                               its result being sent (inference, batching
                                               and queueing: the lag a client sees)
deeptone_errors_total{type}         counter    streams ended with an error, by close code
                                               (``policy``, ``too_big``, ``unsupported``,
                                               ``server_error``, ``restart``), and HTTP
                                               errors (``http_413``...)
deeptone_http_requests_total{path}  counter    HTTP requests (``/analyse``, ``/health``...)
deeptone_draining                   gauge      1 while the server drains (SIGTERM)
==================================  =========  ============================================

With several worker processes (``serve --workers N``) each records into
``$PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by the
supervisor) and any worker's ``/metrics`` reports the sum over all of them.

``pip install 'deeptone-async[metrics]'``; imported when the app is wrapped.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from ..errors import ParameterError

__all__ = ["MetricsApp", "ServerMetrics"]

Scope = dict[str, Any]
Message = dict[str, Any]

_CLOSE_TYPES = {1003: "unsupported", 1008: "policy", 1009: "too_big", 1011: "server_error", 1012: "restart"}
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError("GET /metrics needs prometheus-client: pip install 'deeptone-async[metrics]'") from exc
    return prometheus_client


class ServerMetrics:
    """The server's metrics in a registry of their own (several apps in one process, as in
    tests, do not collide). Builds nothing heavy; the counters are thread-safe."""

    def __init__(self) -> None:
        pc = _prometheus()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r = self.registry = pc.CollectorRegistry()
        live: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.active = pc.Gauge("deeptone_active_streams", "WebSocket streams open now", registry=r, **live)
        self.draining = pc.Gauge("deeptone_draining", "1 while the server drains", registry=r,
                                 **({"multiprocess_mode": "livemax"} if self.multiprocess else {}))
        self.streams = pc.Counter("deeptone_streams", "streams accepted", registry=r)
        self.results = pc.Counter("deeptone_results", "result messages sent", registry=r)
        self.audio = pc.Counter("deeptone_audio_seconds", "audio received by streams, seconds", registry=r)
        self.lag = pc.Histogram("deeptone_result_lag_seconds", "from a period's last audio to its result being sent",
                                registry=r, buckets=_LAG_BUCKETS)
        self.errors = pc.Counter("deeptone_errors", "streams ended with an error (close code) and HTTP errors", ["type"], registry=r)
        self.requests = pc.Counter("deeptone_http_requests", "HTTP requests", ["path"], registry=r)

    def exposition(self) -> tuple[bytes, str]:
        """``(body, content type)`` of a scrape: this process's metrics, or with
        ``$PROMETHEUS_MULTIPROC_DIR`` every worker's, summed."""
        pc = _prometheus()
        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = pc.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return pc.generate_latest(registry), pc.CONTENT_TYPE_LATEST


class _StreamWatch:
    """Follows one stream's audio and results to time each result's lag."""

    def __init__(self, metrics: ServerMetrics, scope: Scope) -> None:
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        try:
            self.rate = max(1, int(query.get("sample_rate", 16_000)))
            self.period_ms = max(1, int(query.get("output_period", 1024)))
        except ValueError:
            self.rate, self.period_ms = 16_000, 1024
        self.m = metrics
        self.samples = 0
        self.arrivals: deque[tuple[int, float]] = deque()  # (samples received so far, when)
        self.accepted = False
        self.error: str | None = None

    def received(self, message: Message) -> None:
        data = message.get("bytes")
        if message["type"] == "websocket.receive" and data:
            n = len(data) // 2
            self.samples += n
            self.arrivals.append((self.samples, time.monotonic()))
            self.m.audio.inc(n / self.rate)

    def sent(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
            self.m.streams.inc()
            self.m.active.inc()
        elif kind == "websocket.send" and message.get("text"):
            self._text(message["text"])
        elif kind == "websocket.close":
            code = int(message.get("code", 1000))
            if code != 1000:
                self.m.errors.labels(_CLOSE_TYPES.get(code, str(code))).inc()

    def _text(self, text: str) -> None:
        if '"results"' not in text[:40]:
            return
        self.m.results.inc()
        try:
            channels = json.loads(text)["results"]["channels"]
            end_ms = max(int(c["timestamp"]) for c in channels.values()) + self.period_ms
        except (ValueError, KeyError, TypeError):
            return
        needed = min(self.samples, end_ms * self.rate // 1000)  # the last period may be short
        arrived = None
        while self.arrivals and self.arrivals[0][0] < needed:
            self.arrivals.popleft()
        if self.arrivals:
            arrived = self.arrivals[0][1]
        if arrived is not None:
            self.m.lag.observe(max(0.0, time.monotonic() - arrived))

    def closed(self) -> None:
        if self.accepted:
            self.m.active.dec()


class MetricsApp:
    """An ASGI app serving ``GET /metrics`` and recording the traffic of ``app``.

    ``app.state`` is the wrapped app's (``app.state.deeptone`` the
    :class:`~deeptone_async.server.StreamServer`).

    Raises:
        ImportError: prometheus-client is missing (the message names the extra).
    """

    def __init__(self, app: Any, metrics: ServerMetrics | None = None, *, path: str = "/metrics") -> None:
        if not callable(app):
            raise ParameterError(f"MetricsApp wraps an ASGI app, got {type(app).__name__}")
        self.app = app
        self.metrics = metrics or ServerMetrics()
        self.path = path

    @property
    def state(self) -> Any:
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path == self.path and scope.get("method") == "GET":
            body, content_type = self.metrics.exposition()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        known = path if path in ("/analyse", "/process_file", "/health", "/") else "other"
        self.metrics.requests.labels(known).inc()

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.errors.labels(f"http_{message['status']}").inc()
            await send(message)

        await self.app(scope, receive, watched)

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        watch = _StreamWatch(self.metrics, scope)

        async def watched_receive() -> Message:
            message: Message = await receive()
            watch.received(message)
            return message

        async def watched_send(message: Message) -> None:
            watch.sent(message)
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            watch.closed()
