"""Blocking API: DeepTone's synchronous calls over the async engine.

``from deeptone_async.sync import Deeptone`` gives the methods of DeepTone's SDK as plain
blocking calls, so scripts written for DeepTone run with only the import changed. An event
loop runs in a background thread (an anyio blocking portal) owned by the engine; it stops
when the engine is closed or garbage-collected.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .engine import DEFAULT_VOLUME_THRESHOLD, ModelsArg
from .engine import Deeptone as AsyncDeeptone
from .pipeline import ResultStream
from .registry import ModelHandles
from .results import AnalysisResult
from .spec import ModelSpec

if TYPE_CHECKING:
    from ._smoothed import SmoothingArg

__all__ = ["Deeptone"]


def _stop_portal(cm: AbstractContextManager[BlockingPortal]) -> None:
    cm.__exit__(None, None, None)


class Deeptone:
    """The engine with blocking methods; same arguments as :class:`deeptone_async.Deeptone`.

    Thread-safe: calls from several threads share one event loop and one set of models.
    """

    def __init__(self, license_key: str | None = None, **kwargs: Any) -> None:
        self.engine = AsyncDeeptone(license_key, **kwargs)
        cm = start_blocking_portal()
        self._portal = cm.__enter__()
        self._close = weakref.finalize(self, _stop_portal, cm)

    @property
    def models(self) -> ModelHandles:
        return self.engine.models

    def get_available_models(self) -> list[str]:
        return self.engine.get_available_models()

    def is_model_available(self, name: str | ModelSpec) -> bool:
        return self.engine.is_model_available(name)

    def register_model(self, spec: ModelSpec) -> ModelSpec:
        return self.engine.register_model(spec)

    def process_file(self, filename: Any, models: ModelsArg = None, output_period: int = 1024, **kwargs: Any) -> AnalysisResult:
        """Blocking :meth:`deeptone_async.Deeptone.process_file`."""
        call = functools.partial(self.engine.process_file, filename, models, output_period, **kwargs)
        return self._portal.call(call)

    def process_audio_bytes(self, data: Any, models: ModelsArg = None, output_period: int = 1024, **kwargs: Any) -> AnalysisResult:
        """Blocking :meth:`deeptone_async.Deeptone.process_audio_bytes`."""
        call = functools.partial(self.engine.process_audio_bytes, data, models, output_period, **kwargs)
        return self._portal.call(call)

    def process_audio_chunk(self, data: Any, models: ModelsArg = None, **kwargs: Any) -> dict[str, Any]:
        """Blocking :meth:`deeptone_async.Deeptone.process_audio_chunk`."""
        return self._portal.call(functools.partial(self.engine.process_audio_chunk, data, models, **kwargs))

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
    ) -> Iterator[dict[str, Any]]:
        """A plain generator of results over a plain generator (or any source) of audio.

        The input generator is advanced in a worker thread, so it may block (e.g. wait for
        a microphone buffer). Closing the returned generator stops the stream.
        ``smoothing``, ``voice_signatures`` and ``live_frames`` are
        :meth:`deeptone_async.Deeptone.process_stream`'s.

        Raises:
            ParameterError, UnknownModelError, SignatureVersionError: at the call.
        """
        stream = self.engine.process_stream(
            input_generator, models, output_period, include_raw_values, volume_threshold,
            smoothing=smoothing, voice_signatures=voice_signatures, live_frames=live_frames,
        )
        return self._iterate(stream)

    def create_voice_signatures(
        self, speaker_samples: Sequence[Mapping[str, Any]], voice_signatures: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Blocking :meth:`deeptone_async.Deeptone.create_voice_signatures`."""
        call = functools.partial(self.engine.create_voice_signatures, speaker_samples, voice_signatures)
        return self._portal.call(call)

    def _iterate(self, stream: ResultStream) -> Iterator[dict[str, Any]]:
        try:
            while True:
                try:
                    item = self._portal.call(stream.__anext__)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            if self._close.alive:
                self._portal.call(stream.aclose)

    def close(self) -> None:
        """Stop the background event loop. Idempotent."""
        self._close()

    def __enter__(self) -> Deeptone:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
