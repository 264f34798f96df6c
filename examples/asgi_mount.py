"""Mounting the deeptone-async server in an existing ASGI (Starlette) app.

The app below stands for an application you already have; one ``Mount`` adds voice
analytics under ``/voice``: ``/voice/stream`` (WebSocket, DeepTone's cloud protocol),
``/voice/health`` and ``/voice/analyse``. Streams share inference calls through the
engine's own batching, so the mounted app needs nothing from the parent's lifespan. A
FastAPI app mounts it the same way (``app.mount("/voice", voice)``).

    python examples/asgi_mount.py --port 8000
    python examples/custom_sinks.py --url ws://127.0.0.1:8000/voice/stream   # a client
"""

from __future__ import annotations

import argparse
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from deeptone_async import Deeptone
from deeptone_async.server import ServerSettings, create_app, serve


async def home(request: Request) -> JSONResponse:
    """A route of the existing app."""
    return JSONResponse({"app": "my existing app", "voice analytics": str(request.url_for("voice", path="/stream"))})


def build_app(engine: Deeptone | None = None, api_key: str | None = None) -> Starlette:
    """The existing app, with the voice analytics server mounted at ``/voice``."""
    voice = create_app(engine, settings=ServerSettings(api_key=api_key, max_connections=64))
    return Starlette(
        routes=[
            Route("/", home),
            Mount("/voice", app=voice, name="voice"),  # the one added route
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="an existing ASGI app with deeptone-async mounted at /voice")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require this X-Api-Key for /voice/stream and /voice/analyse")
    args = p.parse_args(argv)
    print(f"serving http://{args.host}:{args.port}/ with voice analytics at /voice", flush=True)
    try:
        serve(build_app(api_key=args.api_key), host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
