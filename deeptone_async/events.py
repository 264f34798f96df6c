"""Stream stages: smoothed results and speech / label events for bots.

Each stage is an async generator function over an async iterable of stream results (what
:meth:`~deeptone_async.Deeptone.process_stream` yields), so they chain::

    async for ev in speech_events(engine.process_stream(mic, ["vad"], output_period=64)):
        if isinstance(ev, SpeechStarted): ...

- :func:`smooth` yields the same results with one model's labels smoothed by the rules of
  :mod:`deeptone_async.segments` (short blips dropped, short gaps bridged, padding).
- :func:`speech_events` yields :class:`SpeechStarted` and :class:`SpeechEnded` once per
  smoothed segment, with hysteresis in time (an onset needs ``min_duration_ms`` of speech,
  an end ``min_gap_ms`` without) and in probability (speech starts at
  ``start_threshold`` and continues while above ``stop_threshold``), as pipecat's and
  LiveKit's VAD plug-ins expect.
- :func:`label_events` yields :class:`LabelChanged` when a model's label changes and the
  new label has lasted ``min_duration_ms``.

Everything is causal: nothing waits for audio beyond what the rules need. Added latency,
at most (rounded up to the stream's output period): an onset is reported
``min_duration_ms`` after it starts, an end ``min_gap_ms`` after it; :func:`smooth` holds
a result until its smoothed label is final, at most ``pad_ms + min_duration_ms +
min_gap_ms`` (with the defaults 480 ms; 0 ms while a segment is open and the model keeps
hearing speech). A stage applies backpressure: it pulls the next result only when its
consumer asks for the next item, and holds at most that many ms of results.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ParameterError
from .segments import DEFAULT_SMOOTHING, Run, Segment, SegmentTracker, Smoothing

__all__ = [
    "Event",
    "LabelChanged",
    "SpeechEnded",
    "SpeechStarted",
    "activity_probability",
    "label_events",
    "smooth",
    "speech_events",
]


@dataclass(frozen=True)
class _EventBase:
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, with its ``"event"`` type name first."""
        return {"event": self.type, **{k: getattr(self, k) for k in self.__dataclass_fields__}}


@dataclass(frozen=True)
class SpeechStarted(_EventBase):
    """A segment of wanted labels began.

    Attributes:
        timestamp_ms: where it began (stream ms, padding included).
        detected_ms: the stream time at which it was confirmed (``- timestamp_ms`` is the latency).
        label: the wanted label heard so far the longest.
        confidence: the model's mean confidence over it so far.
        model: the model's key.
    """

    type: ClassVar[str] = "speech_started"
    timestamp_ms: int
    detected_ms: int
    label: str
    confidence: float
    model: str


@dataclass(frozen=True)
class SpeechEnded(_EventBase):
    """The segment that :class:`SpeechStarted` opened is over.

    Attributes:
        timestamp_ms: where it ended (padding included).
        detected_ms: the stream time at which that was known.
        start_ms: where it began (the matching :class:`SpeechStarted`'s ``timestamp_ms``).
        label, confidence, model: over the whole segment.
    """

    type: ClassVar[str] = "speech_ended"
    timestamp_ms: int
    detected_ms: int
    start_ms: int
    label: str
    confidence: float
    model: str

    @property
    def segment(self) -> Segment:
        return Segment(self.start_ms, self.timestamp_ms, self.label, self.confidence, self.model)


@dataclass(frozen=True)
class LabelChanged(_EventBase):
    """A model's label changed and the new one held for ``min_duration_ms``.

    Attributes:
        timestamp_ms: where the new label began.
        detected_ms: the stream time at which it had lasted long enough.
        label: the new label; ``previous``: the one before (``None`` for the first).
        confidence: the model's mean confidence over the new label so far.
        model: the model's key.
    """

    type: ClassVar[str] = "label_changed"
    timestamp_ms: int
    detected_ms: int
    label: str
    previous: str | None
    confidence: float
    model: str


Event = SpeechStarted | SpeechEnded | LabelChanged


def activity_probability(result: Mapping[str, Any], model: str, smoothing: Smoothing) -> float:
    """How likely a result's period is of a wanted label, from the result alone.

    With raw values (``include_raw_values=True``): the sum of the wanted labels' mean
    probabilities. Otherwise the confidence when the label is wanted and ``1 - confidence``
    when it is not (the most the model can have given any other label; for the Vad exactly
    the speech probability). ``silence`` (below the volume threshold) is 0.
    """
    res = result["results"][model]
    label = str(res["result"])
    if label == "silence":
        return 0.0
    raw = result.get("raw", {}).get(model)
    if isinstance(raw, Mapping):
        return float(sum(float(p) for lab, p in raw.items() if smoothing.wanted(str(lab))))
    conf = float(res["confidence"])
    return conf if smoothing.wanted(label) else 1.0 - conf


def _period_of(results: object, period_ms: int | None) -> int | None:
    if period_ms is not None:
        if isinstance(period_ms, bool) or not isinstance(period_ms, int) or period_ms <= 0:
            raise ParameterError(f"period_ms must be a positive int, got {period_ms!r}")
        return period_ms
    known = getattr(results, "output_period_ms", None)
    return int(known) if isinstance(known, int) else None


async def _runs(
    results: AsyncIterable[dict[str, Any]], model: str, period_ms: int | None
) -> AsyncGenerator[tuple[dict[str, Any], int], None]:
    """Each result with its period (the stream's, or the step between the first two)."""
    period = _period_of(results, period_ms)
    held: dict[str, Any] | None = None
    async for item in results:
        if model not in item.get("results", {}):
            raise ParameterError(f"no model {model!r} in the stream's results; it has {', '.join(item.get('results', {}))}")
        if period is None:
            if held is None:
                held = item
                continue
            period = int(item["timestamp"]) - int(held["timestamp"])
            if period <= 0:
                raise ParameterError("stream results must have increasing timestamps")
        if held is not None:
            yield held, period
            held = None
        yield item, period
    if held is not None:
        yield held, 64 if period is None else period


def _relabel(item: dict[str, Any], model: str, on: str | None, off_label: str, smoothing: Smoothing) -> dict[str, Any]:
    res = item["results"][model]
    label = str(res["result"])
    wanted = smoothing.wanted(label)
    if on is not None and not wanted:
        new = on
    elif on is None and wanted:
        new = off_label
    else:
        return item
    results = dict(item["results"])
    results[model] = {"result": new, "confidence": round(1.0 - float(res["confidence"]), 4)}
    return {**item, "results": results}


async def smooth(
    results: AsyncIterable[dict[str, Any]],
    model: str = "vad",
    smoothing: Smoothing = DEFAULT_SMOOTHING,
    *,
    off_label: str = "no_speech",
    period_ms: int | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The stream's results with ``model``'s labels smoothed into segments.

    A result is inside a segment when the segment covers more than half of its period.
    Inside, a label that is not wanted (a bridged gap, the padding) becomes the segment's
    label; outside, a wanted label (a dropped blip) becomes ``off_label``. A changed
    label's confidence is ``1 - `` the original confidence (the most the model gave any
    other label). Other models' results and unchanged labels pass as they are.

    Args:
        results: stream results in time order (a :class:`~deeptone_async.ResultStream`
            or any async iterable of them).
        model: the model's key.
        smoothing: the rules (:class:`~deeptone_async.segments.Smoothing`).
        off_label: the label for dropped blips (a label the model has: ``no_speech`` for
            the Vad and voice models, ``other`` for Speech).
        period_ms: the results' period (default: the stream's ``output_period_ms``, or
            the step between the first two timestamps).

    Yields results with a delay of at most ``pad_ms + min_duration_ms + min_gap_ms``
    (rounded up to periods), every result exactly once, in order.

    Raises:
        ParameterError: ``model`` is not in the results; from ``async for``.
    """
    tracker = SegmentTracker(model, smoothing)
    held: deque[tuple[dict[str, Any], int]] = deque()
    spans: list[tuple[int, int, str]] = []  # closed segments, and the open one up to 2**62
    open_label: str | None = None

    def state(t: int, period: int) -> str | None:
        best, cover = None, 0
        for lo, hi, label in spans:
            overlap = min(hi, t + period) - max(lo, t)
            if overlap > cover:
                best, cover = label, overlap
        return best if 2 * cover > period else None

    def release(until: int) -> list[dict[str, Any]]:
        out = []
        while held and int(held[0][0]["timestamp"]) + held[0][1] <= until:
            item, period = held.popleft()
            t = int(item["timestamp"])
            out.append(_relabel(item, model, state(t, period), off_label, smoothing))
            while spans and spans[0][1] <= t + period:
                spans.pop(0)
        return out

    async with aclosing(_runs(results, model, period_ms)) as runs:
        async for item, period in runs:
            t = int(item["timestamp"])
            res = item["results"][model]
            held.append((item, period))
            for kind, seg in tracker.push(Run(t, t + period, str(res["result"]), float(res["confidence"]))):
                if kind == "start":
                    open_label = seg.label
                    spans.append((seg.start_ms, 1 << 62, seg.label))
                else:
                    spans[-1] = (seg.start_ms, seg.end_ms, open_label or seg.label)
                    open_label = None
            for out in release(tracker.decided_ms):
                yield out
    for kind, seg in tracker.finish(tracker.now_ms):
        if kind == "end":
            spans[-1] = (seg.start_ms, seg.end_ms, open_label or seg.label)
    for out in release(1 << 62):
        yield out


async def speech_events(
    results: AsyncIterable[dict[str, Any]],
    model: str = "vad",
    smoothing: Smoothing = DEFAULT_SMOOTHING,
    *,
    start_threshold: float | None = 0.5,
    stop_threshold: float | None = 0.35,
    period_ms: int | None = None,
) -> AsyncGenerator[SpeechStarted | SpeechEnded, None]:
    """:class:`SpeechStarted` and :class:`SpeechEnded`, once per smoothed segment.

    Hysteresis, as silero-vad and the bot frameworks use it: a segment starts on results
    whose :func:`activity_probability` reaches ``start_threshold`` and lasts while it stays
    at or above ``stop_threshold``; it is confirmed after ``min_duration_ms`` and ended
    after ``min_gap_ms`` below. ``start_threshold=None, stop_threshold=None`` use the labels
    alone, which gives exactly :func:`~deeptone_async.segments.segments`'s segments on a
    stream of the same resolution.

    An end is always preceded by its start; when the stream ends inside a segment, a last
    :class:`SpeechEnded` closes it at the end of the stream.

    Raises:
        ParameterError: bad thresholds (at the first ``async for``), or ``model`` missing
            from the results.
    """
    tracker = SegmentTracker(model, smoothing, start_threshold=start_threshold, stop_threshold=stop_threshold)
    use_p = start_threshold is not None
    async with aclosing(_runs(results, model, period_ms)) as runs:
        async for item, period in runs:
            t = int(item["timestamp"])
            res = item["results"][model]
            p = activity_probability(item, model, smoothing) if use_p else None
            for kind, seg in tracker.push(Run(t, t + period, str(res["result"]), float(res["confidence"]), p)):
                yield _event(kind, seg, tracker.now_ms)
    for kind, seg in tracker.finish():
        yield _event(kind, seg, tracker.now_ms)


def _event(kind: str, seg: Segment, now: int) -> SpeechStarted | SpeechEnded:
    if kind == "start":
        return SpeechStarted(seg.start_ms, now, seg.label, seg.confidence, seg.model)
    return SpeechEnded(seg.end_ms, now, seg.start_ms, seg.label, seg.confidence, seg.model)


async def label_events(
    results: AsyncIterable[dict[str, Any]],
    model: str,
    *,
    min_duration_ms: int = 250,
    period_ms: int | None = None,
) -> AsyncGenerator[LabelChanged, None]:
    """:class:`LabelChanged` each time ``model``'s label changes for at least ``min_duration_ms``.

    A new label must last ``min_duration_ms`` (uninterrupted) before the change is reported,
    so a model that hesitates between two labels does not flood a bot; the event says where
    the new label began. The first label to last that long is reported with
    ``previous=None``.

    Raises:
        ParameterError: a negative ``min_duration_ms``, or ``model`` missing from the results.
    """
    if isinstance(min_duration_ms, bool) or not isinstance(min_duration_ms, int) or min_duration_ms < 0:
        raise ParameterError(f"min_duration_ms must be a non-negative int, got {min_duration_ms!r}")
    current: str | None = None
    candidate: str | None = None
    since = 0
    conf_ms = 0.0
    async with aclosing(_runs(results, model, period_ms)) as runs:
        async for item, period in runs:
            t = int(item["timestamp"])
            res = item["results"][model]
            label = str(res["result"])
            if label == current:
                candidate = None
                continue
            if label != candidate:
                candidate, since, conf_ms = label, t, 0.0
            conf_ms += float(res["confidence"]) * period
            if t + period - since >= min_duration_ms:
                confidence = round(conf_ms / (t + period - since), 4)
                yield LabelChanged(since, t + period, label, current, confidence, model)
                current, candidate = label, None
