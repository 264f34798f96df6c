"""WebSocket streaming server with DeepTone's cloud protocol (``pip install 'deeptone-async[server]'``).

>>> from deeptone_async.server import create_app, ServerSettings
>>> app = create_app(settings=ServerSettings(api_key="secret"))   # an ASGI app

Run it with ``deeptone-async serve`` (loopback, port 8765 by default) or :func:`serve`;
:func:`running_server` runs it in a task (tests, bots); mount it in another ASGI app
(see ``examples/asgi_mount.py``). The client side is
:func:`deeptone_async.client.stream_to_server`.

Routes
    ``GET /stream`` (WebSocket). Query: ``models`` (comma-separated names; every model when
    absent), ``output_period`` (ms, a multiple of 64; 1024), ``volume_threshold`` (0.005),
    ``include_raw_values`` (false), ``sample_rate`` (of the PCM sent; 16000). The client
    sends binary frames of 16-bit little-endian mono PCM, any size (a split sample is
    carried over), and an *empty* binary frame to end the audio; the server answers one
    ``{"message_type": "results", "results": {"channels": {"0": {"timestamp", "results",
    "raw"?}}}}`` text message per output period, sends the final partial period after the
    end frame and closes with 1000. A client that just closes gets nothing more.

    Faults are reported *after* the handshake, as one ``{"message_type": "error",
    "error": "..."}`` message followed by a close frame, so that every client (browsers
    included, which cannot read an HTTP rejection) learns why: 1003 a text frame; 1008 a
    missing or wrong ``X-Api-Key``, a bad query parameter or unknown model, the server at
    ``max_connections``, the idle timeout or ``max_stream_seconds``; 1009 a message over
    ``max_message_bytes``; 1011 the analysis failed. uvicorn itself drops frames over
    twice ``max_message_bytes`` (1009, no message).

    ``GET /health``: status, models, connection counts and batching counters (no key).

    ``POST /analyse`` (or ``/process_file``): a multipart file or the raw body; query as
    :meth:`Deeptone.process_file` (``models``, ``output_period``, ``include_summary``,
    ``include_transitions``, ``include_raw_values``, ``volume_threshold``, ``channel``,
    and ``filename`` for a raw body's suffix, e.g. ``x.raw`` for headerless PCM). Returns
    its JSON; 400 bad parameters, 401 key, 413 over ``max_upload_bytes``, 415 not audio,
    503 full.

Concurrency
    One engine (one ONNX session per model) serves every connection; each connection keeps
    only its stream state. A connection is a task group of a receive loop, a result
    sender and an idle watchdog, with a bounded queue between the loop and the pipeline
    (backpressure reaches the client through TCP). Each connection is the engine's
    ``process_stream``, so the frames of all connections share inference calls through
    the engine's cross-stream batching (:mod:`deeptone_async.batching`), as the streams
    of any application do.

Starlette and uvicorn are imported only when one of the names below is first used, so
``deeptone_async.server.cli`` and :class:`ServerSettings` work without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._settings import API_KEY_HEADER as API_KEY_HEADER
from ._settings import ServerSettings as ServerSettings

if TYPE_CHECKING:
    from ._app import StreamServer as StreamServer
    from ._app import create_app as create_app
    from ._runner import RunningServer as RunningServer
    from ._runner import running_server as running_server
    from ._runner import serve as serve
    from ._runner import uvicorn_config as uvicorn_config

__all__ = [
    "API_KEY_HEADER",
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
    "RunningServer": "._runner",
    "running_server": "._runner",
    "serve": "._runner",
    "uvicorn_config": "._runner",
}
_EXTRA_MODULES = {"starlette", "uvicorn", "websockets", "multipart", "python_multipart"}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__, extra=("server", _EXTRA_MODULES))
