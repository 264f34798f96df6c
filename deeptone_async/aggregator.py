"""Stage 4: per-frame decisions, per-period results, summary and transitions.

Decisions, for each model and each 64 ms frame, in this order:

1. ``silence`` (confidence 1.0) where the volume gate marked the frame silent;
2. ``no_speech`` for a voice model where the speech detector's speech probability is
   below 0.5 (confidence: 1 - that probability);
3. ``unknown`` where the model's top probability is below its ``unknown_threshold``
   (confidence: that top probability);
4. otherwise the model's top label and its probability; for a multi-label model (one
   independent score per label, ``spec.multi_label``: AudioEvent) the label its rule picks
   (:mod:`deeptone_async.multilabel`: an event label above its threshold, else the first
   background label above its threshold, else the background label closest to its own)
   and that label's score.

A period result (one per ``output_period``) takes the label that covers most of the
period's audio, ties going to the label with the higher summed confidence; its confidence
is the mean confidence of the frames with that label. Its raw values are the mean model
probabilities over the period's non-silent frames (over all its frames when all are silent);
a multi-label model's are its independent scores, which need not add up to 1.

Summary fractions and transitions are computed from the frame decisions, weighted by each
frame's real duration, so they cover the input exactly (the last frame may be shorter than
64 ms) and the fractions add up to 1.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .audio import Float32
from .features import FRAME_SAMPLES, SAMPLE_RATE
from .framer import FrameBlock
from .inference import FrameOutputs
from .spec import ModelSpec

__all__ = ["Aggregator", "FrameLog", "aggregate", "decide", "summarise", "transitions"]

IntArray = npt.NDArray[np.int64]
FRAME_MS = FRAME_SAMPLES * 1000 // SAMPLE_RATE  # 64
SPEECH_DECISION = 0.5
ROUND_UNITS = 10_000  # results are rounded to 4 decimals, as DeepTone shows them


def _r(x: float) -> float:
    return round(float(x), 4)


def decide(
    spec: ModelSpec, probs: Float32, silent: npt.NDArray[np.bool_], speech: Float32 | None
) -> tuple[IntArray, Float32]:
    """Frame labels (indices into ``spec.output_labels``) and confidences.

    Shapes: ``probs`` ``(..., K)``, ``silent`` and ``speech`` ``(...)``. Pure function.
    """
    out_labels = spec.output_labels
    if spec.multi_label is not None:
        labels, conf = spec.multi_label.decide(probs)
    else:
        labels, conf = probs.argmax(axis=-1).astype(np.int64), probs.max(axis=-1).astype(np.float32)
    if spec.unknown_threshold is not None:
        low = conf < spec.unknown_threshold
        labels[low] = out_labels.index("unknown")
    if spec.voice and speech is not None:
        nosp = speech < SPEECH_DECISION
        labels[nosp] = out_labels.index("no_speech")
        conf[nosp] = 1.0 - speech[nosp]
    labels[silent] = out_labels.index("silence")
    conf[silent] = 1.0
    return labels, conf


@dataclass
class FrameLog:
    """Every frame decision of one model on one channel (small: 12 bytes a frame)."""

    labels: list[IntArray] = field(default_factory=list)
    conf: list[Float32] = field(default_factory=list)
    weights: list[IntArray] = field(default_factory=list)

    def append(self, labels: IntArray, conf: Float32, weights: IntArray) -> None:
        self.labels.append(labels)
        self.conf.append(conf)
        self.weights.append(weights)

    def arrays(self) -> tuple[IntArray, Float32, IntArray]:
        if not self.labels:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        return np.concatenate(self.labels), np.concatenate(self.conf), np.concatenate(self.weights)


def _round_shares(shares: npt.NDArray[np.float64]) -> list[float]:
    """Shares that add up to 1, rounded to 4 decimals so that they still add up to 1.

    Largest remainder: each share is floored to 1e-4, then the units left over go to the
    shares with the largest remainders. No share moves by more than 1e-4.
    """
    scaled = shares * ROUND_UNITS
    units = np.floor(scaled + 1e-9).astype(np.int64)
    short = ROUND_UNITS - int(units.sum())
    if short > 0:
        units[np.argsort(-(scaled - units), kind="stable")[:short]] += 1
    return [int(u) / ROUND_UNITS for u in units]


def summarise(spec: ModelSpec, log: FrameLog) -> dict[str, float]:
    """``{"<label>_fraction": share of the input's duration}`` for every output label.

    Rounded to 4 decimals, as every confidence is, and the fractions still add up to 1
    (largest-remainder rounding); for empty input they are all 0.
    """
    labels, _, weights = log.arrays()
    total = float(weights.sum())
    keys = [f"{lab}_fraction" for lab in spec.output_labels]
    if not total:
        return dict.fromkeys(keys, 0.0)
    counts = np.bincount(labels, weights=weights, minlength=len(spec.output_labels)).astype(np.float64)
    return dict(zip(keys, _round_shares(counts / total)))


def transitions(spec: ModelSpec, log: FrameLog) -> list[dict[str, Any]]:
    """Contiguous segments of equal frame labels, covering the input exactly.

    Each is ``{"timestamp_start", "timestamp_end", "result", "confidence"}`` in ms;
    boundaries fall on 64 ms frames, the last segment ends at the input's duration.
    """
    labels, conf, weights = log.arrays()
    if labels.shape[0] == 0:
        return []
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.shape[0]]])
    total_ms = int(round(float(weights.sum()) * 1000 / SAMPLE_RATE))
    out = []
    for s, e in zip(starts, ends):
        out.append(
            {
                "timestamp_start": int(s) * FRAME_MS,
                "timestamp_end": int(e) * FRAME_MS if e < labels.shape[0] else total_ms,
                "result": spec.output_labels[int(labels[s])],
                "confidence": _r(conf[s:e].mean()),
            }
        )
    return out


def _periods(
    spec: ModelSpec,
    labels: IntArray,
    conf: Float32,
    weights: IntArray,
    probs: Float32,
    silent: npt.NDArray[np.bool_],
) -> tuple[IntArray, Float32, Float32]:
    """Decide ``P`` periods of ``k`` frames at once (all arrays ``(P, k, ...)``).

    Returns each period's label index, mean confidence of that label's frames, and mean
    probabilities over its non-silent frames (over all its frames when all are silent).
    """
    n_labels = len(spec.output_labels)
    onehot = labels[..., None] == np.arange(n_labels)  # (P, k, L)
    cover = np.einsum("pkl,pk->pl", onehot, weights.astype(np.float64))
    conf_sum = np.einsum("pkl,pk->pl", onehot, conf.astype(np.float64))
    # most audio first, then the higher summed confidence (conf_sum / (k + 1) < 1 sample)
    best = np.argmax(cover + conf_sum / (labels.shape[1] + 1), axis=1)
    chosen = labels == best[:, None]
    mean_conf = (np.where(chosen, conf, 0).sum(axis=1) / chosen.sum(axis=1)).astype(np.float32)
    use = ~silent
    use[~use.any(axis=1)] = True
    raw = (np.einsum("pkc,pk->pc", probs, use.astype(np.float32)) / use.sum(axis=1, keepdims=True)).astype(np.float32)
    return best, mean_conf, raw


class Aggregator:
    """Turns frame outputs into period results for every channel (synchronous core).

    Frames wait until their period is complete; every complete period of a block is then
    decided at once with array operations.

    Args:
        specs: the models whose results are reported.
        period_frames: frames per output period.
        channels: channel (stream) count.
        include_raw: add ``"raw"`` to each result.
        keep_log: keep every frame decision for :meth:`summary` and :meth:`transitions`.
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        period_frames: int,
        channels: int,
        include_raw: bool = False,
        keep_log: bool = False,
    ) -> None:
        self._specs = list(specs)
        self._period = period_frames
        self._channels = channels
        self._raw = include_raw
        self._logs = [{s.key: FrameLog() for s in self._specs} for _ in range(channels)] if keep_log else None
        self._pending: dict[str, Any] | None = None  # decided frames of the period in progress
        self._held_frames = 0  # frames in self._pending
        # frames not yet decided (blocks that completed no period): valid, silent, outputs
        self._undecided: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], FrameOutputs]] = []
        self._undecided_frames = 0
        self._next_period = 0
        self._maps: dict[str, Any] = {}  # SpeakerMap: decided by online clustering, per channel
        if any(s.kind == "embedding" for s in self._specs):
            from .speaker_map import SpeakerMapper

            self._maps = {s.key: SpeakerMapper(s, channels) for s in self._specs if s.kind == "embedding"}

    def push(self, block: FrameBlock, outputs: FrameOutputs) -> list[list[dict[str, Any]]]:
        """Results of the periods that ``block`` completes: ``[channel][period]``.

        A block that completes no period is only kept (a live stream's frames arrive one
        or two at a time); its frames are decided with the rest of their period, in one
        set of array operations.
        """
        assert block.silent is not None, "the gate must run before the aggregator"
        self._undecided.append((block.valid, block.silent, outputs))
        self._undecided_frames += block.n_frames
        if self._held_frames + self._undecided_frames < self._period:
            return [[] for _ in range(self._channels)]
        return self._decide_undecided()

    def _decide_undecided(self) -> list[list[dict[str, Any]]]:
        """Decide every kept frame; emit the periods they complete."""
        raw, self._undecided, self._undecided_frames = self._undecided, [], 0
        if len(raw) == 1:
            valid, silent, outputs = raw[0]
        else:
            valid = np.concatenate([r[0] for r in raw])
            silent = np.concatenate([r[1] for r in raw], axis=1)
            parts = [r[2].speech for r in raw]
            speech = None if any(p is None for p in parts) else np.concatenate([p for p in parts if p is not None], axis=1)
            outputs = FrameOutputs({k: np.concatenate([r[2].probs[k] for r in raw], axis=1) for k in raw[0][2].probs}, speech)
        frames: dict[str, Any] = {"valid": valid, "silent": silent}
        for spec in self._specs:
            if spec.key in self._maps:  # labels, conf, scores, speaker count, slots in use
                frames[spec.key] = self._maps[spec.key].push(outputs.probs[spec.key], silent, outputs.speech)
                labels, conf = frames[spec.key][:2]
            else:
                labels, conf = decide(spec, outputs.probs[spec.key], silent, outputs.speech)
                frames[spec.key] = (labels, conf, outputs.probs[spec.key])
            if self._logs is not None:
                for c in range(self._channels):
                    self._logs[c][spec.key].append(labels[c], conf[c], valid)
        if self._pending is not None:
            frames = _join(self._pending, frames)
        n = frames["valid"].shape[0]
        whole = n - n % self._period
        self._pending = _cut(frames, whole, None) if whole < n else None
        self._held_frames = n - whole
        return self._emit(_cut(frames, 0, whole), self._period) if whole else [[] for _ in range(self._channels)]

    def finish(self) -> list[list[dict[str, Any]]]:
        """The final partial period's results, if any frames are pending."""
        if self._undecided:
            self._decide_undecided()  # completes no period: the frames join the pending ones
        pending, self._pending = self._pending, None
        self._held_frames = 0
        if pending is None:
            return [[] for _ in range(self._channels)]
        return self._emit(pending, pending["valid"].shape[0])

    def summary(self, channel: int) -> dict[str, dict[str, float]]:
        """Summary fractions per model for ``channel`` (needs ``keep_log``)."""
        assert self._logs is not None
        out = {s.key: summarise(s, self._logs[channel][s.key]) for s in self._specs}
        for key, mapper in self._maps.items():
            out[key] = mapper.trim_summary(channel, out[key])
        return out

    def transitions(self, channel: int) -> dict[str, list[dict[str, Any]]]:
        """Transitions per model for ``channel`` (needs ``keep_log``)."""
        assert self._logs is not None
        return {s.key: transitions(s, self._logs[channel][s.key]) for s in self._specs}

    def _emit(self, frames: dict[str, Any], k: int) -> list[list[dict[str, Any]]]:
        n_periods = frames["valid"].shape[0] // k
        first = self._next_period
        self._next_period += n_periods
        weights = frames["valid"].reshape(n_periods, k)
        results: list[list[dict[str, Any]]] = []
        for c in range(self._channels):
            silent = frames["silent"][c].reshape(n_periods, k)
            decided = {}
            for spec in self._specs:
                labels, conf, probs = (x[c] for x in frames[spec.key][:3])
                decided[spec.key] = _periods(
                    spec, labels.reshape(n_periods, k), conf.reshape(n_periods, k), weights,
                    probs.reshape(n_periods, k, -1), silent,
                )
            items = []
            for p in range(n_periods):
                item: dict[str, Any] = {"timestamp": (first + p) * self._period * FRAME_MS, "results": {}}
                for spec in self._specs:
                    best, mean_conf, _ = decided[spec.key]
                    item["results"][spec.key] = {"result": spec.output_labels[best[p]], "confidence": _r(mean_conf[p])}
                if self._raw:
                    item["raw"] = {
                        spec.key: {lab: _r(decided[spec.key][2][p, i]) for i, lab in enumerate(spec.labels)}
                        for spec in self._specs
                    }
                for key, mapper in self._maps.items():
                    counts, used = (x[c].reshape(n_periods, k)[p, -1] for x in frames[key][3:])
                    mapper.period(item["results"][key], item.get("raw", {}).get(key), counts, used)
                items.append(item)
            results.append(items)
        return results


def _cut(frames: dict[str, Any], lo: int, hi: int | None) -> dict[str, Any]:
    """Frames ``lo:hi`` of a frame dict (``valid`` is per frame, the rest per channel)."""
    out: dict[str, Any] = {"valid": frames["valid"][lo:hi], "silent": frames["silent"][:, lo:hi]}
    for key, value in frames.items():
        if key not in out:
            out[key] = tuple(x[:, lo:hi] for x in value)
    return out


def _join(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "valid": np.concatenate([a["valid"], b["valid"]]),
        "silent": np.concatenate([a["silent"], b["silent"]], axis=1),
    }
    for key, value in a.items():
        if key not in out:
            out[key] = tuple(np.concatenate([x, y], axis=1) for x, y in zip(value, b[key]))
    return out


async def aggregate(
    pairs: AsyncIterable[tuple[FrameBlock, FrameOutputs]], aggregator: Aggregator, channel: int = 0
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield ``channel``'s period results as soon as each period is complete, then the final partial one."""
    async for block, outputs in pairs:
        for item in aggregator.push(block, outputs)[channel]:
            yield item
    for item in aggregator.finish()[channel]:
        yield item
