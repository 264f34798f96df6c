"""SpeakerMap: who speaks, frame by frame, by online clustering of voice embeddings.

The SpeakerMap model (``kind="embedding"``, see :mod:`deeptone_async.spec`) gives every
64 ms frame an L2-normalised embedding of the ~2.1 s of audio ending at that frame. For
each stream (each channel of a file) a :class:`SpeakerTracker` turns those embeddings into
labels, causally, one frame after the other; the result for a frame depends only on the
audio up to its end, so ``process_file`` gives exactly what ``process_stream`` gives on the
same audio (there is no offline refinement).

Labels, for each frame, in this order:

1. ``silence`` where the volume gate marked the frame silent;
2. ``no_speech`` where the speech detector's speech probability is below 0.5;
3. a speaker: a voice signature's ``speaker_id`` (:mod:`deeptone_async.voice_signatures`),
   or ``speaker_1``, ``speaker_2``, ... numbered in order of first appearance;
4. ``unknown`` where the map cannot yet tell (see below).

The clustering (parameters in :class:`Clustering`, tuned values in the model's spec.json):

* An embedding is *used* only on a speech frame whose receptive field holds at least
  ``min_window_speech`` speech frames (the speech detector's), so pauses and the first
  half second of a stream do not make voices.
* A used embedding whose cosine similarity to the nearest speaker is at least ``assign``
  is a vote for that speaker; below ``new`` to every speaker, a vote for a new speaker;
  in between, no vote.
* Minimum turn: the label changes to another known speaker only after ``min_turn_frames``
  votes for it in a row (0.5 s by default), and a new speaker is created only after
  ``min_new_frames`` votes in a row (1 s); until then the frames keep the current
  speaker's label (``unknown`` before the first speaker). So one speaker's label does not
  flip back and forth, at the price of labelling the first ~0.5-1 s of a new turn with
  the previous speaker (and with the embedding's 2.1 s receptive field, a change is seen
  some 0.5-1 s after it happens).
* Only frames that vote for the current speaker update its centroid (a running mean of
  its embeddings; past ``centroid_frames`` frames it becomes a moving average, so it
  follows slow changes of a voice and its weight stays bounded).

Memory per stream is bounded: at most ``max_speakers`` numbered speakers (the spec's
labels ``speaker_1..N``) plus the signatures' speakers, one ``dim``-float centroid each,
and the speech flags of one receptive field. Past the cap, a voice that matches no
speaker gets ``unknown`` (it is never merged into another speaker's centroid).

Hard cases: overlapping speech gives embeddings between the voices; the map keeps the
current speaker when the mix still resembles it, otherwise says ``unknown`` (no vote) or,
for a long overlap unlike anyone, may create a speaker. Music under speech moves the
embeddings away from the clean voice; frames the speech detector calls music get
``no_speech`` and do not feed the centroids.

Each result of ``speaker-map`` carries ``speaker_count``: how many distinct speakers the
map has reported so far in the stream (signature speakers included once heard). Raw
values: per speaker heard so far, the mean cosine similarity of the period's frames to
that speaker's voice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .aggregator import SPEECH_DECISION
from .audio import Float32
from .errors import ParameterError
from .spec import ModelSpec

__all__ = ["Clustering", "SpeakerMapper", "SpeakerTracker", "is_speaker_map", "with_known_speakers"]

IntArray = npt.NDArray[np.int64]
_NEW = -2  # a vote for a new speaker
_NONE = -1
_WARNED: set[tuple[Any, Any]] = set()
log = logging.getLogger("deeptone_async")
#: Frames between refreshes of the centroids the similarities are computed with (0.5 s).
REFRESH_FRAMES = 8


def is_speaker_map(spec: ModelSpec) -> bool:
    """Whether ``spec`` is decided by the speaker map rather than by class probabilities."""
    return spec.kind == "embedding"


@dataclass(frozen=True)
class Clustering:
    """Parameters of the online clustering (see the module docstring).

    Attributes:
        assign: cosine similarity at or above which a frame votes for a speaker.
        new: similarity to every speaker below which a frame votes for a new speaker.
        min_window_speech: speech frames the embedding's receptive field must hold.
        min_turn_frames: votes in a row before the label moves to another speaker.
        min_new_frames: votes in a row before a new speaker is created.
        centroid_frames: frames after which a centroid becomes a moving average.
    """

    assign: float = 0.6
    new: float = 0.4
    min_window_speech: int = 12
    min_turn_frames: int = 8
    min_new_frames: int = 16
    centroid_frames: int = 2000

    @classmethod
    def of(cls, spec: ModelSpec) -> Clustering:
        """The parameters in ``spec.extra["clustering"]`` (defaults for missing ones;
        ``assign`` defaults to the spec's ``unknown_threshold``). Logs a warning, once per
        version, when they were tuned (``tuned_for_version``) for another embedding version:
        similarities of another embedding need other thresholds."""
        given = dict(spec.extra.get("clustering") or {})
        tuned = given.get("tuned_for_version")
        if tuned is not None and tuned != spec.extra.get("version") and (tuned, spec.extra.get("version")) not in _WARNED:
            _WARNED.add((tuned, spec.extra.get("version")))
            log.warning(
                "SpeakerMap's clustering was tuned for embedding version %s but the model is version %s: "
                "rerun python -m training.diarization --tune", tuned, spec.extra.get("version"),
            )
        if "assign" not in given and spec.unknown_threshold is not None:
            given["assign"] = spec.unknown_threshold
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in given.items() if k in names})


def with_known_speakers(spec: ModelSpec, known: Mapping[str, Float32]) -> ModelSpec:
    """A copy of the SpeakerMap ``spec`` for one call: the signatures' speaker ids come
    first among its labels, then ``speaker_1..N``; ``extra["known"]`` holds their voices.

    Raises:
        ParameterError: a speaker id that is empty, not a string, or clashes with a label
            the map reports itself (``speaker_3``, ``unknown``, ...).
    """
    reserved = set(spec.output_labels)
    for sid in known:
        if not isinstance(sid, str) or not sid:
            raise ParameterError(f"a voice signature's speaker_id must be a non-empty string, got {sid!r}")
        if sid in reserved:
            raise ParameterError(f"speaker_id {sid!r} clashes with a label SpeakerMap reports itself; pick another")
    extra = {**spec.extra, "known": {k: np.asarray(v, np.float32) for k, v in known.items()}}
    return dataclasses.replace(spec, labels=(*known, *spec.labels), extra=extra)


class SpeakerTracker:
    """Online, causal clustering of one channel's frame embeddings (one per stream).

    Centroids used for the similarities are refreshed every :data:`REFRESH_FRAMES` frames
    of stream time (and when a speaker is created), so similarities are computed a segment
    at a time; the refresh points depend only on the frame index, so any chunking of the
    audio gives the same labels.

    Args:
        spec: the SpeakerMap spec (from :func:`with_known_speakers` when signatures name
            known speakers); its labels are the slots: known speakers, then the numbered.
        clustering: the parameters (default: the spec's).
    """

    def __init__(self, spec: ModelSpec, clustering: Clustering | None = None) -> None:
        self.cfg = clustering or Clustering.of(spec)
        known: Mapping[str, Float32] = spec.extra.get("known") or {}
        self.n_known = len(known)
        self.cap = len(spec.labels) - self.n_known
        dim = int(spec.extra["dim"])
        slots = len(spec.labels)
        self._sum = np.zeros((slots, dim), np.float64)
        self._cent = np.zeros((slots, dim), np.float32)  # normalised, as of the last refresh
        self._weight = np.zeros(slots, np.float64)
        self._dirty: set[int] = set()
        for i, vec in enumerate(known.values()):
            self._sum[i] = np.asarray(vec, np.float64) * min(self.cfg.centroid_frames, 100)
            self._weight[i] = min(self.cfg.centroid_frames, 100)
            self._dirty.add(i)
        self._refresh()
        self.numbered = 0
        self.heard = [False] * slots
        self.count = 0
        self.current = _NONE
        self._pending = _NONE
        self._pending_len = 0
        self._pending_sum = np.zeros(dim, np.float64)
        self._frame = 0  # frames seen so far
        self._window = spec.context_frames + 1
        self._speech_hist = np.zeros(self._window - 1, np.int64)
        out = spec.output_labels
        self._unknown = out.index("unknown")
        self._no_speech = out.index("no_speech")
        self._silence = out.index("silence")

    @property
    def active(self) -> int:
        """Slots in use: the known speakers and the numbered ones created so far."""
        return self.n_known + self.numbered

    def _refresh(self) -> None:
        """Cap the weights of the centroids that moved and renormalise them."""
        cap = self.cfg.centroid_frames
        for slot in self._dirty:
            if self._weight[slot] > cap:
                self._sum[slot] *= cap / self._weight[slot]
                self._weight[slot] = cap
            norm = float(np.linalg.norm(self._sum[slot]))
            self._cent[slot] = (self._sum[slot] / max(norm, 1e-12)).astype(np.float32)
        self._dirty.clear()

    def _update(self, slot: int, emb: Float32) -> None:
        self._sum[slot] += emb
        self._weight[slot] += 1.0
        self._dirty.add(slot)

    def _vote(self, sims: list[float], usable: bool) -> int:
        if not usable:
            return _NONE
        if not sims:
            return _NEW
        best = max(range(len(sims)), key=sims.__getitem__)
        if sims[best] >= self.cfg.assign:
            return best
        if sims[best] < self.cfg.new:
            return _NEW
        return _NONE

    def _advance(self, vote: int, emb: Float32) -> bool:
        """Move the current speaker by one speech frame's vote; whether a speaker was created."""
        cfg = self.cfg
        if vote == _NONE:
            return False
        if vote == self.current:
            self._pending, self._pending_len = _NONE, 0
            self._update(vote, emb)
            return False
        if vote == self._pending:
            self._pending_len += 1
        else:
            self._pending, self._pending_len = vote, 1
            self._pending_sum[:] = 0.0
        if vote == _NEW:
            self._pending_sum += emb
            if self._pending_len < cfg.min_new_frames:
                return False
            created = self.numbered < self.cap
            if created:
                slot = self.n_known + self.numbered
                self.numbered += 1
                self._sum[slot] = self._pending_sum
                self._weight[slot] = float(self._pending_len)
                self._dirty.add(slot)
                self.current = slot
            else:  # past the cap: this voice is nobody we may name
                self.current = _NONE
            self._pending, self._pending_len = _NONE, 0
            return created
        if self._pending_len >= cfg.min_turn_frames or self.current == _NONE:
            self.current = vote
            self._pending, self._pending_len = _NONE, 0
            self._update(vote, emb)
        return False

    def push(
        self, emb: Float32, silent: npt.NDArray[np.bool_], speech: Float32 | None
    ) -> tuple[IntArray, Float32, Float32, IntArray, IntArray]:
        """Decide ``n`` frames: ``emb`` ``(n, dim)``, ``silent`` and ``speech`` ``(n,)``.

        Returns label indices into the spec's ``output_labels``, confidences, scores
        ``(n, len(labels))`` (similarity to each speaker's voice, 0 for slots not in use),
        and after each frame the speaker count and the slots in use.
        """
        n = emb.shape[0]
        is_speech = np.ones(n, bool) if speech is None else speech >= SPEECH_DECISION
        is_speech &= ~silent
        w = self._window
        flags = np.concatenate([self._speech_hist, is_speech.astype(np.int64)])  # (w - 1 + n,)
        csum = np.concatenate([[0], np.cumsum(flags)])
        usable = ((csum[w:] - csum[:n]) >= self.cfg.min_window_speech).tolist()
        self._speech_hist = flags[n:]
        labels = np.empty(n, np.int64)
        conf = np.zeros(n, np.float32)
        scores = np.zeros((n, self._cent.shape[0]), np.float32)
        counts = np.empty(n, np.int64)
        used = np.empty(n, np.int64)
        sil = silent.tolist()
        spc = is_speech.tolist()
        no_speech_conf = (1.0 - speech) if speech is not None else np.ones(n, np.float32)
        t = 0
        while t < n:
            end = min(n, t + REFRESH_FRAMES - self._frame % REFRESH_FRAMES)
            act = self.active
            block = emb[t:end] @ self._cent[:act].T  # (end - t, act)
            scores[t:end, :act] = block
            rows = block.tolist()
            stop = end
            for j in range(t, end):
                sims = rows[j - t]
                if sil[j]:
                    labels[j], conf[j] = self._silence, 1.0
                elif not spc[j]:
                    labels[j], conf[j] = self._no_speech, no_speech_conf[j]
                else:
                    created = self._advance(self._vote(sims, usable[j]), emb[j])
                    cur = self.current
                    if cur == _NONE:
                        labels[j], conf[j] = self._unknown, max(0.0, max(sims, default=0.0))
                    else:
                        if created:
                            self._refresh()
                            sim = float(self._cent[cur] @ emb[j])
                            scores[j, cur] = sim
                        else:
                            sim = sims[cur]
                        labels[j], conf[j] = cur, min(1.0, max(0.0, sim))
                        if not self.heard[cur]:
                            self.heard[cur] = True
                            self.count += 1
                    if created:  # the next frames compare with the new speaker too
                        stop = j + 1
                counts[j] = self.count
                used[j] = self.active
                if stop == j + 1:
                    break
            self._frame += stop - t
            if self._frame % REFRESH_FRAMES == 0:
                self._refresh()
            t = stop
        return labels, conf, scores, counts, used


class SpeakerMapper:
    """The trackers of every channel for one SpeakerMap spec (the aggregator's hook)."""

    def __init__(self, spec: ModelSpec, channels: int) -> None:
        self.spec = spec
        self.trackers = [SpeakerTracker(spec) for _ in range(channels)]

    def push(
        self, emb: Float32, silent: npt.NDArray[np.bool_], speech: Float32 | None
    ) -> tuple[IntArray, Float32, Float32, IntArray, IntArray]:
        """Every channel's frames: ``emb`` ``(C, n, dim)``; the outputs stacked ``(C, n, ...)``."""
        outs = [t.push(emb[c], silent[c], None if speech is None else speech[c]) for c, t in enumerate(self.trackers)]
        labels, conf, scores, counts, used = (np.stack(x) for x in zip(*outs))
        return labels, conf, scores, counts, used

    def period(self, result: dict[str, Any], raw: dict[str, float] | None, count: int, used: int) -> None:
        """Add ``speaker_count`` to a period's result and keep only the raw values of the
        ``used`` speakers in use at the period's end (in place)."""
        result["speaker_count"] = int(count)
        if raw is not None:
            for label in self.spec.labels[used:]:
                raw.pop(label, None)

    def trim_summary(self, channel: int, summary: dict[str, float]) -> dict[str, float]:
        """The summary without the numbered speakers that never appeared (all 0)."""
        unused = set(self.spec.labels[self.trackers[channel].active :])
        return {k: v for k, v in summary.items() if k.removesuffix("_fraction") not in unused}
