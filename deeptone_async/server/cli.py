"""``deeptone-async serve`` arguments (no heavy imports here: the extra may be missing)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
from types import FrameType

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
        "--inference-workers", type=int, default=d.inference_workers, help="inference batches running at once"
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
        inference_workers=args.inference_workers,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status.

    Raises:
        ImportError: the ``server`` extra is not installed (the message says so).
        ParameterError: a bad limit.
    """
    settings = settings_from_args(args)
    from . import create_app, serve  # heavy imports (starlette, uvicorn) only now

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    if not _is_loopback(args.host) and settings.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach it can use it", args.host)
    from ..engine import Deeptone

    app = create_app(Deeptone(), settings=settings)
    print(f"deeptone-async: serving ws://{args.host}:{args.port}/stream (Ctrl-C stops)", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again; a
    # graceful stop is a success here, so both end in exit status 0.
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        serve(app, host=args.host, port=args.port, log_level=args.log_level)
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class _Stopped(Exception):
    """SIGTERM arrived (after uvicorn's graceful shutdown)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped
