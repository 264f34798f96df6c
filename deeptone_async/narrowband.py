"""Silero's 8 kHz branch for 8 kHz input: the Vad on telephone audio.

Silero VAD has two sets of weights, one for 16 kHz and one for 8 kHz audio. The engine
resamples every input to 16 kHz for its frames, and Silero's 16 kHz branch on upsampled
telephone audio (nothing above 4 kHz) loses speech that the 8 kHz branch keeps. So a stream
whose input rate is 8 kHz (``process_audio_bytes(rate_in=8000)``, ``process_audio_chunk``
at 8000, an 8 kHz file, ``process_stream`` over a source whose format says 8000, the
server's ``sample_rate=8000``) runs the 8 kHz branch of the bundled Vad
(``models/vad/model_8k.onnx``, written by ``training/silero_seq.py`` beside the 16 kHz
``model.onnx``); every other model, and the Vad at any other rate, sees the 16 kHz frames
as before.

How the 8 kHz audio reaches the Vad: the input rate travels with each stream's state
(:meth:`deeptone_async.inference.InferencePlan.new_stream` takes it), and the runner takes
every other sample of the stream's 16 kHz frames (:func:`narrow_frames`). The frames are
the input upsampled 2x by soxr's linear-phase filter, whose even output samples are the
input samples themselves, low-passed at the filter's cut-off (about 3.7 kHz, above the
3.4 kHz of a phone line): no delay, no state, and a 64 ms frame is exactly two 8 kHz steps
of 256 samples, so frame timing, block boundaries and cross-stream batching stay as at
16 kHz. The probabilities are those of the published graph at ``sr=8000`` on those samples
(to float rounding), and close to it on the original ones (``tests/test_vad_8k.py``: mean
difference under 0.03 on speech, 95% of the decisions the same). Nothing blocks here but the ONNX call (run it off the event loop, as the engine
does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .audio import Float32
from .features import FRAME_SAMPLES, SAMPLE_RATE

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["NARROW", "NARROW_RATE", "WIDE", "SeqBranch", "narrow_frames", "seq_speech", "speech_by_rate"]

#: Input rate whose streams run the Vad's 8 kHz branch.
NARROW_RATE = 8_000


@dataclass(frozen=True)
class SeqBranch:
    """One branch of a Silero sequence graph: samples per 32 ms step, and context before it."""

    rate: int
    step: int
    context: int

    @property
    def frame(self) -> int:
        """Samples of one 64 ms frame at this branch's rate."""
        return FRAME_SAMPLES * self.rate // SAMPLE_RATE


WIDE = SeqBranch(SAMPLE_RATE, 512, 64)
NARROW = SeqBranch(NARROW_RATE, 256, 32)


class SeqState(Protocol):
    """A stream's Silero state: LSTM ``(2, 128)``, the samples before the next step, its input rate."""

    rnn: Float32
    context: Float32
    rate: int


def narrow_frames(frames: Float32) -> Float32:
    """``(B, n, 1024)`` 16 kHz frames of 8 kHz input -> ``(B, n, 512)`` 8 kHz frames (see the module docstring)."""
    return frames[..., ::2]


def seq_speech(session: ort.InferenceSession, frames: Float32, states: Sequence[SeqState], branch: SeqBranch) -> Float32:
    """Speech probability per step ``(B, 2n)`` of ``frames`` ``(B, n, branch.frame)``, one call.

    Each stream's step windows start with its stored context; its LSTM state and context
    are updated in place.
    """
    batch, n = frames.shape[0], frames.shape[1]
    ctx = branch.context
    joined = np.empty((batch, ctx + n * branch.frame), np.float32)
    joined[:, :ctx] = np.stack([s.context[-ctx:] for s in states])
    joined[:, ctx:] = frames.reshape(batch, n * branch.frame)
    view = np.lib.stride_tricks.sliding_window_view(joined, ctx + branch.step, axis=1)
    windows = np.ascontiguousarray(view[:, :: branch.step])  # (B, 2n, step + context)
    rnn = np.stack([s.rnn for s in states], axis=1)  # (2, B, 128)
    speech, rnn = session.run(None, {"windows": windows, "state": rnn})
    for i, s in enumerate(states):
        s.rnn = np.ascontiguousarray(rnn[:, i])
        s.context = joined[i, -ctx:].copy()
    out: Float32 = speech
    return out


def speech_by_rate(
    wide: ort.InferenceSession, narrow: ort.InferenceSession | None, frames: Float32, states: Sequence[SeqState]
) -> Float32:
    """Speech probability per frame ``(B, n)``: the mean of each frame's two steps, from the
    8 kHz branch (``narrow``) for the streams whose input rate is :data:`NARROW_RATE`, from
    the 16 kHz branch for the others (and for all when ``narrow`` is None). A batch that
    mixes both makes one call per branch."""
    batch, n = frames.shape[0], frames.shape[1]
    low = [i for i, s in enumerate(states) if s.rate == NARROW_RATE] if narrow is not None else []
    if not low:
        steps = seq_speech(wide, frames, states, WIDE)
    elif len(low) == batch:
        assert narrow is not None
        steps = seq_speech(narrow, narrow_frames(frames), states, NARROW)
    else:
        assert narrow is not None
        high = [i for i in range(batch) if i not in set(low)]
        steps = np.empty((batch, n * 2), np.float32)
        steps[low] = seq_speech(narrow, narrow_frames(frames[low]), [states[i] for i in low], NARROW)
        steps[high] = seq_speech(wide, frames[high], [states[i] for i in high], WIDE)
    out: Float32 = steps.reshape(batch, n, 2).mean(axis=2)
    return out
