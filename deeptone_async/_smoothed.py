"""The stream :meth:`Deeptone.process_stream` returns when asked for ``smoothing``."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from .errors import ParameterError
from .events import smooth
from .pipeline import ResultStream, StreamStats
from .segments import DEFAULT_SMOOTHING, Smoothing
from .spec import ModelSpec

__all__ = ["SmoothedStream", "SmoothingArg", "off_label", "resolve_smoothing"]

SmoothingArg = Smoothing | Mapping[str, Smoothing] | bool | None


def off_label(spec: ModelSpec) -> str:
    """The label a dropped blip becomes: ``no_speech``, else ``other``, else ``silence``."""
    for label in ("no_speech", "other", "silence"):
        if label in spec.output_labels:
            return label
    return spec.output_labels[-1]


def resolve_smoothing(smoothing: SmoothingArg, specs: Sequence[ModelSpec]) -> dict[str, Smoothing]:
    """``{model key: rules}`` for the models of a stream.

    ``True`` or one :class:`Smoothing`: every model; a mapping: the models it names (by
    key, ``"vad"``); ``None``/``False``: none.

    Raises:
        ParameterError: a mapping naming a model the stream does not run, or a value that
            is not a :class:`Smoothing`.
    """
    if smoothing is None or smoothing is False:
        return {}
    if smoothing is True:
        return {s.key: DEFAULT_SMOOTHING for s in specs}
    if isinstance(smoothing, Smoothing):
        return {s.key: smoothing for s in specs}
    if isinstance(smoothing, Mapping):
        keys = {s.key for s in specs}
        unknown = [k for k in smoothing if k not in keys]
        if unknown:
            raise ParameterError(f"smoothing names models the stream does not run: {', '.join(map(repr, unknown))}")
        bad = [k for k, v in smoothing.items() if not isinstance(v, Smoothing)]
        if bad:
            raise ParameterError(f"smoothing values must be deeptone_async.segments.Smoothing, not for {', '.join(bad)}")
        return dict(smoothing)
    raise ParameterError(f"smoothing must be a Smoothing, a {{model: Smoothing}} mapping, True or None, got {smoothing!r}")


class SmoothedStream(ResultStream):
    """A :class:`~deeptone_async.ResultStream` whose results pass through
    :func:`deeptone_async.events.smooth` for each smoothed model.

    Same interface (``async for``, ``async with``, ``aclose``, ``stats``,
    ``output_period_ms``); closing it closes the stream inside. It wraps rather than
    rebuilds the stream, so it does not call ``ResultStream.__init__``.
    """

    def __init__(self, inner: ResultStream, rules: Mapping[str, Smoothing], specs: Sequence[ModelSpec]) -> None:
        self._inner = inner
        labels = {s.key: off_label(s) for s in specs}
        chain: Any = inner
        for key, rule in rules.items():
            chain = smooth(chain, key, rule, off_label=labels[key], period_ms=inner.output_period_ms)
        self._chain: AsyncGenerator[dict[str, Any], None] = chain

    @property
    def stats(self) -> StreamStats:
        return self._inner.stats

    @property
    def output_period_ms(self) -> int:
        return self._inner.output_period_ms

    async def __anext__(self) -> dict[str, Any]:
        return await self._chain.__anext__()

    async def aclose(self) -> None:
        try:
            await self._chain.aclose()
        finally:
            await self._inner.aclose()
