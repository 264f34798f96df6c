"""One ``/stream`` WebSocket connection: receive loop, pipeline and result sender.

Two tasks share a connection, in one task group:

* the *receive loop* reads binary messages and puts them in a bounded queue; when the
  queue is full it blocks, stops reading the socket, and TCP flow control slows the
  client down (backpressure, not memory);
* the *result sender* runs the pipeline over the queue and sends one JSON message per
  output period; a client that does not read its results blocks the sender, which stops
  the pipeline, which fills the queue, which stops the receive loop.

Whatever ends the connection (the end of the audio, a disconnect, a protocol fault, a
limit, a failure), the task group cancels the other task and the pipeline's generators
are closed before the handler returns; the one close frame is sent after that.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import starlette.websockets
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..audio import AudioFormat
from ..engine import Deeptone
from ..errors import DeeptoneError, ModelError, ParameterError, VoiceSignatureError
from ..sources.base import IterableSource
from ._protocol import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    StreamParams,
    error_message,
    results_message,
)
from ._settings import API_KEY_HEADER, ServerSettings

__all__ = ["ConnectionSlots", "ResultSource", "StreamInfo", "open_results", "serve_stream"]

log = logging.getLogger("deeptone_async.server")

#: Exceptions that mean the peer has gone: Starlette raises WebSocketDisconnect, or
#: WebSocketDisconnected (a RuntimeError; plain RuntimeError before Starlette 1.0) for a
#: send after the client's close; uvicorn raises an OSError subclass.
_GONE: tuple[type[BaseException], ...] = (
    WebSocketDisconnect,
    getattr(starlette.websockets, "WebSocketDisconnected", RuntimeError),
    OSError,
)


class ResultSource(Protocol):
    """What :func:`open_results` returns: an async iterator of results with ``aclose``."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


def open_results(
    engine: Deeptone,
    chunks: AsyncGenerator[bytes, None],
    params: StreamParams,
    batching: bool = True,
) -> ResultSource:
    """The results of a stream of 16-bit PCM chunks: the engine's ``process_stream``,
    sharing inference calls with the engine's other streams when ``batching``.

    Raises:
        UnknownModelError, ParameterError: bad parameters (at the call).
    """
    return engine.process_stream(
        IterableSource(chunks, AudioFormat(params.sample_rate)),
        params.models,
        output_period=params.output_period,
        include_raw_values=params.include_raw_values,
        volume_threshold=params.volume_threshold,
        voice_signatures=params.voice_signatures,
        batch_streams=batching,
    )


@dataclass
class _Outcome:
    """How a connection ended: the first fault recorded wins."""

    code: int = CLOSE_NORMAL
    error: str | None = None
    gone: bool = False

    def fail(self, code: int, error: str) -> None:
        if self.error is None and not self.gone:
            self.code, self.error = code, error


async def _queue_chunks(receive: MemoryObjectReceiveStream[bytes], info: StreamInfo) -> AsyncGenerator[bytes, None]:
    async with receive:
        while True:
            try:  # no event-loop round trip when a chunk is already waiting
                chunk = receive.receive_nowait()
            except anyio.WouldBlock:
                try:
                    chunk = await receive.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            info.consumed += len(chunk)
            yield chunk


async def _receive_loop(
    ws: WebSocket,
    queue: MemoryObjectSendStream[bytes],
    settings: ServerSettings,
    outcome: _Outcome,
    scope: anyio.CancelScope,
    info: StreamInfo,
) -> None:
    """Socket -> bounded queue. Ends the queue at the end of the audio; on a fault or a
    disconnect it cancels the connection *before* ending the queue, so the pipeline does
    not flush into a connection that is closing."""
    async with queue:
        while True:
            info.waiting_since = anyio.current_time()  # the idle watchdog's clock runs
            message = await ws.receive()
            info.waiting_since = None
            if message["type"] == "websocket.disconnect":
                outcome.gone = True
                break
            data = message.get("bytes")
            if data is None:
                outcome.fail(
                    CLOSE_UNSUPPORTED_DATA,
                    "expected binary frames of 16-bit little-endian PCM; got a text frame",
                )
                break
            if len(data) > settings.max_message_bytes:
                outcome.fail(
                    CLOSE_MESSAGE_TOO_BIG,
                    f"a message of {len(data)} bytes exceeds the limit of {settings.max_message_bytes} bytes",
                )
                break
            if not data:  # an empty binary frame ends the audio: the pipeline flushes
                return
            info.received += len(data)
            try:
                queue.send_nowait(data)
            except anyio.WouldBlock:
                try:
                    await queue.send(data)  # blocks while the queue is full: backpressure
                except anyio.BrokenResourceError:  # the pipeline has stopped; it reports why
                    return
            except anyio.BrokenResourceError:
                return
        scope.cancel()


async def _idle_watchdog(idle: float, info: StreamInfo, outcome: _Outcome, scope: anyio.CancelScope) -> None:
    """Ends a connection whose client has sent nothing for ``idle`` seconds.

    One timer per connection rather than one per message; time the receive loop spends
    held back by backpressure does not count.
    """
    while True:
        since = info.waiting_since
        if since is None:
            await anyio.sleep(idle)
            continue
        left = since + idle - anyio.current_time()
        if left > 0:
            await anyio.sleep(left)
            continue
        outcome.fail(CLOSE_POLICY_VIOLATION, f"no audio received for {idle:g} s (idle timeout)")
        scope.cancel()
        return


async def _send_results(
    ws: WebSocket, results: ResultSource, outcome: _Outcome, scope: anyio.CancelScope, info: StreamInfo
) -> None:
    try:
        async for item in results:
            await ws.send_text(results_message(item))
            info.results += 1
    except _GONE:
        outcome.gone = True
    except DeeptoneError as exc:
        log.warning("stream failed: %s", exc)
        outcome.fail(CLOSE_INTERNAL_ERROR, f"analysis failed: {exc}")
    except Exception:
        log.exception("stream failed")
        outcome.fail(CLOSE_INTERNAL_ERROR, "internal server error")
    finally:
        await results.aclose()
    scope.cancel()  # done, one way or another: stop the other tasks (the idle watchdog)


async def _close(ws: WebSocket, code: int, error: str | None) -> None:
    try:
        if error is not None:
            await ws.send_text(error_message(error))
        await ws.close(code)
    except _GONE:
        pass


async def serve_stream(
    ws: WebSocket,
    engine: Deeptone,
    settings: ServerSettings,
    slots: ConnectionSlots,
) -> None:
    """Serve one ``/stream`` connection until the audio ends, the client goes or a fault.

    Faults are reported to the client (error message + close code) and never raised.
    """
    await ws.accept()
    if not settings.authorised(ws.headers.get(API_KEY_HEADER)):
        await _close(ws, CLOSE_POLICY_VIOLATION, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")
        return
    try:
        params = StreamParams.parse(ws.query_params)
    except ParameterError as exc:
        await _close(ws, CLOSE_POLICY_VIOLATION, str(exc))
        return
    if not slots.acquire():
        await _close(ws, CLOSE_POLICY_VIOLATION, f"the server is at its limit of {settings.max_connections} connections")
        return
    info = StreamInfo()
    slots.streams.add(info)
    try:
        await _serve(ws, engine, settings, params, info)
    finally:
        slots.streams.discard(info)
        slots.release()


async def _serve(
    ws: WebSocket,
    engine: Deeptone,
    settings: ServerSettings,
    params: StreamParams,
    info: StreamInfo,
) -> None:
    send, receive = anyio.create_memory_object_stream[bytes](settings.queue_messages)
    chunks = _queue_chunks(receive, info)
    try:
        results = open_results(engine, chunks, params, settings.batching)
    except (ParameterError, ModelError, VoiceSignatureError) as exc:  # UnknownModelError is a ModelError
        send.close()
        receive.close()
        await chunks.aclose()
        await _close(ws, CLOSE_POLICY_VIOLATION, str(exc))
        return
    outcome = _Outcome()
    limit = settings.max_stream_seconds if settings.max_stream_seconds is not None else math.inf
    with anyio.move_on_after(limit) as deadline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_receive_loop, ws, send, settings, outcome, tg.cancel_scope, info)
            tg.start_soon(_send_results, ws, results, outcome, tg.cancel_scope, info)
            if settings.idle_timeout_s is not None:
                tg.start_soon(_idle_watchdog, settings.idle_timeout_s, info, outcome, tg.cancel_scope)
    if deadline.cancelled_caught:
        outcome.fail(CLOSE_POLICY_VIOLATION, f"the stream reached its limit of {limit:g} s")
    if not outcome.gone:
        await _close(ws, outcome.code, outcome.error)


@dataclass(eq=False)
class StreamInfo:
    """Counters of one open stream (for ``/health`` and tests).

    Attributes:
        received: audio bytes taken off the socket.
        consumed: audio bytes the pipeline has taken from the queue; ``received -
            consumed`` is what the bounded queue holds.
        results: result messages sent.
        waiting_since: when the receive loop began waiting for the client's next
            message (``None`` while it handles one or is held back by backpressure).
    """

    received: int = 0
    consumed: int = 0
    results: int = 0
    waiting_since: float | None = None


class ConnectionSlots:
    """Counts active connections against ``max_connections`` (event-loop confined).

    Attributes:
        streams: the open ``/stream`` connections' counters.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.total = 0
        self.streams: set[StreamInfo] = set()

    def acquire(self) -> bool:
        """Take a slot; ``False`` when all are taken."""
        if self.active >= self.limit:
            return False
        self.active += 1
        self.total += 1
        return True

    def release(self) -> None:
        self.active -= 1
