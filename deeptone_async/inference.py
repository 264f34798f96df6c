"""Stage 3: ONNX inference, off the event loop.

Resources and state are kept apart:

* a *runner* (:class:`SileroSeqRunner`, :class:`SileroRunner`, :class:`LogMelRunner`) owns
  one ONNX Runtime session and is shared by every stream of an engine;
  ``InferenceSession.run`` is thread-safe;
* a :class:`StreamState` holds one stream's (one channel's) recurrent state, feature
  history and log-mel extractor, and lives with the stream.

:meth:`InferencePlan.run` computes every requested model for a batch of frames of one or
more streams in one call; :func:`infer` makes one thread hop per :class:`FrameBlock`
(up to 16 s of audio) through a :class:`anyio.CapacityLimiter`, so the event loop never
waits on ONNX and a thread hop covers many frames.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import numpy as np

from .audio import Float32
from .errors import ModelError
from .features import (
    FRAME_SAMPLES,
    N_MELS,
    SAMPLE_RATE,
    SILENCE_FLOOR,
    SUBFRAMES,
    LogMelExtractor,
    stream_features,
)
from .framer import FrameBlock
from .narrowband import speech_by_rate
from .spec import ModelSpec

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = [
    "Batcher",
    "FrameOutputs",
    "InferencePlan",
    "LogMelRunner",
    "Runner",
    "SileroRunner",
    "SileroSeqRunner",
    "StreamState",
    "infer",
    "load_session",
    "make_runner",
]


def load_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """Open an ONNX file on the CPU with ``threads`` intra-op threads.

    Blocks while ONNX Runtime parses and optimises the graph (tens of milliseconds).

    Raises:
        ModelError: the file is missing or is not a loadable ONNX model.
    """
    import onnxruntime as ort  # here, not at the top: importing it takes 50-150 ms

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc


class Runner(Protocol):
    """Runs one model for a batch of streams. Implementations must be thread-safe."""

    spec: ModelSpec

    def new_state(self) -> object:
        """Fresh per-stream state (recurrent state or feature history)."""
        ...

    def run(self, frames: Float32, features: Float32 | None, states: Sequence[object]) -> Float32:
        """Probabilities ``(B, n, len(labels))`` for ``frames`` ``(B, n, 1024)``.

        ``features`` are the streams' log-mel rows ``(B, 4n, 64)`` when
        :attr:`needs_features`; ``states`` (one per stream) are updated in place.
        """
        ...

    @property
    def needs_features(self) -> bool: ...


@dataclass
class _SileroState:
    rnn: Float32 = field(default_factory=lambda: np.zeros((2, 128), np.float32))
    context: Float32 = field(default_factory=lambda: np.zeros(64, np.float32))
    rate: int = SAMPLE_RATE  # the stream's input rate (8 kHz runs the 8 kHz branch: narrowband.py)


_SILERO_STEP = 512
_SILERO_CONTEXT = 64


def _speech_pair(speech: Float32, speech_index: int) -> Float32:
    """``(B, n)`` speech probabilities -> ``(B, n, 2)`` with the other class as the rest."""
    out = np.empty((*speech.shape, 2), np.float32)
    out[..., speech_index] = speech
    out[..., 1 - speech_index] = 1.0 - speech
    return out


class _SileroBase:
    """What both Silero runners share: the spec, the session, the per-stream state."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        self.spec = spec
        self._session = session
        self._speech = spec.labels.index(spec.speech_label or "speech")

    @property
    def needs_features(self) -> bool:
        return False

    def new_state(self) -> _SileroState:
        return _SileroState()


class SileroRunner(_SileroBase):
    """Silero VAD (v5 or v6) as published, 16 kHz branch: one ONNX call per 512-sample step, recurrent state.

    For a user's own Silero-format graph (``kind="silero"``). Two steps per 64 ms frame; the
    frame's speech probability is the mean of its two steps. Streams of a batch are run
    together (the graph takes a batch); steps within a stream are sequential, one call
    each, so the call overhead dominates (:class:`SileroSeqRunner` avoids it).
    """

    _SR = np.array(16_000, np.int64)

    def run(self, frames: Float32, features: Float32 | None, states: Sequence[object]) -> Float32:
        sts = [s for s in states if isinstance(s, _SileroState)]
        batch, n = frames.shape[0], frames.shape[1]
        steps = frames.reshape(batch, n * (FRAME_SAMPLES // _SILERO_STEP), _SILERO_STEP)
        rnn = np.stack([s.rnn for s in sts], axis=1)  # (2, B, 128)
        window = np.empty((batch, _SILERO_CONTEXT + _SILERO_STEP), np.float32)
        window[:, :_SILERO_CONTEXT] = np.stack([s.context for s in sts])
        probs = np.empty((batch, steps.shape[1]), np.float32)
        run = self._session.run
        for t in range(steps.shape[1]):
            window[:, _SILERO_CONTEXT:] = steps[:, t]
            out, rnn = run(None, {"input": window, "state": rnn, "sr": self._SR})
            probs[:, t] = out[:, 0]
            window[:, :_SILERO_CONTEXT] = window[:, -_SILERO_CONTEXT:]
        for i, s in enumerate(sts):
            s.rnn = np.ascontiguousarray(rnn[:, i])
            s.context = window[i, :_SILERO_CONTEXT].copy()
        return _speech_pair(probs.reshape(batch, n, -1).mean(axis=2), self._speech)


class SileroSeqRunner(_SileroBase):
    """Silero VAD (v6 bundled) rebuilt to take all of a block's steps in one call (the bundled Vad).

    The graph (``windows`` ``(B, T, 576)``, ``state`` ``(2, B, 128)`` -> ``speech``
    ``(B, T)``, ``stateN``; built by ``training/silero_seq.py`` from the published weights)
    runs the non-recurrent layers on every step at once and the LSTM over the steps inside
    ONNX Runtime, so a 16 s block is one call instead of 500. Results equal
    :class:`SileroRunner`'s on the published graph up to float rounding. Two 512-sample
    steps per 64 ms frame, each with the 64 samples before it as context; the frame's speech
    probability is the mean of its two steps. With ``session_8k`` (the 8 kHz branch's graph,
    ``spec.onnx_8k``), streams whose input is 8 kHz run it instead
    (:mod:`deeptone_async.narrowband`).
    """

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, session_8k: ort.InferenceSession | None = None) -> None:
        super().__init__(spec, session)
        self._session_8k = session_8k

    def run(self, frames: Float32, features: Float32 | None, states: Sequence[object]) -> Float32:
        sts = [s for s in states if isinstance(s, _SileroState)]
        batch, n = frames.shape[0], frames.shape[1]
        if n == 0:
            return np.zeros((batch, 0, 2), np.float32)
        return _speech_pair(speech_by_rate(self._session, self._session_8k, frames, sts), self._speech)


@dataclass
class _FeatureHistory:
    rows: Float32


class LogMelRunner:
    """A causal, valid model over log-mel rows (see :mod:`deeptone_async.spec`)."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        self.spec = spec
        self._session = session
        self._ctx_rows = spec.context_frames * SUBFRAMES
        self._input = session.get_inputs()[0].name
        self._width = int(spec.extra.get("dim", len(spec.labels)))  # "embedding": its dim

    @property
    def needs_features(self) -> bool:
        return True

    def new_state(self) -> _FeatureHistory:
        return _FeatureHistory(np.full((self._ctx_rows, N_MELS), SILENCE_FLOOR, np.float32))

    def run(self, frames: Float32, features: Float32 | None, states: Sequence[object]) -> Float32:
        if features is None:
            raise ModelError(f"model {self.spec.name!r} needs log-mel features")
        hists = [s for s in states if isinstance(s, _FeatureHistory)]
        x = np.concatenate([np.stack([h.rows for h in hists]), features], axis=1)
        (probs,) = self._session.run(None, {self._input: x})
        n = frames.shape[1]
        if probs.shape != (frames.shape[0], n, self._width):
            raise ModelError(
                f"model {self.spec.name!r} returned shape {probs.shape}, expected {(frames.shape[0], n, self._width)}"
            )
        if self._ctx_rows:
            for i, h in enumerate(hists):
                h.rows = x[i, -self._ctx_rows :].copy()
        out: Float32 = probs.astype(np.float32, copy=False)
        return out


def make_runner(spec: ModelSpec, threads: int = 1) -> Runner:
    """Load ``spec``'s ONNX file and wrap it in the runner its ``kind`` names.

    Raises:
        ModelError: the ONNX file cannot be loaded or does not fit the kind.
    """
    if spec.onnx_stream is not None:  # carried convolution states (conv_state.py)
        from .conv_state import load_stream_runner

        stream = load_stream_runner(spec, load_session(spec.onnx_stream, threads))
        if stream is not None:
            import scipy.fft  # noqa: F401  (see below)

            return stream
    session = load_session(spec.onnx, threads)
    inputs = session.get_inputs()
    names = sorted(i.name for i in inputs)
    if spec.kind == "silero":
        if names != ["input", "sr", "state"]:
            raise ModelError(f"silero model {spec.name!r} must take inputs input, state, sr; it takes {names}")
        return SileroRunner(spec, session)
    if spec.kind == "silero_seq":
        if names != ["state", "windows"]:
            raise ModelError(f"silero_seq model {spec.name!r} must take inputs windows, state; it takes {names}")
        return SileroSeqRunner(spec, session, load_session(spec.onnx_8k, threads) if spec.onnx_8k else None)
    if len(inputs) != 1 or len(inputs[0].shape) != 3:
        raise ModelError(f"logmel model {spec.name!r} must take one (batch, rows, {N_MELS}) input")
    # the log-mel features' FFT: imported with the model (the engine's construction blocks
    # anyway), not at the first analysis, where its 350 ms would hold the GIL mid-stream
    import scipy.fft  # noqa: F401

    return LogMelRunner(spec, session)


@dataclass
class StreamState:
    """Per-stream (per-channel) inference state: feature extractor and model states."""

    extractor: LogMelExtractor
    models: dict[str, object]


@dataclass(frozen=True)
class FrameOutputs:
    """Per-frame model outputs for a block.

    Attributes:
        probs: model key -> float32 ``(channels, n, len(labels))``.
        speech: the speech detector's probability ``(channels, n)``, when a voice model
            needs it.
    """

    probs: dict[str, Float32]
    speech: Float32 | None


class InferencePlan:
    """The runners a pipeline needs, including the speech detector for voice models."""

    def __init__(self, runners: Sequence[Runner], detector: Runner | None) -> None:
        self.runners = list(runners)
        self.detector = detector
        self._all: dict[str, Runner] = {r.spec.key: r for r in self.runners}
        if detector is not None:
            self._all.setdefault(detector.spec.key, detector)
        self._needs_features = any(r.needs_features for r in self._all.values())

    @property
    def cheap_frames(self) -> bool:
        """Whether a call on one frame per stream costs about what a period's call costs per
        frame: true when every model is a Silero runner (``benchmarks/bench_call_shapes.py``,
        calls of 16-64 streams: about 50-60 us a stream-frame either way for the bundled Vad;
        the log-mel models pay 2-3x, mostly inside their convolutions)."""
        return all(isinstance(r, _SileroBase) for r in self._all.values())

    def new_stream(self, sample_rate: int = SAMPLE_RATE) -> StreamState:
        """State for one more stream (or channel) whose input arrives at ``sample_rate``."""
        models = {k: r.new_state() for k, r in self._all.items()}
        for st in models.values():
            if isinstance(st, _SileroState):
                st.rate = sample_rate  # 8 kHz input: the Vad's 8 kHz branch (narrowband.py)
        return StreamState(LogMelExtractor(), models)

    def run(self, frames: Float32, states: Sequence[StreamState]) -> FrameOutputs:
        """All models on ``frames`` ``(B, n, 1024)`` of ``B`` streams; blocks (call it in a thread)."""
        features = None
        if self._needs_features:
            features = stream_features([st.extractor for st in states], frames)
        probs = {k: r.run(frames, features, [st.models[k] for st in states]) for k, r in self._all.items()}
        speech = None
        if self.detector is not None:
            spec = self.detector.spec
            speech = probs[spec.key][..., spec.labels.index(spec.speech_label or "speech")]
        return FrameOutputs(probs, speech)


class Batcher(Protocol):
    """Runs a stream's block, possibly in a call shared with other streams
    (:class:`deeptone_async.batching.StreamBatcher`)."""

    async def run(self, plan: InferencePlan, samples: Float32, states: Sequence[StreamState]) -> FrameOutputs: ...

    def open_stream(self) -> None:
        """A stream starts submitting blocks (the batcher knows when all of them wait)."""
        ...

    def close_stream(self) -> None:
        """That stream is done."""
        ...


async def infer(
    blocks: AsyncIterable[FrameBlock],
    plan: InferencePlan,
    states: Sequence[StreamState],
    limiter: anyio.CapacityLimiter,
    batcher: Batcher | None = None,
) -> AsyncGenerator[tuple[FrameBlock, FrameOutputs], None]:
    """Run the plan on each block in a worker thread (one hop per block), or through
    ``batcher``, which shares calls and hops with other streams' blocks.

    Applies backpressure: the next block is not pulled until this one's results are
    consumed. Cancellation waits for the hop in flight (at most one block's work).
    """
    if batcher is None:
        async for block in blocks:
            outputs = await anyio.to_thread.run_sync(plan.run, block.samples, states, limiter=limiter)
            yield block, outputs
        return
    batcher.open_stream()
    try:
        async for block in blocks:
            outputs = await batcher.run(plan, block.samples, states)
            yield block, outputs
    finally:
        batcher.close_stream()
