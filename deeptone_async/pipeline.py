"""The pipeline: source -> framer -> gate -> inference -> aggregator.

Each stage is an async generator function over the one before. The pipeline is
*pull-driven*: nothing runs ahead of the consumer, so a slow consumer slows the source
down (backpressure) instead of filling memory, and there are no background tasks to leak.
The one place audio arrives on its own schedule, the microphone, has its own bounded,
drop-and-count channel (see :mod:`deeptone_async.sources.mic`).

When the consumer stops, for whatever reason, :class:`ResultStream` closes every stage
generator, innermost last, so the source releases its file, device or socket at once
rather than when the garbage collector finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import numpy as np

from .aggregator import FRAME_MS, Aggregator, aggregate
from .audio import AudioFormat
from .errors import AudioFormatError
from .framer import Chunk, FrameBlock, frames
from .gate import gate
from .inference import Batcher, FrameOutputs, InferencePlan, StreamState, infer
from .limits import DEFAULT_LIMITS, Limits
from .sources.base import Source
from .spec import ModelSpec

__all__ = ["Pipeline", "ResultStream", "StreamStats"]

log = logging.getLogger("deeptone_async")

#: A stream whose results trail real time by more than this many ms is reported.
LAG_WARNING_MS = 1000.0


@dataclass
class StreamStats:
    """Counters of one stream, updated as results are produced.

    Attributes:
        results: results yielded so far.
        audio_ms: audio received from the source, in ms.
        dropped_ms: audio the source dropped because the pipeline fell behind (microphone).
        lag_ms: how far the latest result trails real time: wall time since the stream
            began minus the audio received and dropped. Near 0 for a live source that keeps
            up; grows when analysis is slower than real time. Always 0 for audio that
            arrives faster than real time (files).
    """

    results: int = 0
    audio_ms: float = 0.0
    dropped_ms: float = 0.0
    lag_ms: float = 0.0


class Pipeline:
    """The stages for one source, sharing an engine's runners.

    Args:
        source: where audio comes from (its format must be resolved with ``open()``).
        fmt: the source's format.
        plan: models to run (runners are shared, state is per stream).
        volume_threshold: RMS below which a frame is silence.
        limiter: caps the engine's concurrent inference threads.
        limits: bounds the format must respect (checked here, before any audio is read).
        period_frames: frames per output period: frames are run through the models a
            whole period at a time (one inference call per period, not per chunk), which
            leaves results and their latency unchanged (a result is due at its period's end).
        batcher: shares inference calls with other streams (the engine's); ``None`` runs
            this stream's blocks alone.
        live_frames: when the source is live (its chunks are waited for), run each frame
            as soon as it is whole rather than a period at a time (see
            :func:`~deeptone_async.framer.frames`): the period's result then comes after
            the last frame's work only, at the price of smaller inference calls.

    Raises:
        AudioFormatError: ``fmt`` is outside ``limits`` (sample rate, channel count).
    """

    def __init__(
        self,
        source: Source,
        fmt: AudioFormat,
        plan: InferencePlan,
        volume_threshold: float,
        limiter: anyio.CapacityLimiter,
        limits: Limits = DEFAULT_LIMITS,
        period_frames: int = 1,
        batcher: Batcher | None = None,
        live_frames: bool = False,
    ) -> None:
        path = getattr(source, "path", None)
        limits.check_format(fmt, f"'{path}'" if path is not None else "the audio")
        self.source = source
        self.fmt = fmt
        self.plan = plan
        self.states: list[StreamState] = [plan.new_stream(fmt.sample_rate) for _ in range(fmt.channels)]
        self.stats = StreamStats()
        self._threshold = volume_threshold
        self._period = period_frames
        self._batcher = batcher
        self._live_frames = live_frames
        self._limiter = limiter
        self._gens: list[AsyncGenerator[Any, None]] = []
        self._start: float | None = None

    def blocks(self) -> AsyncGenerator[tuple[FrameBlock, FrameOutputs], None]:
        """Frame blocks with their model outputs, in stream order."""
        src = self.source.__aiter__()
        if isinstance(src, AsyncGenerator):
            self._gens.append(src)
        metered = self._meter(src)
        # a file or an array says when its last chunk is out: one block for a short file
        ends: Callable[[], bool] | None = None
        if isinstance(getattr(self.source, "at_end", None), bool):
            ends = lambda: bool(getattr(self.source, "at_end", False))  # noqa: E731
        framed = frames(metered, self.fmt, min_block_frames=self._period, at_end=ends, live_frames=self._live_frames)
        gated = gate(framed, self._threshold)
        inferred = infer(gated, self.plan, self.states, self._limiter, self._batcher)
        self._gens += [metered, framed, gated, inferred]
        return inferred

    def track(self, gen: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        """Have :meth:`aclose` close ``gen`` too (an outer stage built on :meth:`blocks`)."""
        self._gens.append(gen)
        return gen

    async def aclose(self) -> None:
        """Close every stage, outermost first; shielded so cancellation cannot skip it."""
        gens, self._gens = self._gens, []
        with anyio.CancelScope(shield=True):
            for gen in reversed(gens):
                await gen.aclose()

    def update_lag(self) -> None:
        """Recompute :attr:`StreamStats.lag_ms` and warn when the stream falls behind."""
        if self._start is None:
            return
        dropped = getattr(self.source, "dropped_frames", 0)
        self.stats.dropped_ms = 1000.0 * dropped / self.fmt.sample_rate
        elapsed = 1000.0 * (time.monotonic() - self._start)
        lag = max(0.0, elapsed - self.stats.audio_ms - self.stats.dropped_ms)
        if lag > LAG_WARNING_MS and self.stats.lag_ms <= LAG_WARNING_MS:
            log.warning("stream is %.0f ms behind real time (analysis is slower than the audio arrives)", lag)
        self.stats.lag_ms = lag

    async def _meter(self, chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
        per_frame = self.fmt.bytes_per_frame
        async for chunk in chunks:
            n = len(chunk) / per_frame if isinstance(chunk, (bytes, bytearray, memoryview)) else _frames_of(chunk, self.fmt)
            ms = 1000.0 * n / self.fmt.sample_rate
            if self._start is None:
                self._start = time.monotonic() - ms / 1000.0
            self.stats.audio_ms += ms
            yield chunk


def _frames_of(chunk: Any, fmt: AudioFormat) -> int:
    if isinstance(chunk, np.ndarray) and chunk.ndim == 2:
        return int(chunk.shape[0])
    return int(np.size(chunk)) // fmt.channels


class ResultStream:
    """The async iterator :meth:`Deeptone.process_stream` returns.

    Yields one DeepTone-shaped result per output period::

        {"timestamp": ms, "results": {key: {"result": label, "confidence": p}},
         "raw": {key: {label: p}}}   # "raw" only with include_raw_values

    Iterate it with ``async for``. Leaving the loop early is safe; to release the source
    (device, socket, file) deterministically at that moment, use ``async with`` or call
    :meth:`aclose`. :attr:`stats` reports progress, dropped audio and lag.

    Errors from the source or a stage surface from ``async for`` after every result
    computed before the fault has been yielded.
    """

    def __init__(
        self,
        source: Source,
        make_pipeline: Callable[[Source, AudioFormat, int], Pipeline],
        specs: Sequence[ModelSpec],
        period_frames: int,
        include_raw: bool,
    ) -> None:
        self._period = period_frames
        self._stats: list[StreamStats] = [StreamStats()]
        # The generator must not refer back to this object: an abandoned stream is then
        # freed (and its source closed) by reference counting, not by the cyclic GC.
        self._gen = _run_stream(source, make_pipeline, list(specs), period_frames, include_raw, self._stats)

    @property
    def stats(self) -> StreamStats:
        """Counters of this stream (results, audio received and dropped, lag)."""
        return self._stats[0]

    @property
    def output_period_ms(self) -> int:
        return self._period * FRAME_MS

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and release its source. Idempotent."""
        with anyio.CancelScope(shield=True):
            await self._gen.aclose()

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()



async def _run_stream(
    source: Source,
    make_pipeline: Callable[[Source, AudioFormat, int], Pipeline],
    specs: list[ModelSpec],
    period: int,
    include_raw: bool,
    stats_box: list[StreamStats],
) -> AsyncGenerator[dict[str, Any], None]:
    fmt = await source.open()
    if fmt.channels != 1:
        raise AudioFormatError(
            f"process_stream analyses one channel; the source has {fmt.channels} "
            "(pick one, e.g. FileSource(path, channel=0), or use process_file)"
        )
    pipeline = make_pipeline(source, fmt, period)
    stats_box[0] = pipeline.stats
    aggregator = Aggregator(specs, period, 1, include_raw)
    results = pipeline.track(aggregate(pipeline.blocks(), aggregator))
    try:
        async for item in results:
            pipeline.stats.results += 1
            pipeline.update_lag()
            yield item
    finally:
        await pipeline.aclose()
