"""``GET /``: the live page, plain HTML and JavaScript shipped in the package (no build step).

The page (``static/index.html``, ``app.js``, ``worklet.js``, ``style.css``) uses only what
the server already offers: ``GET /health`` for the model list, the ``/stream`` WebSocket for
the microphone (an AudioWorklet turns it into 16 kHz 16-bit PCM) and ``POST /analyse`` for
files. Nothing is fetched from elsewhere: the Content-Security-Policy allows the page's own
origin only.

Browsers cannot send headers on a WebSocket, so on a server started with an API key the
page's microphone stream is refused (the page shows the server's message); its file upload
sends the key typed into the page in ``X-Api-Key``. The page itself needs no key: it is the
same for everyone and reveals nothing the API does not.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["page_routes"]

#: The files served, with their media types: a fixed list, so no request names a path.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    """A static file's bytes, read once from the package (works from a wheel or a zip)."""
    return resources.files("deeptone_async.server").joinpath("static").joinpath(name).read_bytes()


def _file(name: str) -> Response:
    return Response(_read(name), media_type=STATIC_FILES[name], headers=_HEADERS)


async def index(request: Request) -> Response:
    """``GET /``: the page."""
    return _file("index.html")


async def static(request: Request) -> Response:
    """``GET /static/{name}``: one of :data:`STATIC_FILES`; 404 for any other name."""
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return _file(name)


def page_routes() -> list[BaseRoute]:
    """The page's routes: ``GET /`` and ``GET /static/{name}``."""
    return [Route("/", index, methods=["GET"]), Route("/static/{name}", static, methods=["GET"])]
