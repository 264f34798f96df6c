"""A LiveKit agents VAD on the deeptone-async engine (``pip install 'deeptone-async[livekit]'``).

>>> from deeptone_async.integrations.livekit import DeeptoneVAD
>>> session = AgentSession(vad=DeeptoneVAD(), stt=..., llm=..., tts=...)

:class:`DeeptoneVAD` implements ``livekit.agents.vad.VAD``: each :meth:`~DeeptoneVAD.stream`
runs :meth:`~deeptone_async.Deeptone.process_stream` (64 ms results, raw values) on the
frames pushed into it and turns the results into LiveKit's ``VADEvent``s with
:func:`~deeptone_async.events.speech_events` (hysteresis in probability and in time):

- ``INFERENCE_DONE`` every 64 ms of audio, with the speech probability and that audio;
- ``START_OF_SPEECH`` once ``min_duration_ms`` of speech was heard, with the speech so far
  (from the segment's padded start);
- ``END_OF_SPEECH`` ``min_gap_ms`` after it ends, with the whole segment's audio.

Timestamps and sample indices are of the 16 kHz audio the models hear, from the stream's
start (or its last ``flush()``); the frames in the events are 16 kHz mono. Frames of any
rate and channel count may be pushed: channels are averaged and other rates resampled
(soxr). ``flush()`` ends the stream's current analysis, as LiveKit asks: the audio pushed
before it is still analysed (so an open segment gets its ``END_OF_SPEECH``), then the next
frame starts afresh at timestamp 0. ``inference_duration`` is 0: inference runs in the
engine's batches, not per 64 ms window.

Importing this module without livekit-agents raises an ImportError that names the extra.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable
from contextlib import aclosing
from typing import Any

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectSendStream

from ..audio import Float32
from ..engine import Deeptone
from ..errors import ParameterError
from ..events import SpeechEnded, SpeechStarted, activity_probability, speech_events
from ..segments import DEFAULT_SMOOTHING, Smoothing
from ._audio import Resampler

try:
    from livekit import rtc
    from livekit.agents import vad
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"deeptone_async.integrations.livekit needs {exc.name}: pip install 'deeptone-async[livekit]'"
    ) from exc

__all__ = ["DeeptoneVAD", "DeeptoneVADStream"]

_RATE = 16_000
_PERIOD_MS = 64
_PER_MS = _RATE // 1000


class DeeptoneVAD(vad.VAD):
    """Our Vad (or SpeechRT) as a LiveKit agents ``VAD``.

    Args:
        engine: the engine whose models run (a new one when ``None``; creating it blocks
            while the models load). One engine serves every stream and every agent.
        model: ``"vad"`` (Silero VAD v6, rebuilt) or ``"speech-rt"``.
        smoothing: minimum speech duration, minimum gap and padding
            (:class:`~deeptone_async.segments.Smoothing`; 250, 200 and 30 ms by default).
            Its ``labels`` default to ``("speech",)``.
        start_threshold: the speech probability that starts a segment (0.5).
        stop_threshold: the probability below which it counts as ending (0.35).
        volume_threshold: RMS below which a 64 ms frame is silence (0.005; 0 disables).
        max_buffered_speech_s: most audio an event's frames carry (60 s): a longer
            segment's ``END_OF_SPEECH`` carries its last ``max_buffered_speech_s`` (its
            ``speech_duration`` is still the whole segment's). Each stream keeps that much
            audio, and about half a second more.

    Raises:
        UnknownModelError: ``model`` is not registered.
        ParameterError: a bad threshold or buffer length.
    """

    def __init__(
        self,
        engine: Deeptone | None = None,
        *,
        model: str = "vad",
        smoothing: Smoothing = DEFAULT_SMOOTHING,
        start_threshold: float = 0.5,
        stop_threshold: float = 0.35,
        volume_threshold: float = 0.005,
        max_buffered_speech_s: float = 60.0,
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=_PERIOD_MS / 1000))
        self.engine = engine if engine is not None else Deeptone()
        specs, _ = self.engine.plan([model])
        self._key = specs[0].key
        if not 0 <= stop_threshold <= start_threshold <= 1:
            raise ParameterError(
                f"need 0 <= stop_threshold <= start_threshold <= 1, got {stop_threshold!r} and {start_threshold!r}"
            )
        if not isinstance(max_buffered_speech_s, (int, float)) or not 0 < max_buffered_speech_s < math.inf:
            raise ParameterError(f"max_buffered_speech_s must be a positive number, got {max_buffered_speech_s!r}")
        self.smoothing = dataclasses.replace(smoothing, labels=smoothing.labels or ("speech",))
        self.start_threshold = start_threshold
        self.stop_threshold = stop_threshold
        self.volume_threshold = volume_threshold
        self.max_buffered_samples = int(max_buffered_speech_s * _RATE)

    @property
    def model(self) -> str:
        return self._key

    @property
    def provider(self) -> str:
        return "deeptone-async"

    def stream(self) -> DeeptoneVADStream:
        """A new stream (its own model state) on the shared engine; needs a running event loop."""
        return DeeptoneVADStream(self)


class _Audio:
    """A stream's 16 kHz int16 audio from ``limit`` samples before what the analysis has
    reached (:meth:`trim`) to what was pushed, addressable by stream ms. Kept as the chunks
    pushed, so appending copies nothing that is kept."""

    def __init__(self, limit: int) -> None:
        self._chunks: deque[tuple[int, np.ndarray[Any, np.dtype[np.int16]]]] = deque()  # (first sample, pcm)
        self._end = 0  # stream sample index after the last chunk
        self._limit = limit

    def append(self, samples: Float32) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        self._chunks.append((self._end, pcm))
        self._end += len(pcm)

    def trim(self, analysed_ms: int) -> None:
        """Drop the chunks that end ``limit`` samples or more before ``analysed_ms``."""
        keep_from = analysed_ms * _PER_MS - self._limit
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= keep_from:
            self._chunks.popleft()

    def frame(self, start_ms: int, end_ms: int) -> rtc.AudioFrame:
        """The audio between two stream times (what is still kept of it), as one frame."""
        lo, hi = start_ms * _PER_MS, end_ms * _PER_MS
        parts = [pcm[max(lo - at, 0) : max(hi - at, 0)] for at, pcm in self._chunks if at < hi and at + len(pcm) > lo]
        data = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        return rtc.AudioFrame(data.tobytes(), _RATE, 1, len(data))


class DeeptoneVADStream(vad.VADStream):
    """One audio stream's analysis (made by :meth:`DeeptoneVAD.stream`).

    ``push_frame`` never blocks (LiveKit's input channel is unbounded); the analysis reads
    it in order, at most 32 chunks ahead of the models (a bounded queue that blocks).
    Iterate it (``async for event in stream``) for the events; an error in the analysis
    is raised from that iteration, after the events before it.
    """

    def __init__(self, owner: DeeptoneVAD) -> None:
        self._owner = owner
        super().__init__(owner)

    async def _main_task(self) -> None:
        more = True
        while more:  # one analysis per flush()-delimited part of the stream
            more = await self._analyse_part()

    async def _analyse_part(self) -> bool:
        """Analyse frames until a flush (True) or the end of the input (False)."""
        o = self._owner
        # an end is known min_gap_ms (+ padding, + a period) after the segment's last sample
        late_ms = o.smoothing.min_gap_ms + o.smoothing.pad_ms + 2 * _PERIOD_MS
        audio = _Audio(o.max_buffered_samples + late_ms * _PER_MS)
        send, receive = anyio.create_memory_object_stream[Float32](32)
        more = [False]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._feed, send, audio, more)
            with receive:
                results = o.engine.process_stream(
                    receive, [o._key], output_period=_PERIOD_MS, include_raw_values=True, volume_threshold=o.volume_threshold
                )
                async with results:
                    state = _State()
                    events = speech_events(
                        self._inferences(results, audio, state),
                        o._key,
                        o.smoothing,
                        start_threshold=o.start_threshold,
                        stop_threshold=o.stop_threshold,
                        period_ms=_PERIOD_MS,
                    )
                    async with aclosing(events):
                        async for ev in events:
                            self._event_ch.send_nowait(self._speech_event(ev, audio, state))
        return more[0]

    async def _feed(self, send: MemoryObjectSendStream[Float32], audio: _Audio, more: list[bool]) -> None:
        resampler: Resampler | None = None
        async with send:
            async for item in self._input_ch:
                if not isinstance(item, rtc.AudioFrame):  # flush(): end this part
                    more[0] = True
                    break
                samples = np.frombuffer(item.data, dtype=np.int16).astype(np.float32) / 32768.0
                if item.num_channels > 1:
                    samples = samples.reshape(-1, item.num_channels).mean(axis=1)
                if item.sample_rate != _RATE:
                    if resampler is None or resampler.rate_in != item.sample_rate:
                        resampler = Resampler(item.sample_rate, _RATE)
                    samples = resampler.push(samples)
                if len(samples):
                    audio.append(samples)
                    await send.send(samples)
            if resampler is not None:
                tail = resampler.push(np.zeros(0, np.float32), last=True)
                if len(tail):
                    audio.append(tail)
                    await send.send(tail)

    async def _inferences(
        self, results: AsyncIterable[dict[str, Any]], audio: _Audio, state: _State
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each result, after its ``INFERENCE_DONE`` event."""
        o = self._owner
        async for result in results:
            t = int(result["timestamp"])
            now = t + _PERIOD_MS
            audio.trim(now)
            p = activity_probability(result, o._key, o.smoothing)
            self._event_ch.send_nowait(
                vad.VADEvent(
                    type=vad.VADEventType.INFERENCE_DONE,
                    samples_index=now * _PER_MS,
                    timestamp=now / 1000,
                    speech_duration=(now - state.start_ms) / 1000 if state.speaking else 0.0,
                    silence_duration=0.0 if state.speaking else (now - state.end_ms) / 1000,
                    frames=[audio.frame(t, now)],
                    probability=p,
                    inference_duration=0.0,
                    speaking=state.speaking,
                )
            )
            yield result

    def _speech_event(self, ev: SpeechStarted | SpeechEnded, audio: _Audio, state: _State) -> vad.VADEvent:
        if isinstance(ev, SpeechStarted):
            state.speaking, state.start_ms = True, ev.timestamp_ms
            return vad.VADEvent(
                type=vad.VADEventType.START_OF_SPEECH,
                samples_index=ev.detected_ms * _PER_MS,
                timestamp=ev.detected_ms / 1000,
                speech_duration=(ev.detected_ms - ev.timestamp_ms) / 1000,
                silence_duration=0.0,
                frames=[audio.frame(ev.timestamp_ms, ev.detected_ms)],
                probability=ev.confidence,
                speaking=True,
            )
        state.speaking, state.end_ms = False, ev.timestamp_ms
        return vad.VADEvent(
            type=vad.VADEventType.END_OF_SPEECH,
            samples_index=ev.detected_ms * _PER_MS,
            timestamp=ev.detected_ms / 1000,
            speech_duration=(ev.timestamp_ms - ev.start_ms) / 1000,
            silence_duration=max(0, ev.detected_ms - ev.timestamp_ms) / 1000,
            frames=[audio.frame(max(ev.start_ms, ev.timestamp_ms - self._owner.max_buffered_samples // _PER_MS), ev.timestamp_ms)],
            probability=ev.confidence,
            speaking=False,
        )


@dataclasses.dataclass
class _State:
    speaking: bool = False
    start_ms: int = 0
    end_ms: int = 0
