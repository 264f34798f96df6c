"""``deeptone-async serve`` arguments (no heavy imports here: the extra may be missing)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
from types import FrameType
from typing import Any

from ._settings import ServerSettings

__all__ = ["add_arguments", "run", "settings_from_args"]

log = logging.getLogger("deeptone_async.server")


def _seconds_or_none(text: str) -> float | None:
    value = float(text)
    return None if value <= 0 else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerSettings()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--api-key",
        default=None,
        help="require this key in the X-Api-Key header (default: $DEEPTONE_API_KEY; none: no check)",
    )
    parser.add_argument("--max-connections", type=int, default=d.max_connections, help="most streams at once")
    parser.add_argument(
        "--max-message-bytes", type=int, default=d.max_message_bytes, help="largest binary WebSocket message"
    )
    parser.add_argument(
        "--max-stream-seconds",
        type=_seconds_or_none,
        default=d.max_stream_seconds,
        help="longest a stream may stay connected (0: no limit)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds_or_none,
        default=d.idle_timeout_s,
        help="close a stream that sends nothing for this many seconds (0: never)",
    )
    parser.add_argument(
        "--queue-messages", type=int, default=d.queue_messages, help="per-connection queue of audio messages"
    )
    parser.add_argument(
        "--max-upload-bytes", type=int, default=d.max_upload_bytes, help="largest file POST /analyse accepts"
    )
    parser.add_argument(
        "--no-batching", action="store_true", help="run each stream's frames separately (no cross-stream batching)"
    )
    parser.add_argument(
        "--batch-interval-ms", type=float, default=d.batch_interval_ms, help="least time between inference batches"
    )
    parser.add_argument(
        "--max-upload-seconds", type=float, default=d.max_upload_seconds, help="longest audio an upload may hold"
    )
    parser.add_argument(
        "--body-timeout", type=float, default=d.body_timeout_s, help="seconds an upload body may pause (408 after)"
    )
    parser.add_argument(
        "--header-timeout", type=float, default=d.header_timeout_s, help="seconds to send request headers (408 after)"
    )
    parser.add_argument(
        "--max-pending-handshakes", type=int, default=d.max_pending_handshakes,
        help="most connections with incomplete request headers (the oldest is closed)",
    )
    parser.add_argument(
        "--max-open-connections", type=int, default=None,
        help="most open TCP connections (default: half the file-descriptor limit less 16)",
    )
    parser.add_argument("--max-batch", type=int, default=d.max_batch, help="most stream blocks per inference call")
    parser.add_argument(
        "--workers", "-w", type=int, default=1,
        help="server processes on the port, each with its own engine (0: one per core)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0, metavar="S",
        help="on SIGTERM, seconds open streams may go on before they are closed (1012)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level"
    )


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """:class:`ServerSettings` from parsed ``serve`` arguments and ``$DEEPTONE_API_KEY``.

    Raises:
        ParameterError: a limit out of range.
    """
    return ServerSettings(
        api_key=args.api_key or os.environ.get("DEEPTONE_API_KEY") or None,
        max_connections=args.max_connections,
        max_message_bytes=args.max_message_bytes,
        max_stream_seconds=args.max_stream_seconds,
        idle_timeout_s=args.idle_timeout,
        queue_messages=args.queue_messages,
        max_upload_bytes=args.max_upload_bytes,
        max_upload_seconds=args.max_upload_seconds,
        body_timeout_s=args.body_timeout,
        header_timeout_s=args.header_timeout,
        max_pending_handshakes=args.max_pending_handshakes,
        max_open_connections=args.max_open_connections,
        batching=not args.no_batching,
        batch_interval_ms=args.batch_interval_ms,
        max_batch=args.max_batch,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status.

    With ``--workers N`` (N > 1, or 0 for one per core) a supervisor runs N server
    processes on the port (:mod:`._workers`). On SIGTERM each drains: ``/health`` says
    ``draining`` (503), new streams are refused with 1012, open ones get up to
    ``--drain-timeout`` seconds to end. ``GET /metrics`` is served when prometheus-client
    is installed (the ``metrics`` extra).

    Raises:
        ImportError: the ``server`` extra is not installed (the message says so).
        ParameterError: a bad limit.
        OSError: the address cannot be bound.
    """
    settings = settings_from_args(args)
    from . import create_app  # noqa: F401 - heavy imports (starlette, uvicorn): fail early without the extra

    configure_logging(args)
    if not _is_loopback(args.host) and settings.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach it can use it", args.host)
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    each = f" ({workers} worker processes)" if workers > 1 else ""
    print(
        f"deeptone-async: serving ws://{args.host}:{args.port}/stream{each}, "
        f"the live page at http://{args.host}:{args.port}/ (Ctrl-C stops)",
        flush=True,
    )
    if workers > 1:
        from ._workers import supervise

        return supervise(args, workers)
    return serve_process(args)


def build_app(settings: ServerSettings, drain_timeout: float) -> tuple[Any, Any]:
    """The served app (the streaming app, draining, and ``/metrics`` when prometheus-client
    is installed) and its :class:`~deeptone_async.server._drain.Drain`. Blocks while the
    engine loads."""
    from ..engine import Deeptone
    from . import create_app
    from ._drain import Drain, DrainingApp

    app = create_app(Deeptone(), settings=settings)
    server = app.state.deeptone
    metrics = None
    try:
        from ._metrics import MetricsApp, ServerMetrics

        metrics = ServerMetrics()
    except ImportError:
        log.info("no GET /metrics: pip install 'deeptone-async[metrics]' for it")
    drain = Drain(drain_timeout, active=lambda: int(server.slots.active),
                  on_start=(lambda: metrics.draining.set(1)) if metrics is not None else None)
    served: Any = DrainingApp(app, drain)
    if metrics is not None:
        served = MetricsApp(served, metrics)
    return served, drain


def serve_process(args: argparse.Namespace, sockets: list[Any] | None = None) -> int:
    """One server process: build the app and serve it until stopped; returns 0."""
    from . import serve

    app, drain = build_app(settings_from_args(args), args.drain_timeout)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again; a
    # graceful stop is a success here, so both end in exit status 0.
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        serve(app, host=args.host, port=args.port, log_level=args.log_level, drain=drain, sockets=sockets)
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class _Stopped(Exception):
    """SIGTERM arrived (after uvicorn's graceful shutdown)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped
