"""Client for the streaming server (``pip install 'deeptone-async[server]'`` for websockets).

>>> from deeptone_async.client import stream_to_server
>>> async with stream_to_server("ws://127.0.0.1:8765", "call.wav", models=["vad"]) as results:
...     async for result in results:
...         print(result["timestamp"], result["results"]["vad"])

Any audio the engine reads can be streamed: a file path, a
:class:`~deeptone_async.sources.MicrophoneSource`, any :class:`~deeptone_async.sources.Source`,
an (async) iterable of chunks, a numpy array or bytes. It is converted on the way to what
the protocol carries, 16-bit little-endian PCM at 16 kHz, mono (channels are averaged).
Results are the channel entries of the server's messages, the same dicts
:meth:`Deeptone.process_stream` yields: ``{"timestamp", "results", "raw"?}``.

The client runs on asyncio (websockets is asyncio-only). The audio is sent by a task
that the stream owns: it is cancelled and awaited when the stream ends, fails or is
closed, and an error it meets is raised from the ``async for``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import numpy as np
import numpy.typing as npt

from .errors import ParameterError, ServerError
from .features import FRAME_SAMPLES, SAMPLE_RATE
from .framer import FrameBlock, frames
from .sources.base import Source, as_source
from .sources.file import FileSource
from .spec import ModelSpec

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["ClientStats", "ServerError", "ServerStream", "stream_to_server", "to_pcm16"]

API_KEY_HEADER = "X-Api-Key"


@dataclass
class ClientStats:
    """Counters of a :class:`ServerStream`.

    Attributes:
        sent_ms: audio sent, in ms of 16 kHz PCM.
        results: results received.
        close_code: the close code the connection ended with (``None`` while open).
    """

    sent_ms: float = 0.0
    results: int = 0
    close_code: int | None = None


def to_pcm16(block: FrameBlock) -> bytes:
    """A frame block as 16-bit little-endian mono PCM bytes (channels averaged).

    The zero padding of a final partial frame is left out. Samples are scaled by 32768
    and clipped, so 16-bit input comes back bit-exact.
    """
    mono = block.samples.mean(axis=0) if block.channels > 1 else block.samples[0]
    flat = mono.reshape(-1)
    n = (block.n_frames - 1) * FRAME_SAMPLES + int(block.valid[-1]) if block.n_frames else 0
    scaled: npt.NDArray[np.float32] = np.rint(flat[:n] * 32768.0)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def _stream_url(url: str, query: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ParameterError(f"the server URL must start with ws://, wss://, http:// or https://, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/stream"
    merged = dict(parse_qsl(parts.query))
    merged.update(query)
    return urlunsplit((scheme, parts.netloc, path, urlencode(merged), ""))


def _model_names(models: Sequence[str | ModelSpec] | str | ModelSpec | None) -> str | None:
    if models is None:
        return None
    items = [models] if isinstance(models, (str, ModelSpec)) else list(models)
    names = [m.key if isinstance(m, ModelSpec) else str(m) for m in items]
    return ",".join(n.strip() for n in names if n.strip()) or None


class ServerStream:
    """The async iterator :func:`stream_to_server` returns.

    Iterate it with ``async for``; use ``async with`` (or :meth:`aclose`) to close the
    connection and release the source deterministically when leaving early.

    Raises (from ``async for``):
        ServerError: the server is unreachable, refused the stream (wrong key, bad
            parameters, full) or ended it with an error; ``code`` says which.
        DeeptoneError, OSError: the audio source failed (e.g. DeviceError).
    """

    def __init__(self, url: str, source: Source, headers: dict[str, str], chunk_ms: int, realtime: bool) -> None:
        self.url = url
        self.stats = ClientStats()
        self._source = source
        self._headers = headers
        self._chunk_bytes = 2 * SAMPLE_RATE * chunk_ms // 1000
        self._realtime = realtime
        self._send_error: BaseException | None = None
        self._gen = self._run()

    def __aiter__(self) -> ServerStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Close the connection (if open) and the source. Idempotent."""
        await self._gen.aclose()

    async def __aenter__(self) -> ServerStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[dict[str, Any], None]:
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
        except ImportError as exc:
            raise ImportError("the streaming client needs websockets: pip install 'deeptone-async[server]'") from exc
        fmt = await self._source.open()  # a missing file fails here, before connecting
        try:
            ws = await connect(self.url, additional_headers=self._headers, compression=None, open_timeout=10)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ServerError(f"cannot open a stream to {self.url}: {exc}") from exc
        error: str | None = None
        async with ws:
            sender = asyncio.create_task(self._send(ws, fmt))
            try:
                async for message in ws:
                    msg = json.loads(message)
                    kind = msg.get("message_type")
                    if kind == "results":
                        for entry in msg["results"]["channels"].values():
                            self.stats.results += 1
                            yield entry
                    elif kind == "error":
                        error = str(msg.get("error"))
            except ConnectionClosed as exc:
                self.stats.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
                if self._send_error is not None:
                    raise self._send_error from None
                reason = error or (exc.rcvd.reason if exc.rcvd is not None else "") or "connection lost"
                raise ServerError(
                    f"the server ended the stream ({self.stats.close_code}): {reason}",
                    code=self.stats.close_code,
                    error=error,
                ) from None
            finally:
                sender.cancel()
                await asyncio.wait({sender})
            self.stats.close_code = ws.close_code
        if self._send_error is not None:
            raise self._send_error

    async def _send(self, ws: ClientConnection, fmt: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        chunks = self._source.__aiter__()
        framed = frames(chunks, fmt)
        start = time.monotonic()
        try:
            async for block in framed:
                pcm = to_pcm16(block)
                for lo in range(0, len(pcm), self._chunk_bytes):
                    piece = pcm[lo : lo + self._chunk_bytes]
                    if self._realtime:
                        await anyio.sleep(max(0.0, start + self.stats.sent_ms / 1000 - time.monotonic()))
                    await ws.send(piece)
                    self.stats.sent_ms += 1000 * len(piece) / (2 * SAMPLE_RATE)
            await ws.send(b"")  # end of audio: the server flushes the last period and closes
        except ConnectionClosed:
            return  # the receiving side reports why
        except Exception as exc:  # the source failed: end the stream and raise it from async for
            self._send_error = exc
            await ws.close(1011, "the client's audio source failed")
        finally:
            with anyio.CancelScope(shield=True):
                await framed.aclose()
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()


def stream_to_server(
    url: str,
    source: Any,
    *,
    models: Sequence[str | ModelSpec] | str | ModelSpec | None = None,
    output_period: int = 1024,
    include_raw_values: bool = False,
    volume_threshold: float | None = None,
    api_key: str | None = None,
    realtime: bool = False,
    chunk_ms: int = 1024,
) -> ServerStream:
    """Stream audio to a deeptone-async (DeepTone cloud protocol) server; iterate the results.

    Args:
        url: the server, ``ws://host:port`` (``/stream`` is added) or the full stream URL.
        source: a file path, a :class:`~deeptone_async.sources.Source` (microphone, TCP,
            array...), an (async) iterable of 16-bit 16 kHz mono PCM bytes or of arrays,
            a numpy array (16 kHz) or bytes.
        models: model names or handles (``None``: every model the server has).
        output_period: ms between results, a multiple of 64.
        include_raw_values: ask for each model's raw probabilities.
        volume_threshold: the server's silence threshold (its default when ``None``).
        api_key: sent in the ``X-Api-Key`` header (default: ``$DEEPTONE_API_KEY``).
        realtime: pace the audio at real time (for files; live sources pace themselves).
        chunk_ms: most audio per WebSocket message.

    Returns:
        A :class:`ServerStream`. Nothing happens until it is iterated. The sender waits
        for the socket (backpressure): a server that falls behind slows the source, and
        a live source then drops audio by its own policy.

    Raises:
        ParameterError: a malformed URL or chunk size (at the call).
        AudioFormatError: a source that cannot be streamed (at the call).
    """
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or not 1 <= chunk_ms <= 8000:
        raise ParameterError(f"chunk_ms must be an int in 1-8000, got {chunk_ms!r}")
    query = {"output_period": str(output_period), "sample_rate": str(SAMPLE_RATE)}
    names = _model_names(models)
    if names is not None:
        query["models"] = names
    if include_raw_values:
        query["include_raw_values"] = "true"
    if volume_threshold is not None:
        query["volume_threshold"] = repr(float(volume_threshold))
    full_url = _stream_url(url, query)
    src = FileSource(source) if isinstance(source, (str, os.PathLike, Path)) else as_source(source)
    headers = {}
    key = api_key if api_key is not None else os.environ.get("DEEPTONE_API_KEY")
    if key:
        headers[API_KEY_HEADER] = key
    return ServerStream(full_url, src, headers, chunk_ms, realtime)

