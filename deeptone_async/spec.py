"""Model specs: what the engine needs to know to run an ONNX model.

A spec is data, not code: a bundled model is a folder ``deeptone_async/models/<key>/`` with
``model.onnx``, ``spec.json`` and ``card.md``; a user's model is a :class:`ModelSpec` handed
to :meth:`deeptone_async.Deeptone.register_model`. The ``kind`` names the runner that feeds
the model (see :mod:`deeptone_async.inference`):

``"logmel"``
    Input ``features``: float32 ``(batch, 4 * (context_frames + n), 64)`` log-mel rows from
    :mod:`deeptone_async.features`; output: float32 ``(batch, n, len(labels))`` class
    probabilities, one row per 64 ms frame. The model must be *causal and valid*: output
    frame ``j`` may depend only on input rows ``4 * j`` to ``4 * (j + context_frames + 1) - 1``
    (its receptive field is ``context_frames + 1`` frames). The engine keeps the last
    ``context_frames`` frames of each stream so any chunking gives the same result.
``"silero_seq"``
    Silero VAD (v5 or v6) rebuilt for whole sequences (``windows`` ``(batch, steps, 576)``,
    ``state`` ``(2, batch, 128)`` -> ``speech`` ``(batch, steps)``, ``stateN``), as
    written by ``training/silero_seq.py``: two 512-sample steps per frame, all steps of a
    block in one call, the recurrent state kept per stream; ``onnx_8k`` optionally names
    the 8 kHz branch's graph (windows of 288), run for 8 kHz input. The bundled Vad.
``"silero"``
    The Silero VAD v5 / v6 graph as published (``input``, ``state``, ``sr`` -> ``output``,
    ``stateN``): the same steps, one ONNX call each.
``"embedding"``
    Fed like ``"logmel"``, but the output is ``(batch, n, extra["dim"])`` float32, an
    L2-normalised voice embedding per frame; the labels are speaker slots that
    :mod:`deeptone_async.speaker_map` fills per stream (SpeakerMap). In ``spec.json``,
    ``"embedding"`` names a JSON file with ``dim`` and ``version`` and ``"clustering"``
    holds the map's parameters; both land in :attr:`ModelSpec.extra`.

A ``"logmel"`` or ``"embedding"`` model may also name ``onnx_stream``: the same network as a
stream graph that carries its convolution states between calls instead of recomputing its
context (written by ``python -m training.stream_graph``; run by
:mod:`deeptone_async.conv_state`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .multilabel import MultiLabel

__all__ = ["ModelSpec", "RUNNER_KINDS"]

RUNNER_KINDS = ("logmel", "silero_seq", "silero", "embedding")

_ALLOWED_KEYS = {
    "name",
    "key",
    "kind",
    "labels",
    "onnx",
    "onnx_8k",
    "onnx_stream",
    "receptive_field_ms",
    "context_frames",
    "unknown_threshold",
    "voice",
    "speech_label",
    "card",
    "description",
    "embedding",
    "clustering",
    "multi_label",
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to run one model.

    Attributes:
        name: handle name on ``engine.models`` (``"Gender"``).
        key: output key in results (``"gender"``).
        kind: runner kind, one of :data:`RUNNER_KINDS`.
        labels: the model's classes in output order; these are the raw-value keys.
        onnx: path of the ONNX file.
        receptive_field_ms: audio the model needs before its results are reliable.
        context_frames: past 64 ms frames fed with each frame (``"logmel"`` models).
        unknown_threshold: a frame whose top probability is below this is ``unknown``;
            ``None`` for models without an ``unknown`` label.
        voice: a voice model says ``no_speech`` wherever the speech detector says the audio
            is not speech.
        speech_label: for a model that can serve as the speech detector, the label whose
            probability is the speech probability.
        card: path of the model card (markdown), if any.
        description: one line for listings.
        multi_label: for a model with one independent score per label (AudioEvent), its
            thresholds and decision rule (:mod:`deeptone_async.multilabel`); else ``None``.
        onnx_8k: for ``"silero_seq"``: the 8 kHz branch's graph, run for 8 kHz input
            (:mod:`deeptone_async.narrowband`); ``None``: 8 kHz input takes the 16 kHz graph.
        onnx_stream: for ``"logmel"`` / ``"embedding"``: the stream graph that carries the
            convolution states (:mod:`deeptone_async.conv_state`); ``None``: the context path.
        extra: for ``"embedding"`` models, the embedding's ``dim`` and ``version`` and the
            map's ``clustering`` parameters (:mod:`deeptone_async.speaker_map`); a call
            with voice signatures adds ``known`` (speaker id -> voice).
    """

    name: str
    key: str
    kind: str
    labels: tuple[str, ...]
    onnx: Path
    receptive_field_ms: int
    context_frames: int = 0
    unknown_threshold: float | None = None
    voice: bool = False
    speech_label: str | None = None
    card: Path | None = None
    description: str = ""
    multi_label: MultiLabel | None = None
    onnx_8k: Path | None = None
    onnx_stream: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in RUNNER_KINDS:
            raise ModelError(f"model {self.name!r}: kind must be one of {RUNNER_KINDS}, got {self.kind!r}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ModelError(f"model {self.name!r}: needs at least two distinct labels, got {self.labels!r}")
        reserved = {"silence", "no_speech", "unknown"} & set(self.labels)
        if self.voice and reserved:
            raise ModelError(f"voice model {self.name!r}: labels {sorted(reserved)} are added by the engine")
        if self.speech_label is not None and self.speech_label not in self.labels:
            raise ModelError(f"model {self.name!r}: speech_label {self.speech_label!r} is not one of its labels")
        if self.context_frames < 0:
            raise ModelError(f"model {self.name!r}: context_frames must be >= 0")
        if self.unknown_threshold is not None and not 0.0 <= self.unknown_threshold <= 1.0:
            raise ModelError(f"model {self.name!r}: unknown_threshold must lie in [0, 1]")
        if self.multi_label is not None:
            self.multi_label.check(len(self.labels), self.name)
        if self.onnx_stream is not None and self.kind not in ("logmel", "embedding"):
            raise ModelError(f"model {self.name!r}: onnx_stream is for logmel and embedding models")
        if self.kind == "embedding" and not (isinstance(self.extra.get("dim"), int) and isinstance(self.extra.get("version"), int)):
            raise ModelError(f"embedding model {self.name!r}: extra must hold the int 'dim' and 'version' of its embedding")

    @property
    def output_labels(self) -> tuple[str, ...]:
        """Every label the engine can report for this model, in a stable order."""
        out = list(self.labels)
        if self.unknown_threshold is not None:
            out.append("unknown")
        if self.voice:
            out.append("no_speech")
        out.append("silence")
        return tuple(out)

    @classmethod
    def from_folder(cls, folder: Path) -> ModelSpec:
        """Load ``folder/spec.json``; relative paths in it are taken from ``folder``.

        Raises:
            ModelError: the file is missing, is not JSON, or holds unknown or bad fields.
        """
        path = folder / "spec.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model spec {path}: {exc}") from exc
        unknown = set(data) - _ALLOWED_KEYS
        if unknown:
            raise ModelError(f"{path}: unknown fields {sorted(unknown)}")
        extra: dict[str, Any] = {}
        if data.get("embedding"):
            try:
                emb = json.loads((folder / data["embedding"]).read_text(encoding="utf-8"))
                extra = {"dim": int(emb["dim"]), "version": int(emb["version"]), "clustering": data.get("clustering", {})}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"{path}: cannot read its embedding file: {exc!r}") from exc
        try:
            return cls(
                name=data["name"],
                key=data["key"],
                kind=data["kind"],
                labels=tuple(data["labels"]),
                onnx=folder / data.get("onnx", "model.onnx"),
                receptive_field_ms=int(data["receptive_field_ms"]),
                context_frames=int(data.get("context_frames", 0)),
                unknown_threshold=data.get("unknown_threshold"),
                voice=bool(data.get("voice", False)),
                speech_label=data.get("speech_label"),
                card=(folder / data["card"]) if data.get("card") else None,
                description=data.get("description", ""),
                onnx_8k=(folder / data["onnx_8k"]) if data.get("onnx_8k") else None,
                onnx_stream=(folder / data["onnx_stream"]) if data.get("onnx_stream") else None,
                extra=extra,
                multi_label=MultiLabel.from_json(data["multi_label"], data["labels"], data["name"])
                if "multi_label" in data else None,
            )
        except KeyError as exc:
            raise ModelError(f"{path}: missing field {exc.args[0]!r}") from exc
