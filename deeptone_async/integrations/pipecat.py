"""pipecat plug-ins (``pip install 'deeptone-async[pipecat]'``).

Two pieces, both on one shared :class:`~deeptone_async.Deeptone` engine:

- :class:`DeeptoneVADAnalyzer`: our Vad (or SpeechRT) as a pipecat ``VADAnalyzer``, for a
  transport's ``vad_analyzer=`` or pipecat's ``VADProcessor``; pipecat's own state machine
  (``VADParams``: confidence, start_secs, stop_secs, min_volume) turns its per-frame speech
  probability into ``VADUserStartedSpeakingFrame`` / ``VADUserStoppedSpeakingFrame``.
- :class:`DeeptoneAnalytics`: a frame processor that runs
  :meth:`~deeptone_async.Deeptone.process_stream` on the pipeline's input audio and pushes
  downstream a :class:`DeeptoneResultFrame` per output period and a
  :class:`DeeptoneEventFrame` per event: speech started and ended
  (:func:`~deeptone_async.events.speech_events` on the Vad) and label changes of every
  other model (:func:`~deeptone_async.events.label_events`: gender, arousal, emotions...).
  Audio frames pass through unchanged, at once.

>>> from deeptone_async.integrations.pipecat import DeeptoneAnalytics, DeeptoneVADAnalyzer
>>> pipeline = Pipeline([transport.input(), DeeptoneAnalytics(models=["vad", "gender"]), ...])

Importing this module without pipecat raises an ImportError that names the extra.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..engine import Deeptone, check_output_period
from ..errors import ParameterError
from ..events import Event, label_events, speech_events
from ..pipeline import ResultStream
from ..segments import DEFAULT_SMOOTHING, Smoothing
from ._audio import Resampler

try:
    from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
    from pipecat.frames.frames import (
        CancelFrame,
        EndFrame,
        Frame,
        InputAudioRawFrame,
        StartFrame,
        SystemFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"deeptone_async.integrations.pipecat needs {exc.name}: pip install 'deeptone-async[pipecat]'"
    ) from exc

__all__ = [
    "DeeptoneAnalytics",
    "DeeptoneEventFrame",
    "DeeptoneResultFrame",
    "DeeptoneVADAnalyzer",
]

#: The engine's frame: 64 ms at 16 kHz.
_FRAME = 1024
_RATE = 16_000


class DeeptoneVADAnalyzer(VADAnalyzer):
    """Our speech detector as a pipecat ``VADAnalyzer``.

    pipecat calls :meth:`voice_confidence` on every 64 ms of audio (in its analyzer's
    worker thread) and applies its ``VADParams`` to the probabilities. At 16 kHz each call
    is one model step on exactly that audio; at other rates the audio is resampled to
    16 kHz (soxr, streaming) and the probability is the last complete 64 ms frame's.

    Args:
        engine: the engine whose models are used (a new one when ``None``; creating it
            blocks while the models load). Share one between analyzers: each analyzer
            keeps only its own recurrent state.
        model: ``"vad"`` (Silero VAD v6, rebuilt; its 8 kHz branch at 8 kHz) or ``"speech-rt"`` (speech probability
            of the 128 ms SpeechRT model); any registered model with a ``speech`` label.
        sample_rate: the audio's rate; ``None``: the transport's, set by pipecat.
        params: pipecat's ``VADParams`` (confidence 0.7, start 0.2 s, stop 0.2 s,
            min_volume 0.6 by default).

    Raises:
        UnknownModelError: ``model`` is not registered.
        ParameterError: ``model`` has no ``speech`` label.
    """

    def __init__(
        self,
        engine: Deeptone | None = None,
        *,
        model: str = "vad",
        sample_rate: int | None = None,
        params: VADParams | None = None,
    ) -> None:
        self._engine = engine if engine is not None else Deeptone()
        specs, self._plan = self._engine.plan([model])
        spec = specs[0]
        label = spec.speech_label or "speech"
        if label not in spec.labels:
            raise ParameterError(f"model {model!r} has no {label!r} label (its labels: {', '.join(spec.labels)})")
        self._key = spec.key
        self._speech_index = spec.labels.index(label)
        self._state = self._plan.new_stream()
        self._resampler: Resampler | None = None
        self._pending = np.zeros(0, np.float32)
        self._last = 0.0
        super().__init__(sample_rate=sample_rate, params=params)

    def num_frames_required(self) -> int:
        """Samples per :meth:`voice_confidence` call: 64 ms at the analyzer's rate."""
        return max(1, math.ceil(self.sample_rate * _FRAME / _RATE)) if self.sample_rate else _FRAME

    def set_sample_rate(self, sample_rate: int) -> None:
        """Set by pipecat when the pipeline starts; resets the model's state."""
        super().set_sample_rate(sample_rate)
        self._state = self._plan.new_stream(self.sample_rate)  # 8 kHz: the Vad's 8 kHz branch
        self._resampler = None if self.sample_rate == _RATE else Resampler(self.sample_rate, _RATE)
        self._pending = np.zeros(0, np.float32)

    def voice_confidence(self, buffer: bytes) -> float:
        """The speech probability of ``buffer`` (16-bit mono PCM). Blocks while the model runs
        (well under a millisecond for the Vad); pipecat calls it in a worker thread."""
        audio = np.frombuffer(buffer, dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            audio = self._resampler.push(audio)
        if len(self._pending):
            audio = np.concatenate([self._pending, audio])
        n = len(audio) // _FRAME
        self._pending = audio[n * _FRAME :]
        if n:
            frames = audio[: n * _FRAME].reshape(1, n, _FRAME)
            probs = self._plan.run(frames, [self._state]).probs[self._key]
            self._last = float(probs[0, -1, self._speech_index])
        return self._last


@dataclass
class DeeptoneResultFrame(SystemFrame):
    """One stream result, as :meth:`~deeptone_async.Deeptone.process_stream` yields it.

    A system frame, so that a user interruption does not cancel it. ``result`` is
    ``{"timestamp": ms, "results": {model: {"result", "confidence"}}, "raw"?: ...}``;
    timestamps count from the pipeline's first audio frame.
    """

    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeeptoneEventFrame(SystemFrame):
    """A :class:`~deeptone_async.events.SpeechStarted`, :class:`~deeptone_async.events.SpeechEnded`
    or :class:`~deeptone_async.events.LabelChanged` (``event.to_dict()`` for JSON)."""

    event: Event | None = None


class DeeptoneAnalytics(FrameProcessor):
    """Adds deeptone-async results and events to a pipecat pipeline.

    Input audio frames (``InputAudioRawFrame``, any rate and channel count: channels are
    averaged, other rates resampled to 16 kHz) pass through at once and are queued for
    analysis; the analysis runs in a task of its own from ``StartFrame`` and pushes
    downstream, in order of their computation:

    - :class:`DeeptoneResultFrame` per ``output_period`` ms;
    - :class:`DeeptoneEventFrame` with :class:`~deeptone_async.events.SpeechStarted` /
      :class:`~deeptone_async.events.SpeechEnded` from the ``vad`` (hysteresis and the
      ``smoothing`` rules: an onset is reported ``min_duration_ms`` after it starts, an
      end ``min_gap_ms`` after it), and :class:`~deeptone_async.events.LabelChanged` for
      each other model when its label changes for ``min_label_ms``.

    Timestamps are stream ms from the first audio frame. The queue between the pipeline
    and the analysis holds ``max_queue_s`` of audio; when the analysis falls that far
    behind (an overloaded machine), newer audio is dropped and counted in
    :attr:`dropped_samples` rather than blocking the bot's audio. On ``EndFrame`` the
    queued audio is analysed and its last results and events are pushed before the
    ``EndFrame``; ``CancelFrame`` stops at once. A failure in the analysis is pushed
    upstream as an ``ErrorFrame`` (the audio keeps flowing).

    Args:
        engine: the engine (a new one when ``None``; creating it blocks while models load).
        models: the models to run; ``"vad"`` is added when absent (it drives the speech events).
        output_period: ms per result (a multiple of 64).
        smoothing: rules for the speech events (:class:`~deeptone_async.segments.Smoothing`).
        min_label_ms: how long a new label must last before a :class:`LabelChanged`.
        include_raw_values: add every label's probability to the results.
        volume_threshold: RMS below which a frame is ``silence`` (0 disables).
        max_queue_s: audio the queue may hold before new audio is dropped.

    Raises:
        UnknownModelError: a model that is not registered (at construction).
        ParameterError: a bad ``output_period``, ``min_label_ms`` or ``max_queue_s``.
    """

    def __init__(
        self,
        engine: Deeptone | None = None,
        *,
        models: Sequence[str] = ("vad", "gender", "arousal", "emotions"),
        output_period: int = 256,
        smoothing: Smoothing = DEFAULT_SMOOTHING,
        min_label_ms: int = 500,
        include_raw_values: bool = False,
        volume_threshold: float = 0.005,
        max_queue_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._engine = engine if engine is not None else Deeptone()
        names = list(models)
        if "vad" not in names:
            names.insert(0, "vad")
        specs, _ = self._engine.plan(names)  # UnknownModelError now, not mid-pipeline
        self._keys = [s.key for s in specs]
        self._names = names
        check_output_period(output_period)
        self._period = output_period
        if isinstance(min_label_ms, bool) or not isinstance(min_label_ms, int) or min_label_ms < 0:
            raise ParameterError(f"min_label_ms must be a non-negative int, got {min_label_ms!r}")
        if not isinstance(max_queue_s, (int, float)) or not 0 < max_queue_s < math.inf:
            raise ParameterError(f"max_queue_s must be a positive number of seconds, got {max_queue_s!r}")
        self._smoothing = smoothing
        self._min_label_ms = min_label_ms
        self._raw = include_raw_values
        self._volume_threshold = volume_threshold
        # the audio goes to the analysis in whole 64 ms frames (the framer waits for them
        # anyway), so the queue's capacity in frames bounds it in seconds
        self._queue_frames = max(2, math.ceil(max_queue_s * _RATE / _FRAME))
        self._held = np.zeros(0, np.float32)
        self._send: MemoryObjectSendStream[np.ndarray[Any, Any]] | None = None
        self._task: Any = None
        self._resampler: Resampler | None = None
        self._rate = 0
        #: Samples (at 16 kHz) dropped because the analysis fell ``max_queue_s`` behind.
        self.dropped_samples = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass ``frame`` on; queue its audio; start or end the analysis on Start/End/Cancel."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._start()
            return
        if isinstance(frame, EndFrame):
            await self._finish()
        elif isinstance(frame, CancelFrame):
            await self._cancel()
        elif isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
            self._queue(frame)
            return
        await self.push_frame(frame, direction)

    def _start(self) -> None:
        if self._task is not None:
            return
        send, receive = anyio.create_memory_object_stream[np.ndarray[Any, Any]](self._queue_frames)
        self._send = send
        self._task = self.create_task(self._analyse(receive), "deeptone_analysis")

    def _queue(self, frame: InputAudioRawFrame) -> None:
        if self._send is None:
            return
        audio = np.frombuffer(frame.audio, dtype="<i2").astype(np.float32) / 32768.0
        if frame.num_channels > 1:
            audio = audio.reshape(-1, frame.num_channels).mean(axis=1)
        if frame.sample_rate != self._rate:
            self._rate = frame.sample_rate
            self._resampler = None if self._rate == _RATE else Resampler(self._rate, _RATE)
        if self._resampler is not None:
            audio = self._resampler.push(audio)
        held = np.concatenate([self._held, audio])
        n = len(held) // _FRAME * _FRAME
        self._held = held[n:]
        for i in range(0, n, _FRAME):
            self._send_nowait(held[i : i + _FRAME])

    def _send_nowait(self, audio: np.ndarray[Any, Any]) -> None:
        if self._send is None:
            return
        try:
            self._send.send_nowait(audio)
        except anyio.WouldBlock:
            self.dropped_samples += len(audio)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the analysis has stopped (failed or ended); audio still flows

    async def _finish(self) -> None:
        """End of the audio: let the analysis push its last results and events."""
        if self._send is not None:
            if self._resampler is not None:
                self._held = np.concatenate([self._held, self._resampler.push(np.zeros(0, np.float32), last=True)])
            if len(self._held):
                self._send_nowait(self._held)
                self._held = np.zeros(0, np.float32)
            await self._send.aclose()
            self._send = None
        if self._task is not None:
            task, self._task = self._task, None
            await task  # the analysis ends once the queued audio is analysed

    async def _cancel(self) -> None:
        if self._send is not None:
            await self._send.aclose()
            self._send = None
        if self._task is not None:
            task, self._task = self._task, None
            await self.cancel_task(task)

    async def cleanup(self) -> None:
        """Stops the analysis if the pipeline ends without End or Cancel."""
        await self._cancel()
        await super().cleanup()  # type: ignore[no-untyped-call]

    async def _analyse(self, audio: MemoryObjectReceiveStream[np.ndarray[Any, Any]]) -> None:
        try:
            with audio:
                results = self._engine.process_stream(
                    audio,
                    self._names,
                    output_period=self._period,
                    include_raw_values=self._raw,
                    volume_threshold=self._volume_threshold,
                )
                await self._fan_out(results)
        except Exception as exc:  # reported upstream; CancelledError is not an Exception
            await self.push_error(f"deeptone-async analysis failed: {exc}", exception=exc)

    async def _fan_out(self, results: ResultStream) -> None:
        """Each result downstream, and to one event stage per model (bounded hand-offs)."""
        async with anyio.create_task_group() as tg:
            stages: list[MemoryObjectSendStream[dict[str, Any]]] = []
            for key in self._keys:
                send, receive = anyio.create_memory_object_stream[dict[str, Any]](4)
                stages.append(send)
                tg.start_soon(self._push_events, key, receive)
            try:
                async with results:
                    async for result in results:
                        await self.push_frame(DeeptoneResultFrame(result=result))
                        for send in stages:
                            await send.send(result)
            finally:
                for send in stages:
                    send.close()

    async def _push_events(self, key: str, results: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        """``key``'s events (speech events for the Vad, label changes for the others) downstream."""
        with results:
            events: AsyncGenerator[Event, None]
            if key == "vad":
                events = speech_events(results, "vad", self._smoothing, period_ms=self._period)
            else:
                events = label_events(results, key, min_duration_ms=self._min_label_ms, period_ms=self._period)
            async with aclosing(events):
                async for event in events:
                    await self.push_frame(DeeptoneEventFrame(event=event))
