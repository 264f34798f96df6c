"""Microphone and loudspeaker colouration: band-pass and random equalisation.

Pure functions on float32 mono 16 kHz audio; :func:`draw_eq` draws a random colouration from
a generator. Filters are biquads from R. Bristow-Johnson's "Audio EQ Cookbook" (peaking and
shelving) run as second-order sections, causal, minimum phase (no delay to speak of).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

SR = 16_000


@dataclass(frozen=True)
class Band:
    """One equaliser band: ``kind`` "peak", "lowshelf" or "highshelf" at ``freq`` Hz, ``gain_db``
    dB, quality ``q`` (peaks) or shelf slope ``q`` (shelves, 0.5..1)."""

    kind: str
    freq: float
    gain_db: float
    q: float = 1.0


def _biquad(b: Band, sr: int) -> np.ndarray:
    a_ = 10 ** (b.gain_db / 40)
    w0 = 2 * np.pi * min(b.freq, 0.45 * sr) / sr
    cw, sw = np.cos(w0), np.sin(w0)
    if b.kind == "peak":
        alpha = sw / (2 * b.q)
        num = [1 + alpha * a_, -2 * cw, 1 - alpha * a_]
        den = [1 + alpha / a_, -2 * cw, 1 - alpha / a_]
    elif b.kind in ("lowshelf", "highshelf"):
        alpha = sw / 2 * np.sqrt((a_ + 1 / a_) * (1 / b.q - 1) + 2)
        s = 1 if b.kind == "lowshelf" else -1
        sq = 2 * np.sqrt(a_) * alpha
        num = [a_ * ((a_ + 1) - s * (a_ - 1) * cw + sq), s * 2 * a_ * ((a_ - 1) - s * (a_ + 1) * cw),
               a_ * ((a_ + 1) - s * (a_ - 1) * cw - sq)]
        den = [(a_ + 1) + s * (a_ - 1) * cw + sq, -s * 2 * ((a_ - 1) + s * (a_ + 1) * cw),
               (a_ + 1) + s * (a_ - 1) * cw - sq]
    else:
        raise ValueError(f"band kind must be peak, lowshelf or highshelf, got {b.kind!r}")
    return np.array([*(np.array(num) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]])


def eq(x: np.ndarray, bands: Sequence[Band], sr: int = SR) -> np.ndarray:
    """``x`` through the cascade of ``bands``.

    Raises:
        ValueError: a band of unknown kind.
    """
    if not bands:
        return x.astype(np.float32, copy=True)
    sos = np.stack([_biquad(b, sr) for b in bands])
    return sosfilt(sos, x).astype(np.float32)


def bandpass(x: np.ndarray, lo: float | None, hi: float | None, order: int = 4, sr: int = SR) -> np.ndarray:
    """Butterworth high-pass at ``lo`` and/or low-pass at ``hi`` Hz (None: that side open).

    Raises:
        ValueError: ``lo`` >= ``hi`` or a corner outside (0, sr/2).
    """
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"band-pass needs lo < hi, got {lo}, {hi}")
    for f in (lo, hi):
        if f is not None and not 0 < f < sr / 2:
            raise ValueError(f"corner {f} Hz outside (0, {sr / 2})")
    if lo is None and hi is None:
        return x.astype(np.float32, copy=True)
    if lo is None:
        sos = butter(order, hi, btype="low", fs=sr, output="sos")
    elif hi is None:
        sos = butter(order, lo, btype="high", fs=sr, output="sos")
    else:
        sos = butter(order, [lo, hi], btype="band", fs=sr, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def draw_eq(rng: np.random.Generator, max_gain_db: float = 10.0) -> tuple[list[Band], float | None, float | None]:
    """A random microphone: 2-4 peaking bands (150 Hz-6 kHz, +-``max_gain_db``, Q 0.7-3), a low
    and a high shelf (+-6 dB), and with probability 0.5 a band limit (high-pass 60-400 Hz,
    low-pass 3.5-7.5 kHz) as small or cheap microphones and loudspeaker paths have.

    Returns:
        (bands, lo, hi) for :func:`eq` and :func:`bandpass`.
    """
    bands = [Band("peak", float(np.exp(rng.uniform(np.log(150), np.log(6000)))),
                  float(rng.uniform(-max_gain_db, max_gain_db)), float(rng.uniform(0.7, 3.0)))
             for _ in range(int(rng.integers(2, 5)))]
    bands.append(Band("lowshelf", float(rng.uniform(100, 400)), float(rng.uniform(-6, 6)), 0.7))
    bands.append(Band("highshelf", float(rng.uniform(2500, 6000)), float(rng.uniform(-6, 6)), 0.7))
    lo = hi = None
    if rng.random() < 0.5:
        lo = float(rng.uniform(60, 400))
        hi = float(rng.uniform(3500, 7500))
    return bands, lo, hi


def colour(x: np.ndarray, bands: Sequence[Band], lo: float | None, hi: float | None) -> np.ndarray:
    """``x`` through :func:`eq` then :func:`bandpass`: one microphone's colouration."""
    return bandpass(eq(x, bands), lo, hi)
