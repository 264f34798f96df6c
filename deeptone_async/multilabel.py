"""Decisions for multi-label models: one independent score per class (AudioEvent).

A multi-label model's output row holds one sigmoid score per label; several may be high at
once (laughter over speech, a cough over music) and they need not add up to 1. Its spec has a
``multi_label`` entry (``spec.json``)::

    "multi_label": {
      "thresholds": {"pos_human_sounds": 0.5, ..., "noise": 0.5},   # one per label
      "background_labels": ["speech", "music", "noise"]              # optional, in priority order
    }

Frame decision (:meth:`MultiLabel.decide`), on the ratio ``score / threshold`` of each label:

1. an *event* label (any label not in ``background_labels``) at or above its threshold: the
   one with the highest ratio wins, whatever the background labels say;
2. otherwise the first background label, in ``background_labels`` order, at or above its
   threshold (AudioEvent: speech over music over noise, as the Speech model decides);
3. otherwise the background label with the highest ratio (every label's, when there are no
   background labels).

The frame's confidence is the winning label's score. Raw values stay the independent scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ModelError

if TYPE_CHECKING:  # numpy is imported where decisions are made: reading specs stays light
    import numpy as np
    import numpy.typing as npt

    Float32 = npt.NDArray[np.float32]
    IntArray = npt.NDArray[np.int64]

__all__ = ["MultiLabel"]


@dataclass(frozen=True)
class MultiLabel:
    """The decision rule of a multi-label model.

    Attributes:
        thresholds: one threshold in (0, 1] per label, in the spec's label order.
        background: indices of the background labels, in priority order (may be empty).
    """

    thresholds: tuple[float, ...]
    background: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: Any, labels: Sequence[str], name: str) -> MultiLabel:
        """Parse a spec's ``multi_label`` entry for a model with ``labels``.

        Raises:
            ModelError: not a mapping, a threshold missing, out of (0, 1] or for an unknown
                label, or an unknown or repeated background label.
        """
        if not isinstance(data, Mapping):
            raise ModelError(f"model {name!r}: multi_label must be an object with thresholds")
        th = data.get("thresholds")
        if not isinstance(th, Mapping) or set(th) != set(labels):
            raise ModelError(f"model {name!r}: multi_label.thresholds must give one threshold per label {list(labels)}")
        extra = set(data) - {"thresholds", "background_labels"}
        if extra:
            raise ModelError(f"model {name!r}: unknown multi_label fields {sorted(extra)}")
        bg = list(data.get("background_labels", []))
        if len(set(bg)) != len(bg) or not set(bg) <= set(labels):
            raise ModelError(f"model {name!r}: multi_label.background_labels must be distinct labels of the model")
        try:
            values = tuple(float(th[lab]) for lab in labels)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model {name!r}: multi_label thresholds must be numbers") from exc
        out = cls(values, tuple(list(labels).index(b) for b in bg))
        out.check(len(labels), name)
        return out

    def check(self, n_labels: int, name: str) -> None:
        """Raises ModelError unless there is one threshold in (0, 1] per label and the
        background indices are distinct labels."""
        if len(self.thresholds) != n_labels or not all(0.0 < t <= 1.0 for t in self.thresholds):
            raise ModelError(f"model {name!r}: multi_label needs {n_labels} thresholds in (0, 1]")
        if len(set(self.background)) != len(self.background) or not all(0 <= i < n_labels for i in self.background):
            raise ModelError(f"model {name!r}: bad multi_label background labels {self.background}")

    def to_json(self, labels: Sequence[str]) -> dict[str, Any]:
        """The ``spec.json`` form."""
        return {"thresholds": dict(zip(labels, self.thresholds)),
                "background_labels": [labels[i] for i in self.background]}

    def decide(self, probs: Float32) -> tuple[IntArray, Float32]:
        """Label index and confidence per row of ``probs`` ``(..., K)`` (rule in the module
        docstring). Pure function."""
        import numpy as np

        ratio = probs / np.asarray(self.thresholds, np.float32)
        k = probs.shape[-1]
        is_bg = np.zeros(k, bool)
        is_bg[list(self.background)] = True
        if not is_bg.any():
            labels: IntArray = ratio.argmax(axis=-1).astype(np.int64)
        else:
            ev_ratio = np.where(is_bg, -np.inf, ratio)
            bg_ratio = np.where(is_bg, ratio, -np.inf)
            labels = bg_ratio.argmax(axis=-1).astype(np.int64)
            for i in reversed(self.background):  # the first background label above its threshold
                labels[ratio[..., i] >= 1.0] = i
            if not is_bg.all():
                ev = ev_ratio.argmax(axis=-1)
                on = np.take_along_axis(ev_ratio, ev[..., None], axis=-1)[..., 0] >= 1.0
                labels[on] = ev[on]
        conf: Float32 = np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0].astype(np.float32)
        return labels, conf
