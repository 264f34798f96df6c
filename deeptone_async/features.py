"""Log-mel features: the one implementation shared by inference and training.

Every model of kind ``"logmel"`` sees audio through this module, and the training code in
``training/`` imports it too, so the features a model was trained on and the features it
is served cannot drift apart.

Layout. The engine works on 64 ms frames (:data:`FRAME_SAMPLES` = 1024 samples at 16 kHz).
Each frame gives :data:`SUBFRAMES` = 4 feature rows, one per 16 ms hop. Row ``k`` of frame
``i`` is the log power of a 512-sample Hann window that *ends* at sample
``i * 1024 + (k + 1) * 256``: it uses only audio up to the end of its own hop, never future
audio, which is what lets stream results equal file results.

Everything here is synchronous, pure numpy/scipy and cheap (a few microseconds per frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_SAMPLES",
    "HOP_SAMPLES",
    "N_FFT",
    "N_MELS",
    "SAMPLE_RATE",
    "SILENCE_FLOOR",
    "SUBFRAMES",
    "LogMelExtractor",
    "logmel",
    "mel_filterbank",
]

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 1024  # 64 ms
HOP_SAMPLES = 256  # 16 ms
SUBFRAMES = FRAME_SAMPLES // HOP_SAMPLES
N_FFT = 512
N_MELS = 64
F_MIN = 50.0
F_MAX = 8000.0
#: Added to the mel power before the log; the feature value of digital silence.
POWER_FLOOR = 1e-8
SILENCE_FLOOR = float(np.log(POWER_FLOOR))

FloatArray = npt.NDArray[np.float32]


def _hz_to_mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
) -> FloatArray:
    """Triangular HTK-scale mel filters, shape ``(n_fft // 2 + 1, n_mels)``.

    Written here rather than imported because the usual providers (librosa, torchaudio)
    would add a heavy dependency for 15 lines of arithmetic.
    """
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - bins[:, None]) / (upper - centre)[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney-style area normalisation keeps band energies comparable across the scale.
    weights *= (2.0 / (upper - lower))[None, :]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> FloatArray:
    return np.hanning(N_FFT + 1)[:-1].astype(np.float32)


_Half = tuple[int, int, npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]


@lru_cache(maxsize=1)
def _mel_halves() -> tuple[_Half, _Half]:
    """The filterbank as two banded halves: ``(lo, hi, starts, bands, weights)`` each.

    Each FFT bin feeds at most two adjacent bands: the *first* half holds every bin's
    weight for its lower band, the *second* its weight for the upper band. In each half the
    bins of one band are contiguous, so a band is one ``np.add.reduceat`` segment. This
    never enters BLAS, whose thread pool costs far more than the ~500 multiply-adds a row
    on a busy or pinned core, and is 2.5x faster than gathering the non-zeros.
    """
    fb = mel_filterbank()
    n_bins = fb.shape[0]
    halves = []
    for which in (0, 1):
        band = np.full(n_bins, -1)
        weight = np.zeros(n_bins, np.float32)
        for k in range(n_bins):
            nz = np.flatnonzero(fb[k])
            if len(nz) > 2:  # pragma: no cover - guards a changed filterbank
                raise RuntimeError("a mel bin feeds more than two bands")
            if len(nz) > which:
                band[k], weight[k] = nz[which], fb[k, nz[which]]
        used = np.flatnonzero(band >= 0)
        lo, hi = int(used[0]), int(used[-1]) + 1
        if not (band[lo:hi] >= 0).all() or (np.diff(band[lo:hi]) < 0).any():  # pragma: no cover
            raise RuntimeError("mel bands are not contiguous in FFT bins")
        starts = np.flatnonzero(np.r_[True, np.diff(band[lo:hi]) != 0])
        halves.append((lo, hi, starts, band[lo:hi][starts], weight[lo:hi]))
    return halves[0], halves[1]


def logmel(samples: npt.NDArray[np.floating], history: npt.NDArray[np.floating] | None = None) -> FloatArray:
    """Log-mel rows for ``samples``, one row per 256-sample hop.

    Args:
        samples: mono float audio at 16 kHz on the [-1, 1] scale; its length must be a
            multiple of :data:`HOP_SAMPLES` (whole frames always are).
        history: the 256 samples that precede ``samples`` (zeros at the start of a
            stream when omitted).

    Returns:
        float32 array of shape ``(len(samples) // 256, N_MELS)``.

    Raises:
        ValueError: if the length is not a multiple of 256 or ``history`` is not 256 long.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.shape[0] % HOP_SAMPLES:
        raise ValueError(f"logmel needs a multiple of {HOP_SAMPLES} samples, got {x.shape[0]}")
    prev = np.zeros(N_FFT - HOP_SAMPLES, np.float32) if history is None else np.asarray(history, np.float32)
    if prev.shape != (N_FFT - HOP_SAMPLES,):
        raise ValueError(f"history must hold {N_FFT - HOP_SAMPLES} samples, got {prev.shape}")
    n_rows = x.shape[0] // HOP_SAMPLES
    if n_rows == 0:
        return np.zeros((0, N_MELS), np.float32)
    return _rows(_windows(np.concatenate([prev, x]), n_rows))


def _windows(padded: npt.NDArray[np.float32], n_rows: int) -> npt.NDArray[np.float32]:
    """The first ``n_rows`` analysis windows ``(..., n_rows, N_FFT)``, one per hop, of
    ``padded`` ``(..., 256 + samples)`` (the history, then the samples): a view."""
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)
    return view[..., ::HOP_SAMPLES, :][..., :n_rows, :]


def _rows(windows: npt.NDArray[np.float32]) -> FloatArray:
    """Log-mel rows of ``windows`` ``(rows, N_FFT)``; each row is computed on its own, so a
    row comes out the same whatever other rows share the call."""
    # scipy.fft is imported here, at the first call, not with the package: importing it takes
    # 350 ms. numpy.fft is no substitute: it rounds differently and is 5x slower in float32.
    from scipy.fft import rfft

    spectrum = rfft(windows * _window(), axis=-1)  # float32 in, complex64 out
    power = spectrum.real**2 + spectrum.imag**2
    mel = np.full((windows.shape[0], N_MELS), POWER_FLOOR, np.float32)
    for lo, hi, starts, bands, weights in _mel_halves():
        mel[:, bands] += np.add.reduceat(power[:, lo:hi] * weights, starts, axis=1)
    out: FloatArray = np.log(mel, dtype=np.float32)
    return out


def stream_features(extractors: Sequence[LogMelExtractor], frames: npt.NDArray[np.floating]) -> FloatArray:
    """Features ``(B, 4n, N_MELS)`` for ``frames`` ``(B, n, 1024)`` of ``B`` streams, each
    with its own extractor (whose history moves on, as a call of the extractor would).

    Short blocks of many streams (live frames: one or a few frames per stream) are computed
    in one set of array operations for up to :data:`LogMelExtractor.PIECE_FRAMES` frames of
    streams at a time, instead of one per stream, which costs several times their work in
    per-call overhead; the rows are the same as the extractors' own (each row is computed
    on its own). Longer blocks go to each extractor.
    """
    x = np.asarray(frames, np.float32)
    batch, n = x.shape[0], x.shape[1]
    if batch == 1 or n == 0 or n > LogMelExtractor.PIECE_FRAMES // 2:
        return np.stack([ex(f) for ex, f in zip(extractors, x)])
    rows = SUBFRAMES * n
    out = np.empty((batch, rows, N_MELS), np.float32)
    flat = x.reshape(batch, n * FRAME_SAMPLES)
    group = max(1, LogMelExtractor.PIECE_FRAMES // n)
    for lo in range(0, batch, group):
        hi = min(batch, lo + group)
        padded = np.concatenate([np.stack([ex.history for ex in extractors[lo:hi]]), flat[lo:hi]], axis=1)
        out[lo:hi] = _rows(_windows(padded, rows).reshape(-1, N_FFT)).reshape(hi - lo, rows, N_MELS)
    for ex, samples in zip(extractors, flat):
        ex.advance(samples)
    return out


class LogMelExtractor:
    """Streaming log-mel for one stream: keeps the last 256 samples between calls.

    Not thread-safe; each stream owns one. Calling it on consecutive pieces of audio gives
    exactly the rows :func:`logmel` gives on the whole audio.
    """

    #: Frames per :func:`logmel` call: its temporaries (windows, spectrum) then stay in a
    #: core's cache; a 16 s block in one call was slower (benchmarks/RESULTS.md).
    PIECE_FRAMES = 32

    def __init__(self) -> None:
        #: the last 256 samples seen (zeros at the stream's start)
        self.history = np.zeros(N_FFT - HOP_SAMPLES, np.float32)

    def __call__(self, frames: npt.NDArray[np.floating]) -> FloatArray:
        """Features for ``frames`` of shape ``(n, 1024)``: returns ``(4 * n, N_MELS)``."""
        flat = np.asarray(frames, np.float32).reshape(-1)
        piece = self.PIECE_FRAMES * FRAME_SAMPLES
        if flat.shape[0] <= piece:
            rows = logmel(flat, self.history)
        else:
            rows = np.empty((flat.shape[0] // HOP_SAMPLES, N_MELS), np.float32)
            history = self.history
            for lo in range(0, flat.shape[0], piece):
                part = flat[lo : lo + piece]
                rows[lo // HOP_SAMPLES : (lo + part.shape[0]) // HOP_SAMPLES] = logmel(part, history)
                history = flat[lo + part.shape[0] - history.shape[0] : lo + part.shape[0]]
        self.advance(flat)
        return rows

    def advance(self, samples: npt.NDArray[np.float32]) -> None:
        """Move the history on past ``samples`` (mono float32 that followed the last ones)."""
        if samples.shape[0] >= self.history.shape[0]:
            self.history = samples[-self.history.shape[0] :].copy()
