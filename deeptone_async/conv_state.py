"""Log-mel models that carry their convolution state between calls (issue 21).

A bundled ``logmel`` / ``embedding`` model may come with a *stream graph*
(``spec.onnx_stream``, written by ``python -m training.stream_graph``): the same network,
whose every look-back (dilated convolution, pooling window) reads the last steps of its
input from a state tensor passed in and handed back. A call then computes only its new
frames, instead of the ``context_frames`` frames of context :class:`LogMelRunner
<deeptone_async.inference.LogMelRunner>` prepends to every call (Gender: 47 frames of context
for a 16-frame period).

Results equal the context path's up to float rounding: each stream starts from the states
the graph reaches over ``context_frames`` frames of ``SILENCE_FLOOR`` rows (computed once per
model at load), which is the history the context path starts a stream with, and the graph
is checked against ``model.onnx`` when it is written. A stream graph whose recorded
``model.onnx`` hash differs from the file's (the model was re-exported and the command not
rerun) is not used: the model runs on the context path, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .audio import Float32
from .errors import ModelError
from .features import N_MELS, SILENCE_FLOOR, SUBFRAMES
from .spec import ModelSpec

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["ConvStateRunner", "StreamGraph", "load_stream_runner"]

META_KEY = "deeptone_stream"
#: One stream's states, packed in one vector per dtype (:meth:`StreamGraph.run` unpacks them).
States = tuple[np.ndarray, ...]
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class StreamGraph:
    """A stream graph's session, its state layout and its initial (silence) states.

    Raises:
        ModelError: the graph's inputs and outputs are not a stream graph's.
    """

    def __init__(self, session: ort.InferenceSession, context_frames: int) -> None:
        self._session = session
        ins, outs = session.get_inputs(), session.get_outputs()
        if len(ins[0].shape) != 3 or len(ins) != len(outs):
            raise ModelError("a stream graph takes (batch, rows, 64) rows and states, and gives one output per state")
        self._input = ins[0].name
        self._names = [i.name for i in ins[1:]]
        self._outputs = [outs[0].name] + [f"{n}_out" for n in self._names]
        if sorted(self._outputs[1:]) != sorted(o.name for o in outs[1:]):
            raise ModelError(f"stream graph states {self._names} do not match its outputs {[o.name for o in outs]}")
        try:
            shapes = [tuple(int(d) for d in i.shape[1:]) for i in ins[1:]]
            dtypes = [_DTYPES[i.type] for i in ins[1:]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"stream graph state of unsupported type or shape: {exc!r}") from exc
        # a stream's states travel packed, one vector per dtype: stacking and splitting B
        # streams is then one array operation per state and per stream, not per both
        self._shapes = shapes
        self._groups: list[tuple[type, list[int], list[int]]] = []  # dtype, states, offsets
        for dtype in dict.fromkeys(dtypes):
            members = [j for j, d in enumerate(dtypes) if d is dtype]
            offsets = [int(o) for o in np.cumsum([0, *(int(np.prod(shapes[j])) for j in members)])]
            self._groups.append((dtype, members, offsets))
        zero: States = tuple(np.zeros(off[-1], dt) for dt, _, off in self._groups)
        self.initial: States = zero
        if context_frames and self._names:
            silence = np.full((1, SUBFRAMES * context_frames, N_MELS), SILENCE_FLOOR, np.float32)
            _, (self.initial,) = self.run(silence, [zero])

    def run(self, rows: Float32, states: Sequence[States]) -> tuple[np.ndarray, list[States]]:
        """Outputs for ``rows`` ``(B, 4n, 64)`` (new rows only) of ``B`` streams whose states
        are ``states`` (each packed, as :attr:`initial`); returns the output and each
        stream's next states. Blocks."""
        batch = len(states)
        feed: dict[str, np.ndarray] = {self._input: rows}
        for g, (_, members, offsets) in enumerate(self._groups):
            stacked = states[0][g][None] if batch == 1 else np.stack([st[g] for st in states])
            for k, j in enumerate(members):
                part = stacked[:, offsets[k] : offsets[k + 1]]
                feed[self._names[j]] = np.ascontiguousarray(part).reshape(batch, *self._shapes[j])
        out, *new = self._session.run(self._outputs, feed)
        packed = [np.concatenate([new[j].reshape(batch, -1) for j in members], axis=1) for _, members, _ in self._groups]
        if batch == 1:
            return out, [tuple(p[0] for p in packed)]
        return out, [tuple(p[i].copy() for p in packed) for i in range(batch)]  # each stream keeps only its own


@dataclass
class _ConvState:
    """One stream's convolution states (packed); replaced, never written in place."""

    arrays: States


class ConvStateRunner:
    """Runs a ``logmel`` / ``embedding`` model's stream graph: new rows plus carried states."""

    def __init__(self, spec: ModelSpec, graph: StreamGraph) -> None:
        self.spec = spec
        self._graph = graph
        self._width = int(spec.extra.get("dim", len(spec.labels)))  # "embedding": its dim

    @property
    def needs_features(self) -> bool:
        return True

    def new_state(self) -> _ConvState:
        return _ConvState(self._graph.initial)

    def run(self, frames: Float32, features: Float32 | None, states: Sequence[object]) -> Float32:
        """Probabilities (or embeddings) ``(B, n, width)``; updates ``states`` in place.

        Raises:
            ModelError: no features, or the graph gave an unexpected shape.
        """
        if features is None:
            raise ModelError(f"model {self.spec.name!r} needs log-mel features")
        sts = [s for s in states if isinstance(s, _ConvState)]
        batch, n = frames.shape[0], frames.shape[1]
        if n == 0:
            return np.zeros((batch, 0, self._width), np.float32)
        probs, new = self._graph.run(features, [s.arrays for s in sts])
        if probs.shape != (batch, n, self._width):
            raise ModelError(f"model {self.spec.name!r} returned shape {probs.shape}, expected {(batch, n, self._width)}")
        for s, a in zip(sts, new):
            s.arrays = a
        out: Float32 = probs.astype(np.float32, copy=False)
        return out


def load_stream_runner(spec: ModelSpec, session: ort.InferenceSession) -> ConvStateRunner | None:
    """The runner for ``spec``'s stream graph (its session ``session``), or ``None`` when
    the graph was built from another ``model.onnx`` than ``spec.onnx`` (warns).

    Raises:
        ModelError: the graph is not a stream graph or ``spec.onnx`` cannot be read.
    """
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    try:
        recorded = json.loads(meta)["source_sha256"] if meta else None
        actual = hashlib.sha256(spec.onnx.read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model {spec.name!r}: cannot check its stream graph: {exc!r}") from exc
    if recorded != actual:
        warnings.warn(
            f"model {spec.name!r}: {spec.onnx_stream} was not built from {spec.onnx} "
            "(rerun python -m training.stream_graph); running it on the context path",
            stacklevel=2,
        )
        return None
    return ConvStateRunner(spec, StreamGraph(session, spec.context_frames))
