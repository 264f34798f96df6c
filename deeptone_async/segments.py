"""Segments: a model's labels smoothed into time spans people can use.

A model's transitions change every 64 ms frame where the model hesitates (on a long
recording about 110 changes a minute, a third of them one frame long). :func:`segments`
turns them into spans of the labels one asks for, as silero-vad's ``get_speech_timestamps``
does for speech:

1. runs of the wanted ``labels`` separated by less than ``min_gap_ms`` of anything else are
   merged into one segment (silero-vad's ``min_silence_duration_ms``);
2. segments shorter than ``min_duration_ms`` are dropped (``min_speech_duration_ms``);
3. each segment is padded by ``pad_ms`` on both sides (``speech_pad_ms``), within the input
   and never before the previous segment's padded end.

A segment's label is the wanted label covering most of it (with one label, that label);
its confidence is the model's mean confidence over the frames with a wanted label.

The defaults (:data:`DEFAULT_SMOOTHING`: 250, 200 and 30 ms) were chosen to give speech
segments comparable to silero-vad's ``get_speech_timestamps`` with its defaults on the same
audio; the agreement is measured by ``benchmarks/bench_segments.py``
(``benchmarks/RESULTS.md``). The engine's volume gate (``volume_threshold``, default 0.005)
marks quiet frames ``silence`` before any model, which splits speech that silero-vad keeps
whole; ``volume_threshold=0`` agrees more closely still.

The same rules run causally on streams: :class:`SegmentTracker` is the state machine behind
both :func:`segments` and the stream stages of :mod:`deeptone_async.events`, so a stream
smoothed with the same settings gives the same segments as the file at the same resolution.
Everything here is pure Python: nothing blocks, nothing is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import ParameterError

__all__ = [
    "DEFAULT_SMOOTHING",
    "INACTIVE_LABELS",
    "Run",
    "Segment",
    "SegmentTracker",
    "Smoothing",
    "runs_of",
    "segments",
    "smooth_runs",
]

#: Labels that never start a segment unless asked for explicitly.
INACTIVE_LABELS = frozenset({"silence", "no_speech", "unknown"})


def _ms(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"{name} must be a non-negative int number of ms, got {value!r}")
    return value


@dataclass(frozen=True)
class Smoothing:
    """How labels are smoothed into segments (see the module docstring for the rules).

    Attributes:
        labels: the labels that make a segment; ``None``: every label but ``silence``,
            ``no_speech`` and ``unknown`` (for the Vad: ``speech``).
        min_duration_ms: shorter segments are dropped.
        min_gap_ms: shorter gaps between two runs of wanted labels are bridged.
        pad_ms: added before and after each segment.

    In a stream the rules run causally: an onset is known ``min_duration_ms`` after it
    starts, an end ``min_gap_ms`` after it (:class:`SegmentTracker`).

    Raises:
        ParameterError: a negative or non-int duration, or an empty ``labels``.
    """

    labels: tuple[str, ...] | None = None
    min_duration_ms: int = 250
    min_gap_ms: int = 200
    pad_ms: int = 30

    def __post_init__(self) -> None:
        _ms("min_duration_ms", self.min_duration_ms)
        _ms("min_gap_ms", self.min_gap_ms)
        _ms("pad_ms", self.pad_ms)
        if self.labels is not None:
            if isinstance(self.labels, str):
                object.__setattr__(self, "labels", (self.labels,))
            labels = tuple(self.labels)
            if not labels or not all(isinstance(x, str) for x in labels):
                raise ParameterError(f"labels must be a non-empty sequence of label names, got {self.labels!r}")
            object.__setattr__(self, "labels", labels)

    def wanted(self, label: str) -> bool:
        """Whether ``label`` makes a segment."""
        return label not in INACTIVE_LABELS if self.labels is None else label in self.labels


#: 250 ms minimum duration, 200 ms minimum gap, 30 ms padding: silero-vad's defaults but for
#: the gap (its 100 ms), which our 64 ms frames, decided at 0.5 without silero's 0.35
#: hysteresis, need twice as long to give as many segments as silero-vad does
#: (``benchmarks/RESULTS.md``, "Segments").
DEFAULT_SMOOTHING = Smoothing()


@dataclass(frozen=True)
class Segment:
    """One span of a label, in ms from the start of the input.

    Attributes:
        start_ms, end_ms: the span, padding included.
        label: the wanted label covering most of it.
        confidence: the model's mean confidence over its frames with a wanted label.
        model: the model's output key (``"vad"``).
        channel: the channel key (``"0"``).
    """

    start_ms: int
    end_ms: int
    label: str
    confidence: float
    model: str = "vad"
    channel: str = "0"

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def start(self) -> float:
        """Start in seconds."""
        return self.start_ms / 1000.0

    @property
    def end(self) -> float:
        """End in seconds."""
        return self.end_ms / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """``{"timestamp_start", "timestamp_end", "result", "confidence", "model", "channel"}``,
        the keys of a transition plus the model and channel."""
        return {
            "timestamp_start": self.start_ms,
            "timestamp_end": self.end_ms,
            "result": self.label,
            "confidence": self.confidence,
            "model": self.model,
            "channel": self.channel,
        }


@dataclass(frozen=True)
class Run:
    """A span with one label: a transition, or one stream result over its period.

    ``p`` is the probability that the span is active (for threshold hysteresis); ``None``
    uses the label alone.
    """

    start_ms: int
    end_ms: int
    label: str
    confidence: float
    p: float | None = None


@dataclass
class _Open:
    start: int  # first active ms (unpadded)
    last_end: int  # end of the last active run
    durations: dict[str, int] = field(default_factory=dict)
    conf_ms: float = 0.0

    def add(self, run: Run, wanted: bool) -> None:
        self.last_end = run.end_ms
        if wanted:
            span = run.end_ms - run.start_ms
            self.durations[run.label] = self.durations.get(run.label, 0) + span
            self.conf_ms += run.confidence * span


TrackerEvent = tuple[Literal["start", "end"], Segment]


class SegmentTracker:
    """The smoothing rules as a causal state machine over runs in time order.

    Feed it runs with :meth:`push`; it returns ``("start", segment)`` when a segment is
    confirmed (``min_duration_ms`` after its first active ms; ``segment.end_ms`` is then
    the confirmation time) and ``("end", segment)`` when it is over (``min_gap_ms`` after
    its last active ms). :meth:`finish` closes the last one. ``decided_ms`` is the time
    before which every ms's smoothed state is final.

    Args:
        model: the model key written into segments.
        smoothing: the rules.
        channel: the channel key written into segments.
        start_threshold, stop_threshold: with run probabilities (``Run.p``), a run starts
            or extends a pending segment when ``p >= start_threshold`` and continues an
            open one while ``p >= stop_threshold`` (silero-vad's threshold and
            neg_threshold); ``None`` uses the labels alone.

    Pure and synchronous; never blocks.
    """

    def __init__(
        self,
        model: str,
        smoothing: Smoothing = DEFAULT_SMOOTHING,
        *,
        channel: str = "0",
        start_threshold: float | None = None,
        stop_threshold: float | None = None,
    ) -> None:
        if (start_threshold is None) != (stop_threshold is None):
            raise ParameterError("start_threshold and stop_threshold go together")
        if start_threshold is not None and stop_threshold is not None and not 0.0 <= stop_threshold <= start_threshold <= 1.0:
            raise ParameterError(
                f"thresholds must satisfy 0 <= stop_threshold <= start_threshold <= 1, got {stop_threshold}, {start_threshold}"
            )
        self.model = model
        self.smoothing = smoothing
        self.channel = channel
        self._start_t = start_threshold
        self._stop_t = stop_threshold
        self._pending: _Open | None = None
        self._open: _Open | None = None
        self._confirmed_start = 0  # padded start of the open segment
        self._last_padded_end = 0  # padded end of the previous segment
        self.now_ms = 0
        self.decided_ms = 0

    @property
    def active(self) -> bool:
        """Whether a confirmed segment is open."""
        return self._open is not None

    def _is_active(self, run: Run, wanted: bool) -> bool:
        if run.p is None or self._start_t is None or self._stop_t is None:
            return wanted
        engaged = self._open is not None or self._pending is not None
        return run.p >= (self._stop_t if engaged else self._start_t)

    def _segment(self, seg: _Open, start: int, end: int) -> Segment:
        wanted_ms = sum(seg.durations.values())
        label = max(seg.durations.items(), key=lambda kv: kv[1])[0] if seg.durations else ""
        conf = round(seg.conf_ms / wanted_ms, 4) if wanted_ms else 0.0
        return Segment(start, end, label, conf, self.model, self.channel)

    def _padded_start(self, start: int) -> int:
        return max(0, start - self.smoothing.pad_ms, self._last_padded_end)

    def _close(self, end_limit: int | None) -> TrackerEvent:
        assert self._open is not None
        seg, self._open = self._open, None
        end = seg.last_end + self.smoothing.pad_ms
        if end_limit is not None:
            end = min(end, end_limit)
        self._last_padded_end = end
        return ("end", self._segment(seg, self._confirmed_start, end))

    def push(self, run: Run) -> list[TrackerEvent]:
        """Advance over ``run`` (which starts where the previous one ended)."""
        s = self.smoothing
        events: list[TrackerEvent] = []
        wanted = s.wanted(run.label)
        active = self._is_active(run, wanted)
        self.now_ms = run.end_ms
        if self._open is not None:
            if active:
                self._open.add(run, wanted)
            elif run.end_ms - self._open.last_end >= s.min_gap_ms:
                events.append(self._close(None))
        elif self._pending is not None:
            if active:
                self._pending.add(run, wanted)
            elif run.end_ms - self._pending.last_end >= s.min_gap_ms:
                self._pending = None
        elif active:
            self._pending = _Open(run.start_ms, run.start_ms)
            self._pending.add(run, wanted)
        if self._pending is not None and self._pending.last_end - self._pending.start >= s.min_duration_ms:
            self._open, self._pending = self._pending, None
            self._confirmed_start = self._padded_start(self._open.start)
            events.append(("start", self._segment(self._open, self._confirmed_start, self.now_ms)))
        # every ms before decided_ms has its final state
        if self._pending is not None:
            decided = self._padded_start(self._pending.start)
        elif self._open is not None:
            decided = min(self.now_ms, self._open.last_end + s.pad_ms)
        else:
            decided = max(self._last_padded_end, self.now_ms - s.pad_ms)
        self.decided_ms = max(self.decided_ms, decided)
        return events

    def finish(self, end_ms: int | None = None) -> list[TrackerEvent]:
        """Close the open segment at the end of the input (``end_ms``, default the end of
        the last run); a pending one shorter than ``min_duration_ms`` is dropped."""
        limit = self.now_ms if end_ms is None else end_ms
        self._pending = None
        events = [self._close(limit)] if self._open is not None else []
        self.decided_ms = max(self.decided_ms, limit)
        return events


def _transitions_or_series(entry: Mapping[str, Any], model: str, where: str) -> list[Run]:
    transitions = entry.get("transitions")
    if isinstance(transitions, Mapping):
        if model not in transitions:
            raise ParameterError(f"no model {model!r} in {where}; it has {', '.join(map(repr, transitions)) or 'none'}")
        return [
            Run(int(t["timestamp_start"]), int(t["timestamp_end"]), str(t["result"]), float(t["confidence"]))
            for t in transitions[model]
        ]
    series = entry.get("time_series")
    if series is None:
        raise ParameterError(f"{where} has neither transitions nor a time series")
    return runs_of(series, model, where=where)


def runs_of(series: Sequence[Mapping[str, Any]], model: str, *, period_ms: int | None = None, where: str = "the results") -> list[Run]:
    """Runs from period results (a time series, or results collected from a stream).

    Each result covers ``period_ms`` from its timestamp (default: the step between the first
    two timestamps). Results at 64 ms periods give the transitions' resolution.

    Raises:
        ParameterError: ``model`` is not in the results, or the period cannot be inferred.
    """
    items = list(series)
    if not items:
        return []
    if model not in items[0].get("results", {}):
        have = ", ".join(map(repr, items[0].get("results", {}))) or "none"
        raise ParameterError(f"no model {model!r} in {where}; it has {have}")
    if period_ms is None:
        if len(items) < 2:
            raise ParameterError(
                f"{where} has one result, whose period is unknown: pass period_ms, or analyse with include_transitions=True"
            )
        period_ms = int(items[1]["timestamp"]) - int(items[0]["timestamp"])
    out = []
    for item in items:
        res = item["results"][model]
        t = int(item["timestamp"])
        out.append(Run(t, t + period_ms, str(res["result"]), float(res["confidence"])))
    return out


def smooth_runs(
    runs: Iterable[Run], model: str, smoothing: Smoothing = DEFAULT_SMOOTHING, *, channel: str = "0", end_ms: int | None = None
) -> list[Segment]:
    """:func:`segments` over runs in time order (transitions, or :func:`runs_of` a series)."""
    tracker = SegmentTracker(model, smoothing, channel=channel)
    out: list[Segment] = []
    for run in runs:
        out += [seg for kind, seg in tracker.push(run) if kind == "end"]
    out += [seg for kind, seg in tracker.finish(end_ms) if kind == "end"]
    end = tracker.now_ms if end_ms is None else end_ms
    return [seg if seg.end_ms <= end else replace(seg, end_ms=end) for seg in out]


def segments(
    result: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    model: str = "vad",
    *,
    labels: str | Sequence[str] | None = None,
    min_duration_ms: int | None = None,
    min_gap_ms: int | None = None,
    pad_ms: int | None = None,
    channel: int | str | None = None,
    smoothing: Smoothing | None = None,
) -> list[Segment]:
    """A model's smoothed segments from a file or bytes result (or stream results).

    Args:
        result: what :meth:`~deeptone_async.Deeptone.process_file` returns (its
            ``transitions`` at 64 ms resolution when present, else its ``time_series``),
            or a list of stream results.
        model: the model's output key (``"vad"``, ``"gender"``, ...).
        labels: the labels that make segments (default: every label but ``silence``,
            ``no_speech`` and ``unknown``).
        min_duration_ms, min_gap_ms, pad_ms: the rules (module docstring); each defaults
            to ``smoothing``'s, whose defaults are :data:`DEFAULT_SMOOTHING`'s.
        channel: one channel (int or key); default every channel, in channel order.
        smoothing: the rules as one object (the keyword arguments override it).

    Returns:
        The segments, in time order within each channel. Pure; never blocks.

    Raises:
        ParameterError: an unknown model or channel, bad durations, or a result with
            neither transitions nor a time series.
    """
    base = smoothing or DEFAULT_SMOOTHING
    changes: dict[str, Any] = {}
    if labels is not None:
        changes["labels"] = (labels,) if isinstance(labels, str) else tuple(labels)
    for name, value in (("min_duration_ms", min_duration_ms), ("min_gap_ms", min_gap_ms), ("pad_ms", pad_ms)):
        if value is not None:
            changes[name] = value
    rules = replace(base, **changes) if changes else base
    if isinstance(result, Sequence):
        return smooth_runs(runs_of(result, model), model, rules)
    channels = result.get("channels")
    if not isinstance(channels, Mapping):
        raise ParameterError("result must be a process_file / process_audio_bytes result or a list of stream results")
    keys = list(channels)
    if channel is not None:
        if str(channel) not in channels:
            raise ParameterError(f"no channel {channel!r} in the result; it has {', '.join(keys)}")
        keys = [str(channel)]
    out: list[Segment] = []
    for key in keys:
        entry = channels[key]
        runs = _transitions_or_series(entry, model, f"channel {key}")
        out += smooth_runs(runs, model, rules, channel=key)
    return out
