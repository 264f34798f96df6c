"""Server settings: limits, security and batching (plain data, no heavy imports)."""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass

from ..errors import ParameterError

__all__ = ["API_KEY_HEADER", "ServerSettings"]

#: Header that carries the API key (DeepTone cloud style).
API_KEY_HEADER = "X-Api-Key"


@dataclass(frozen=True)
class ServerSettings:
    """How a server built by :func:`~deeptone_async.server.create_app` behaves.

    Attributes:
        api_key: when set, every ``/stream`` and ``/analyse`` request must carry it in
            the ``X-Api-Key`` header (``/health`` stays open). ``None`` disables the check.
        max_connections: most streams and file analyses served at once; one more is
            refused (WebSocket: error message and close 1008; HTTP: 503).
        max_message_bytes: largest binary WebSocket message accepted (close 1009 above).
            256 KiB is 8 s of 16 kHz 16-bit audio.
        max_stream_seconds: most wall-clock time a stream may stay connected (close
            1008 after it); ``None`` for no limit.
        idle_timeout_s: close a stream (1008) that sends nothing for this long; ``None``
            for no limit. Time spent held back by backpressure does not count.
        queue_messages: capacity of each connection's bounded queue between the
            WebSocket receive loop and the pipeline. When it is full the receive loop
            stops reading the socket, so a client sending faster than the server analyses
            is slowed by TCP flow control. Per-connection audio memory is bounded by about
            ``(queue_messages + 2) * max_message_bytes``.
        max_upload_bytes: largest file ``POST /analyse`` accepts (413 above).
        max_upload_seconds: longest audio an upload may decode to (4 hours; 413 above),
            read from its header before any analysis: a small file can declare hours of
            audio (a low sample rate, many frames), and bytes alone do not bound the work.
        body_timeout_s: most seconds an upload's body may pause between two pieces (30;
            408 after it): a client trickling its body cannot hold a connection for ever.
        batching: run the frames of all streams in shared inference calls (the engine's
            cross-stream batching, :mod:`deeptone_async.batching`); ``False`` runs each
            stream's frames separately.
        batch_interval_ms: least time between the starts of two inference rounds, for
            the engine the server makes (``Deeptone(batch_interval_ms=...)``; a given
            engine keeps its own). A block arriving after a quiet spell runs at once;
            under load, rounds start at most this often and hold everything waiting, so
            the per-round cost is paid a bounded number of times per second (see
            ``benchmarks/RESULTS.md``). 0 runs a round whenever the last one is done.
        max_batch: most stream blocks stacked in one inference call (the engine the
            server makes).
        header_timeout_s: most seconds a client may take to send a request's headers
            (10), counted from the connection (or, on a kept-alive one, from the request's
            first byte); it is then answered 408 and closed. Bounds how long a slow or
            silent client (slowloris) holds a socket; the WebSocket handshake request is
            covered too.
        max_pending_handshakes: most connections whose request headers are still
            incomplete (64); when one more arrives the oldest of them is closed, so slow
            clients cannot crowd out quick ones. Bounds the sockets that clients which
            never finish a request can hold.
        max_open_connections: most TCP connections open at once (HTTP and WebSocket,
            pending ones included); when one more arrives the oldest pending one is
            closed to make room, or the new one when none is pending. ``None`` (the
            default) takes half the process's file-descriptor limit (``RLIMIT_NOFILE``)
            less 16, at least 16 (112 at a limit of 256, 496 at 1024): each connection may
            hold a second descriptor (an upload's temporary file), and the rest is kept
            for the models, logs and ``/health``. Streams are also bounded by
            ``max_connections``; keep that under this.
    """

    api_key: str | None = None
    max_connections: int = 256
    max_message_bytes: int = 256 * 1024
    max_stream_seconds: float | None = 4 * 3600.0
    idle_timeout_s: float | None = 30.0
    queue_messages: int = 8
    max_upload_bytes: int = 100 * 1024 * 1024
    max_upload_seconds: float = 4 * 3600.0
    body_timeout_s: float = 30.0
    batching: bool = True
    batch_interval_ms: float = 10.0
    max_batch: int = 256
    header_timeout_s: float = 10.0
    max_pending_handshakes: int = 64
    max_open_connections: int | None = None

    def __post_init__(self) -> None:
        positive_ints = ("max_connections", "max_message_bytes", "queue_messages", "max_upload_bytes", "max_batch")
        for name in (*positive_ints, "max_pending_handshakes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive int, got {value!r}")
        if self.max_open_connections is not None:
            value = self.max_open_connections
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"max_open_connections must be a positive int or None, got {value!r}")
        for name in ("header_timeout_s", "max_upload_seconds", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ParameterError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("max_stream_seconds", "idle_timeout_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ParameterError(f"{name} must be a positive number of seconds or None, got {value!r}")
        if isinstance(self.batch_interval_ms, bool) or not isinstance(self.batch_interval_ms, (int, float)):
            raise ParameterError(f"batch_interval_ms must be a number, got {self.batch_interval_ms!r}")
        if not 0 <= self.batch_interval_ms <= 1000:
            raise ParameterError(f"batch_interval_ms must lie in [0, 1000], got {self.batch_interval_ms}")
        if self.api_key is not None and not self.api_key:
            raise ParameterError("api_key must be a non-empty string or None")

    def replace(self, **changes: object) -> ServerSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def authorised(self, presented: str | None) -> bool:
        """Whether ``presented`` (the header's value) passes; constant-time comparison."""
        if self.api_key is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.api_key.encode("utf-8"))

    def __repr__(self) -> str:  # keep the key out of logs
        fields = ", ".join(
            f"{f.name}={'***' if f.name == 'api_key' and self.api_key else getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"ServerSettings({fields})"
