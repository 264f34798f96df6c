"""Levels, mixing at a signal-to-noise ratio, babble and clipping.

Pure functions on float32 mono audio at 16 kHz on the [-1, 1] scale (values may exceed 1
between steps of a chain; :func:`clip` or the chain's final step brings them back). No
function draws random numbers: the chain (:mod:`training.augment.chain`) draws the parameters.

Level means the *active level* used throughout ``training``: the 95th percentile of the
clip's 64 ms frame levels in dBFS (``training.data.annotate``'s ``ref_db``), so a clip with
long pauses is not called quiet because of its pauses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deeptone_async.features import FRAME_SAMPLES

from ..data import active_frames, frame_db_from_hops, hop_db

SR = 16_000
SILENT_DB = -100.0


def db_power(x: np.ndarray) -> float:
    """Mean-square power of ``x`` in dB (re full scale 1.0); about -120 for silence."""
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def frame_levels(x: np.ndarray) -> np.ndarray:
    """dBFS of every whole 64 ms frame of ``x`` (as the engine's volume gate measures it)."""
    return frame_db_from_hops(hop_db(x))


def level_dbfs(x: np.ndarray) -> float:
    """Active level of ``x``: the 95th percentile of its 64 ms frame levels, in dBFS.

    Clips shorter than one frame are measured as one frame; silence gives about -120.
    """
    f = frame_levels(x)
    if not len(f):
        return db_power(x) if len(x) else SILENT_DB
    return float(np.percentile(f, 95))


def active_mask(x: np.ndarray) -> np.ndarray:
    """Per-sample bool mask of the energy-active frames of ``x`` (``training.data``'s frame
    truth: within 30 dB of the active level and above -65 dBFS); the tail after the last
    whole frame is marked as the last frame."""
    f = frame_levels(x)
    if not len(f):
        return np.ones(len(x), bool)
    act = np.repeat(active_frames(f, float(np.percentile(f, 95))), FRAME_SAMPLES)
    return np.pad(act, (0, len(x) - len(act)), mode="edge")


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """``x`` times ``db`` decibels, clipped to [-1, 1] (the trainers' historical gain)."""
    return np.clip(x * np.float32(10 ** (db / 20)), -1.0, 1.0).astype(np.float32)


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` scaled so that its active level (:func:`level_dbfs`) is ``dbfs``; not clipped.

    Silence (below -100 dBFS) is returned unchanged.
    """
    cur = level_dbfs(x)
    if cur < SILENT_DB:
        return x.astype(np.float32, copy=True)
    return (x * np.float32(10 ** ((dbfs - cur) / 20))).astype(np.float32)


def clip(x: np.ndarray, ceiling: float = 1.0) -> np.ndarray:
    """Hard clipping at +-``ceiling`` (an overdriven amplifier or converter).

    Raises:
        ValueError: ``ceiling`` is not positive.
    """
    if not ceiling > 0:
        raise ValueError(f"clip ceiling must be > 0, got {ceiling}")
    return np.clip(x, -ceiling, ceiling).astype(np.float32)


def ceiling_for_fraction(x: np.ndarray, fraction: float) -> float:
    """The clipping ceiling at which ``fraction`` (0..1) of the samples of ``x`` are clipped."""
    a = np.abs(x)
    if not len(a) or not a.max() > 0:
        return 1.0
    return float(max(np.quantile(a, 1.0 - fraction), 1e-6))


def as_float(x: np.ndarray) -> np.ndarray:
    """float32 audio on the [-1, 1] scale from float or int16 samples (int16 / 32768)."""
    if x.dtype == np.int16:
        return x.astype(np.float32) / np.float32(32768.0)
    return x.astype(np.float32, copy=False)


def fit_length(bg: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """``n`` samples of ``bg`` (float, or int16 as :func:`as_float` reads it) from ``start``,
    looping it (a short background repeats), as float32.

    Raises:
        ValueError: ``bg`` is empty and ``n`` > 0.
    """
    if n <= 0:
        return np.zeros(0, np.float32)
    if not len(bg):
        raise ValueError("cannot fit an empty background to a non-empty clip")
    start %= len(bg)
    reps = (start + n) // len(bg) + 1
    return as_float(np.tile(bg, reps)[start : start + n])


def mix_at_snr(speech: np.ndarray, background: np.ndarray, snr_db: float,
               speech_mask: np.ndarray | None = None) -> np.ndarray:
    """``speech + g * background`` with ``g`` chosen so that power(speech) / power(g *
    background) is ``snr_db`` dB.

    Speech power is measured over the ``speech_mask`` samples (the active speech) when given,
    so pauses do not lower the effective SNR; the background's over all of it. A silent
    background leaves ``speech`` unchanged. The sum is not clipped.

    Raises:
        ValueError: ``speech`` and ``background`` differ in length.
    """
    if len(speech) != len(background):
        raise ValueError(f"speech has {len(speech)} samples, background {len(background)}")
    s = speech if speech_mask is None or not speech_mask.any() else speech[speech_mask]
    ps, pb = db_power(s), db_power(background)
    if pb < -100:
        return speech.astype(np.float32, copy=True)
    g = 10 ** ((ps - snr_db - pb) / 20)
    return (speech + g * background).astype(np.float32)


def babble(voices: Sequence[np.ndarray], n: int, starts: Sequence[int] | None = None) -> np.ndarray:
    """Babble: the sum of ``voices`` (speech of different talkers), each first brought to the
    same active level and looped or cropped to ``n`` samples from its ``starts`` offset.

    Returns ``n`` samples at an arbitrary level (mix it with :func:`mix_at_snr`).

    Raises:
        ValueError: no voices.
    """
    if not voices:
        raise ValueError("babble needs at least one voice")
    starts = list(starts) if starts is not None else [0] * len(voices)
    out = np.zeros(n, np.float64)
    for v, s in zip(voices, starts):
        out += set_level(fit_length(v, n, s), -30.0)
    return out.astype(np.float32)
