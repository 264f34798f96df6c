"""WebSocket streaming server with DeepTone's cloud protocol (``pip install 'deeptone-async[server]'``).

>>> from deeptone_async.server import create_app, ServerSettings
>>> app = create_app(settings=ServerSettings(api_key="secret"))   # an ASGI app

Routes: ``GET /stream`` (WebSocket: binary 16-bit PCM in, one JSON result per output
period out), ``GET /health``, ``POST /analyse``. Run it with ``deeptone-async serve`` or
:func:`serve`; :func:`running_server` runs it in a task (tests, bots). The client side is
:func:`deeptone_async.client.stream_to_server`.

Starlette and uvicorn are imported only when one of these names is first used, so
``deeptone_async.server.cli`` and :class:`ServerSettings` work without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._settings import API_KEY_HEADER as API_KEY_HEADER
from ._settings import ServerSettings as ServerSettings

if TYPE_CHECKING:
    from ._app import StreamServer as StreamServer
    from ._app import create_app as create_app
    from ._batching import BatchScheduler as BatchScheduler
    from ._batching import BatchStats as BatchStats
    from ._runner import RunningServer as RunningServer
    from ._runner import running_server as running_server
    from ._runner import serve as serve
    from ._runner import uvicorn_config as uvicorn_config

__all__ = [
    "API_KEY_HEADER",
    "BatchScheduler",
    "BatchStats",
    "RunningServer",
    "ServerSettings",
    "StreamServer",
    "create_app",
    "running_server",
    "serve",
    "uvicorn_config",
]

_LAZY = {
    "StreamServer": "._app",
    "create_app": "._app",
    "BatchScheduler": "._batching",
    "BatchStats": "._batching",
    "RunningServer": "._runner",
    "running_server": "._runner",
    "serve": "._runner",
    "uvicorn_config": "._runner",
}
_EXTRA_MODULES = {"starlette", "uvicorn", "websockets", "multipart", "python_multipart"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module, __name__), name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] in _EXTRA_MODULES:
            raise ImportError(
                f"the streaming server needs {exc.name}: pip install 'deeptone-async[server]'"
            ) from exc
        raise
    globals()[name] = value
    return value
