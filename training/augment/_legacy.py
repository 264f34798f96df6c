"""The channel effects the shipped Speech, SpeechRT, Gender, Arousal and Emotions models were
trained with (``channel``: synthetic reverb, telephone band, codec-like damage), kept unchanged
so that their recipes still reproduce. New training uses :class:`training.augment.Chain`.

All functions take and return float32 mono audio at 16 kHz on the [-1, 1] scale.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

SR = 16_000


def telephone(x: np.ndarray) -> np.ndarray:
    """8 kHz round trip plus a 300-3400 Hz band-pass: narrow-band telephone audio."""
    y = soxr.resample(soxr.resample(x, SR, 8000, quality="HQ"), 8000, SR, quality="HQ")[: len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    sos = butter(4, [300, 3400], btype="band", fs=SR, output="sos")
    return sosfilt(sos, y).astype(np.float32)


def mulaw(x: np.ndarray, bits: int = 8) -> np.ndarray:
    mu = 2**bits - 1
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)


def codec(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Codec-like damage: mu-law 8 bit, coarse linear quantisation, or a low-pass."""
    k = rng.integers(3)
    if k == 0:
        return mulaw(x)
    if k == 1:
        q = 2.0 ** -rng.integers(7, 11)
        return (np.round(x / q) * q).astype(np.float32)
    sos = butter(6, float(rng.uniform(2500, 6000)), btype="low", fs=SR, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room: exponentially decaying noise impulse response (RT60 0.15-0.9 s)."""
    rt60 = rng.uniform(0.15, 0.9)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[: int(0.002 * SR)] = 0
    ir *= rng.uniform(0.2, 0.7) / (np.sqrt(np.sum(ir**2)) + 1e-9)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: len(x)]
    return (y * (np.sqrt(np.mean(x**2) + 1e-12) / (np.sqrt(np.mean(y**2)) + 1e-9))).astype(np.float32)


def channel(x: np.ndarray, rng: np.random.Generator, p_tel=0.12, p_codec=0.12, p_rev=0.2) -> np.ndarray:
    """Random channel effects applied to a finished mix (before the level change)."""
    if rng.random() < p_rev:
        x = reverb(x, rng)
    if rng.random() < p_tel:
        x = telephone(x)
    elif rng.random() < p_codec:
        x = codec(x, rng)
    return x
