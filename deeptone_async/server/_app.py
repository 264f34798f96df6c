"""The ASGI app: ``/stream`` (WebSocket), ``/health`` and ``/analyse`` on Starlette."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .._version import __version__
from ..engine import Deeptone
from ._http import analyse_upload, error_response
from ._page import page_routes
from ._settings import API_KEY_HEADER, ServerSettings
from ._stream import ConnectionSlots, serve_stream

__all__ = ["StreamServer", "create_app"]

log = logging.getLogger("deeptone_async.server")


class StreamServer:
    """The resources behind the app: one engine and connection slots.

    Every connection shares the engine's models (one ONNX session per model); each keeps
    only its own stream state. :func:`create_app` builds one and stores it as
    ``app.state.deeptone``.

    Streams share inference calls through the engine's own cross-stream batching
    (:mod:`deeptone_async.batching`), as an application's ``process_stream`` calls do.

    Args:
        engine: the engine to serve (a new :class:`~deeptone_async.Deeptone` with the
            settings' ``batch_interval_ms`` and ``max_batch`` when ``None``; creating it
            blocks while the models load). A given engine keeps its own batching options.
        settings: limits, API key and batching.
    """

    def __init__(self, engine: Deeptone | None = None, settings: ServerSettings | None = None) -> None:
        self.settings = s = settings if settings is not None else ServerSettings()
        self.engine = engine if engine is not None else Deeptone(batch_interval_ms=s.batch_interval_ms, max_batch=s.max_batch)
        self.slots = ConnectionSlots(self.settings.max_connections)

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The app's ASGI lifespan. Nothing runs in it any more (streams share inference
        calls through the engine, with no task of their own); it stays so that apps that
        mount the server with ``lifespan=app.state.deeptone.lifespan`` keep working."""
        yield

    async def stream(self, ws: WebSocket) -> None:
        """``/stream``: DeepTone's cloud streaming protocol (see :mod:`._protocol`)."""
        await serve_stream(ws, self.engine, self.settings, self.slots)

    async def health(self, request: Request) -> JSONResponse:
        """``GET /health``: status, models, connections and batching counters (no key needed)."""
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "models": [spec.key for spec in self.engine.models],
                "active_connections": self.slots.active,
                "max_connections": self.slots.limit,
                "total_connections": self.slots.total,
                "batching": self.engine.batching_stats() if self.settings.batching else None,
            }
        )

    async def analyse(self, request: Request) -> JSONResponse:
        """``POST /analyse``: the ``process_file`` JSON of an uploaded file."""
        if not self.settings.authorised(request.headers.get(API_KEY_HEADER)):
            return error_response(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")
        if not self.slots.acquire():
            return error_response(503, f"the server is at its limit of {self.slots.limit} connections")
        try:
            return await analyse_upload(request, self.engine, self.settings)
        finally:
            self.slots.release()


def create_app(engine: Deeptone | None = None, *, settings: ServerSettings | None = None) -> Starlette:
    """The streaming server as an ASGI app, ready to run or to mount in another app.

    Routes: ``GET /stream`` (WebSocket, DeepTone's cloud protocol), ``GET /health``,
    ``POST /analyse`` (also ``/process_file``), ``GET /`` (the live page, ``_page.py``). Serve it with uvicorn
    (:func:`~deeptone_async.server.serve`, ``deeptone-async serve``) or any ASGI server.
    ``app.state.deeptone`` is the
    :class:`StreamServer`.

    Args:
        engine: the engine whose models are served (one is created when ``None``; that
            blocks while the models load).
        settings: limits, API key and batching (defaults: :class:`ServerSettings`).
    """
    server = StreamServer(engine, settings)
    app = Starlette(
        routes=[
            WebSocketRoute("/stream", server.stream),
            Route("/health", server.health, methods=["GET"]),
            Route("/analyse", server.analyse, methods=["POST"]),
            Route("/process_file", server.analyse, methods=["POST"]),
            *page_routes(),  # GET / (the live page) and /static/{name}
        ],
        lifespan=server.lifespan,
    )
    app.state.deeptone = server
    return app
