"""The engine: DeepTone's API over the async pipeline."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import numpy.typing as npt
from anyio.lowlevel import RunVar

from .aggregator import FRAME_MS, Aggregator
from .audio import AudioFormat
from .batching import StreamBatcher
from .errors import AudioFormatError, ModelError, ParameterError
from .features import FRAME_SAMPLES, SAMPLE_RATE
from .framer import MAX_BLOCK_FRAMES
from .gate import check_volume_threshold
from .inference import InferencePlan
from .limits import DEFAULT_LIMITS, Limits
from .pipeline import Pipeline, ResultStream
from .registry import ModelHandles, ModelRegistry, bundled_specs
from .results import AnalysisResult
from .sources.base import Source, as_source
from .sources.file import FileSource, ProgressCallback
from .sources.memory import ArraySource
from .spec import ModelSpec
from .voice_signatures import apply_signatures

if TYPE_CHECKING:
    from ._smoothed import SmoothingArg

__all__ = ["Deeptone", "DEFAULT_VOLUME_THRESHOLD"]

#: ``process_file``'s ``on_time_series``: (channel key, that channel's new results)
TimeSeriesCallback = Callable[[str, list[dict[str, Any]]], None]

DEFAULT_VOLUME_THRESHOLD = 0.005
#: Per event loop: each engine's stream batcher (a RunVar lives as long as its loop runs).
_BATCHERS: RunVar[weakref.WeakKeyDictionary[Deeptone, StreamBatcher]] = RunVar("deeptone_async_batchers")
#: Most samples (all channels) of an in-memory array converted at once (16 MB as float32).
MEMORY_BLOCK_SAMPLES = 1 << 22
ModelsArg = Sequence[str | ModelSpec] | str | ModelSpec | None


def check_output_period(output_period: int) -> int:
    """Frames per output period, or :class:`ParameterError` if not a positive multiple of 64 ms."""
    if isinstance(output_period, bool) or not isinstance(output_period, (int, np.integer)):
        raise ParameterError(f"output_period must be an int number of ms, got {output_period!r}")
    if output_period < FRAME_MS or output_period % FRAME_MS:
        raise ParameterError(f"output_period must be a positive multiple of {FRAME_MS} ms, got {output_period}")
    return int(output_period) // FRAME_MS


class Deeptone:
    """The analysis engine. Create one and keep it: models load once and are shared.

    Args:
        license_key: accepted for compatibility with DeepTone's ``Deeptone(license_key)``
            and ignored; no key is needed.
        threads_per_model: ONNX Runtime intra-op threads per model session.
        max_inference_threads: most inference calls running at once across all streams
            (default: the CPU count).
        speech_detector: the model whose speech probability gives voice models their
            ``no_speech`` (default: ``"vad"``).
        load_bundled: load the models shipped with the package.
        limits: the sample rates and channel counts accepted from any input
            (:class:`~deeptone_async.limits.Limits`; default 4-384 kHz, 32 channels).
        batch_streams: run the blocks of concurrent ``process_stream`` calls (on one
            event loop) in shared inference calls (:mod:`deeptone_async.batching`);
            ``False`` runs each stream alone.
        batch_interval_ms: least time between the starts of two shared inference rounds
            (unless every stream is already waiting): the most a stream's block waits
            for its round beyond the one in progress; larger rounds cost less CPU each.
        max_batch: most stream blocks stacked in one inference call (a bigger group is
            split into several calls of the same round).

    Construction blocks while the ONNX sessions load (well under a second). The engine is
    safe to share between streams, tasks and threads.

    Raises:
        ModelError: a bundled model cannot be loaded.
    """

    def __init__(
        self,
        license_key: str | None = None,
        *,
        threads_per_model: int = 1,
        max_inference_threads: int | None = None,
        speech_detector: str | None = None,
        load_bundled: bool = True,
        limits: Limits | None = None,
        batch_streams: bool = True,
        batch_interval_ms: float = 10.0,
        max_batch: int = 256,
    ) -> None:
        if isinstance(batch_interval_ms, bool) or not isinstance(batch_interval_ms, (int, float)) or not 0 <= batch_interval_ms <= 1000:
            raise ParameterError(f"batch_interval_ms must be a number in [0, 1000], got {batch_interval_ms!r}")
        self._batch_interval = float(batch_interval_ms) / 1000
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ParameterError(f"max_batch must be a positive int, got {max_batch!r}")
        self._max_batch = max_batch
        if limits is not None and not isinstance(limits, Limits):
            raise ParameterError(f"limits must be a deeptone_async.limits.Limits, got {type(limits).__name__}")
        self.limits = limits or DEFAULT_LIMITS
        self._batch_streams = bool(batch_streams)
        self._registry = ModelRegistry(threads_per_model)
        if load_bundled:
            for spec in bundled_specs():
                self._registry.add(spec)
        self.models = ModelHandles(self._registry)
        self._limiter = anyio.CapacityLimiter(max_inference_threads or os.cpu_count() or 1)
        self._detector_name = speech_detector or "vad"
        if load_bundled:
            self._detector()  # fail now, not at the first voice model

    # -- models ---------------------------------------------------------------------------

    def get_available_models(self) -> list[str]:
        """Handle names of every registered model (``["Vad", ...]``)."""
        return [s.name for s in self._registry.specs()]

    def is_model_available(self, name: str | ModelSpec) -> bool:
        """Whether ``name`` (handle name, output key or spec) is registered."""
        try:
            self._registry.spec(name)
        except ModelError:
            return False
        return True

    def register_model(self, spec: ModelSpec) -> ModelSpec:
        """Add a model of one's own; it becomes ``engine.models.<spec.name>``.

        Blocks while its ONNX file loads.

        Raises:
            ModelError: the name or key is taken, or the ONNX file does not load.
        """
        return self._registry.add(spec)

    def _detector(self) -> ModelSpec:
        spec = self._registry.spec(self._detector_name)
        if spec.speech_label is None:
            raise ModelError(f"model {spec.name!r} cannot be the speech detector: it has no speech_label")
        return spec

    def _prepare(
        self, models: ModelsArg, output_period: int, volume_threshold: float
    ) -> tuple[list[ModelSpec], InferencePlan, int, float]:
        """Validate the common arguments: specs, plan, frames per period, threshold."""
        period = check_output_period(output_period)
        threshold = check_volume_threshold(volume_threshold)
        specs, plan = self.plan(models)
        return specs, plan, period, threshold

    def plan(self, models: ModelsArg) -> tuple[list[ModelSpec], InferencePlan]:
        """The specs and inference plan for ``models``: the engine's shared runners, plus the
        speech detector when a voice model needs it. For building custom pipelines (the
        server batches many streams' frames through one plan); each stream gets its own
        state from ``plan.new_stream()``.

        Raises:
            UnknownModelError: a model that is not registered.
        """
        specs = self._registry.resolve(models)
        detector = self._registry.runner(self._detector()) if any(s.voice for s in specs) else None
        return specs, InferencePlan([self._registry.runner(s) for s in specs], detector)

    def _stream_batcher(self) -> StreamBatcher:
        """This engine's batcher for the running event loop (one per loop and engine)."""
        try:
            batchers = _BATCHERS.get()
        except LookupError:
            batchers = weakref.WeakKeyDictionary()
            _BATCHERS.set(batchers)
        batcher = batchers.get(self)
        if batcher is None:
            batcher = batchers[self] = StreamBatcher(self._limiter, self._max_batch, self._batch_interval)
        return batcher

    def batching_stats(self) -> dict[str, float] | None:
        """Counters of the cross-stream batching on the running event loop (rounds as
        ``batches``, ``calls``, ``blocks``, ``frames``, ``largest``, ``mean_batch``), or
        ``None`` when this engine runs each stream alone. Call it from the event loop."""
        return self._stream_batcher().stats() if self._batch_streams else None

    def _pipeline_factory(self, plan: InferencePlan, volume_threshold: float, live_frames: bool, batched: bool) -> Any:
        def make(source: Source, fmt: AudioFormat, period: int) -> Pipeline:
            batcher = self._stream_batcher() if batched else None
            return Pipeline(source, fmt, plan, volume_threshold, self._limiter, self.limits, period, batcher, live_frames)

        return make

    # -- DeepTone API ---------------------------------------------------------------------

    def process_stream(
        self,
        input_generator: Any,
        models: ModelsArg = None,
        output_period: int = 1024,
        include_raw_values: bool = False,
        volume_threshold: float = DEFAULT_VOLUME_THRESHOLD,
        *,
        smoothing: SmoothingArg = None,
        voice_signatures: Mapping[str, Any] | None = None,
        live_frames: bool | None = None,
        batch_streams: bool | None = None,
    ) -> ResultStream:
        """Analyse a stream, yielding a result every ``output_period`` ms.

        Args:
            input_generator: a :class:`~deeptone_async.sources.Source` (file, microphone,
                TCP, array...), or any async or plain iterable of ``bytes`` (16-bit PCM,
                16 kHz mono, DeepTone's stream format) or numpy arrays (16 kHz, any
                supported dtype). A byte chunk may end mid-sample: the spare byte is
                carried into the next chunk.
            models: handles or names (``[engine.models.Vad]``, ``["vad"]``); ``None``
                runs every model.
            output_period: ms between results, a positive multiple of 64.
            include_raw_values: add each model's mean class probabilities as ``"raw"``.
            volume_threshold: frames whose RMS (on [-1, 1]) is below this are silence.
            smoothing: smooth labels into segments as
                :func:`deeptone_async.segments.segments` does (short blips dropped, short
                gaps bridged, padding): a :class:`~deeptone_async.segments.Smoothing` or
                ``True`` (the defaults) for every model, or ``{"vad": Smoothing(...)}``.
                Causal; each result is delayed until its smoothed label is final, at most
                ``pad_ms + min_duration_ms + min_gap_ms`` (480 ms with the defaults),
                rounded up to the output period (:func:`deeptone_async.events.smooth`).
            voice_signatures: ``{speaker_id: signature}`` from
                :meth:`create_voice_signatures`: SpeakerMap names these speakers and
                numbers the others (:mod:`deeptone_async.speaker_map`).
            live_frames: when the audio arrives live (the stream waits for each chunk),
                run each 64 ms frame as soon as it is whole, so that only the last
                frame's work is left when a period ends, instead of the whole period
                at once (audio that is ready at once, a file or a backlog, always runs a
                period at a time). ``None``: on for the Vad alone, whose per-frame
                calls cost about what period calls do; off when a log-mel model runs,
                where they cost about 2x the CPU. Results are the same either way; what
                each costs in latency is in the README ("Latency of live streams").
            batch_streams: share inference calls with the engine's other streams
                (``None``: the engine's ``batch_streams``).

        Returns:
            A :class:`~deeptone_async.pipeline.ResultStream`; iterate it with
            ``async for``. Each result uses only audio up to the end of its period
            (with ``smoothing``, up to the end of its period plus the delay above).

        Raises:
            ParameterError: bad ``output_period``, ``volume_threshold``, ``smoothing`` or
                ``voice_signatures`` (at the call).
            SignatureVersionError: a signature of another SpeakerMap version (at the call).
            UnknownModelError: a model that is not registered (at the call).
            AudioFormatError, DecodeError, SourceError: from ``async for``, after every
                result computed before the fault.
        """
        specs, plan, period, threshold = self._prepare(models, output_period, volume_threshold)
        specs = apply_signatures(specs, voice_signatures)
        rules = None
        if smoothing is not None and smoothing is not False:
            from ._smoothed import resolve_smoothing

            rules = resolve_smoothing(smoothing, specs)
        source = as_source(input_generator)
        if live_frames is not None and not isinstance(live_frames, bool):
            raise ParameterError(f"live_frames must be True, False or None, got {live_frames!r}")
        live = plan.cheap_frames if live_frames is None else live_frames
        batched = self._batch_streams if batch_streams is None else bool(batch_streams)
        factory = self._pipeline_factory(plan, threshold, live, batched)
        stream = ResultStream(source, factory, specs, period, bool(include_raw_values))
        if rules:
            from ._smoothed import SmoothedStream

            return SmoothedStream(stream, rules, specs)
        return stream

    async def process_file(
        self,
        filename: str | os.PathLike[str],
        models: ModelsArg = None,
        output_period: int = 1024,
        channel: int | None = None,
        include_summary: bool = False,
        include_transitions: bool = False,
        include_raw_values: bool = False,
        use_chunking: bool = True,
        volume_threshold: float = DEFAULT_VOLUME_THRESHOLD,
        *,
        progress: ProgressCallback | None = None,
        voice_signatures: Mapping[str, Any] | None = None,
        on_time_series: TimeSeriesCallback | None = None,
    ) -> AnalysisResult:
        """Analyse an audio file; every channel separately unless ``channel`` picks one.

        Decodes anything libsndfile reads (WAV, FLAC, OGG Vorbis/Opus, MP3, ...) at any
        sample rate, and headerless 16-bit 16 kHz mono ``.raw``/``.pcm``. With
        ``use_chunking`` (the default) the file is decoded and analysed block by block,
        so memory stays bounded whatever its length. Decoding and inference run in worker
        threads; the event loop is never blocked.

        ``progress(frames_decoded, frames_total)`` is called after each decoded block
        (for progress bars). ``voice_signatures`` are :meth:`process_stream`'s.

        ``on_time_series(channel_key, results)`` receives each channel's results as they
        are made, in order, instead of the returned time series (which then stays empty):
        with it, memory stays bounded on files of any length (archive workers write the
        results out as they come). It is called on the event loop: it must not block for
        long, and an exception it raises stops the analysis.

        Returns:
            ``{"channels": {"0": {"time_series": [...], "summary": {...},
            "transitions": {...}}}}`` (summary and transitions when asked for); for a mono
            file ``result["time_series"]`` etc. work too. The time series equals what
            :meth:`process_stream` yields for the same audio.

        Raises:
            FileNotFoundError: no such file.
            DecodeError: the file is not audio libsndfile can decode.
            ParameterError, UnknownModelError: bad arguments.
        """
        specs, plan, period, threshold = self._prepare(models, output_period, volume_threshold)
        specs = apply_signatures(specs, voice_signatures)
        # one decoded block is one inference block (16 s at 16 kHz): fewer thread hops, and
        # models with a long context recompute it once per 16 s rather than once per 4 s
        block = MAX_BLOCK_FRAMES * FRAME_SAMPLES if use_chunking else None
        source = FileSource(filename, channel=channel, block_frames=block, progress=progress)
        return await self._analyse(
            source, specs, plan, period, threshold, include_summary, include_transitions, include_raw_values,
            on_time_series,
        )

    async def process_audio_bytes(
        self,
        data: npt.NDArray[np.generic] | bytes,
        models: ModelsArg = None,
        output_period: int = 1024,
        rate_in: int = 16_000,
        include_summary: bool = False,
        include_transitions: bool = False,
        include_raw_values: bool = False,
        volume_threshold: float = DEFAULT_VOLUME_THRESHOLD,
        *,
        voice_signatures: Mapping[str, Any] | None = None,
    ) -> AnalysisResult:
        """Analyse audio in memory; same output as :meth:`process_file`.

        Args:
            data: numpy samples (int8/16/32, uint8/16/32, float32/64; 1-D mono or
                ``(frames, channels)``), or bytes of 16-bit little-endian mono PCM.
            rate_in: the sample rate of ``data``; other rates than 16 kHz are resampled.
            voice_signatures: as for :meth:`process_stream`.

        Raises:
            AudioFormatError: unsupported dtype or shape, NaN/inf in float input.
            ParameterError, UnknownModelError: bad arguments.
        """
        specs, plan, period, threshold = self._prepare(models, output_period, volume_threshold)
        specs = apply_signatures(specs, voice_signatures)
        source = self._memory_source(data, rate_in)
        return await self._analyse(
            source, specs, plan, period, threshold, include_summary, include_transitions, include_raw_values
        )

    async def process_audio_chunk(
        self,
        data: npt.NDArray[np.generic] | bytes,
        models: ModelsArg = None,
        rate_in: int = 16_000,
        include_raw_values: bool = False,
        volume_threshold: float = DEFAULT_VOLUME_THRESHOLD,
    ) -> dict[str, Any]:
        """One result for a whole chunk: ``{"results": {...}, "raw": {...}}``.

        The chunk is analysed as one period (label covering most of it, mean raw values).
        Mono only. An empty chunk gives ``{"results": {}}``.

        Raises:
            AudioFormatError: unsupported dtype, more than one channel, NaN/inf.
            ParameterError, UnknownModelError: bad arguments.
        """
        threshold = check_volume_threshold(volume_threshold)
        specs, plan = self.plan(models)
        source = self._memory_source(data, rate_in)
        fmt = await source.open()
        if fmt.channels != 1:
            raise AudioFormatError(f"process_audio_chunk takes mono audio, got {fmt.channels} channels")
        pipeline = Pipeline(source, fmt, plan, threshold, self._limiter, self.limits)
        aggregator = Aggregator(specs, 1 << 40, 1, bool(include_raw_values))
        try:
            async for block, outputs in pipeline.blocks():
                aggregator.push(block, outputs)
        finally:
            await pipeline.aclose()
        final = aggregator.finish()[0]
        out: dict[str, Any] = {"results": final[0]["results"] if final else {}}
        if include_raw_values:
            out["raw"] = final[0]["raw"] if final else {}
        return out

    async def create_voice_signatures(
        self, speaker_samples: Sequence[Mapping[str, Any]], voice_signatures: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Enrol speakers for SpeakerMap: ``{speaker_id: {"version": int, "data": base64}}``.

        Args:
            speaker_samples: ``[{"speaker_id": "alice", "audio": ...}]``; ``audio`` is 1-10 s
                of the speaker, a 1-D numpy array at 16 kHz (any supported dtype) or the
                path of an audio file (any rate; its first channel).
            voice_signatures: signatures made before: returned too, and a sample of a
                speaker already in them adds to that speaker's signature.

        Blocks only in worker threads (decoding, inference).

        Raises:
            NotEnoughSpeechError: a sample with less than 1 s of speech (or of audio).
            ParameterError: a malformed sample, more than 10 s of audio, a bad speaker id.
            SignatureVersionError: a signature of another SpeakerMap model version.
            UnknownModelError: the engine has no SpeakerMap model.
        """
        from .voice_signatures import create_voice_signatures

        return await create_voice_signatures(self, speaker_samples, voice_signatures)

    # -- helpers --------------------------------------------------------------------------

    def _memory_source(self, data: Any, rate_in: int) -> Source:
        if isinstance(rate_in, bool) or not isinstance(rate_in, (int, np.integer)) or rate_in <= 0:
            raise ParameterError(f"rate_in must be a positive int sample rate, got {rate_in!r}")
        self.limits.check_rate(int(rate_in), "rate_in")
        if isinstance(data, (bytes, bytearray, memoryview)):
            # 16-bit little-endian mono PCM, viewed (not copied) as samples; a torn last byte
            # is dropped, as a stream drops it; then the array path below
            view = memoryview(data).cast("B")
            data = np.frombuffer(view[: len(view) - len(view) % 2], dtype="<i2")
        if isinstance(data, np.ndarray):
            # pieces as long as a file block: one conversion and one inference hop per 16 s
            # (at most MEMORY_BLOCK_SAMPLES samples of all channels: bounded at any rate)
            channels = data.shape[1] if data.ndim == 2 and data.shape[1] > 0 else 1
            block = max(1, min(MAX_BLOCK_FRAMES * FRAME_SAMPLES * int(rate_in) // SAMPLE_RATE, MEMORY_BLOCK_SAMPLES // channels))
            return ArraySource(data, sample_rate=int(rate_in), chunk_frames=block)
        raise AudioFormatError(f"audio data must be a numpy array or bytes, got {type(data).__name__}")

    async def _analyse(
        self,
        source: Source,
        specs: list[ModelSpec],
        plan: InferencePlan,
        period: int,
        threshold: float,
        include_summary: bool,
        include_transitions: bool,
        include_raw: bool,
        on_time_series: TimeSeriesCallback | None = None,
    ) -> AnalysisResult:
        fmt = await source.open()
        pipeline = Pipeline(source, fmt, plan, threshold, self._limiter, self.limits, period)
        keep = include_summary or include_transitions
        aggregator = Aggregator(specs, period, fmt.channels, bool(include_raw), keep_log=keep)
        series: list[list[dict[str, Any]]] = [[] for _ in range(fmt.channels)]
        picked = source.channel if isinstance(source, FileSource) else None
        names = [str(c if picked is None else picked) for c in range(fmt.channels)]

        def take(per_channel: list[list[dict[str, Any]]]) -> None:
            for c, items in enumerate(per_channel):
                if on_time_series is None:
                    series[c].extend(items)
                elif items:
                    on_time_series(names[c], items)

        try:
            async for block, outputs in pipeline.blocks():
                take(aggregator.push(block, outputs))
        finally:
            await pipeline.aclose()
        take(aggregator.finish())
        channels: dict[str, Any] = {}
        for c, name in enumerate(names):
            entry: dict[str, Any] = {"time_series": series[c]}
            if include_summary:
                entry["summary"] = aggregator.summary(c)
            if include_transitions:
                entry["transitions"] = aggregator.transitions(c)
            channels[name] = entry
        return AnalysisResult(channels=channels)
