"""Channels and codecs: the 8 kHz telephone band, G.711, GSM, Opus, MP3.

Every codec runs in process through the libsndfile that ships with ``soundfile`` (encoded into
and decoded from memory, no subprocess): G.711 mu-law and A-law, GSM 06.10 (the GSM full-rate
speech codec, 13 kbit/s at 8 kHz), Ogg Opus (6-12 kbit/s here: VoIP and messenger voice) and
MPEG-1/2 Layer III (8-32 kbit/s). A libsndfile built without a codec makes
:func:`codec_available` name the missing part; calling that codec raises
:class:`CodecUnavailable`.

All functions take and return float32 mono audio; each says at which rate. The decoded signal
is re-aligned to the input (codec delay removed, same length), so frame truth computed on the
clean input stays valid.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, sosfiltfilt

SR = 16_000
TEL_SR = 8_000
#: ITU-T G.712 telephone channel pass band (Hz)
TEL_BAND = (300.0, 3400.0)
#: libsndfile (format, subtype) of each codec
CODECS: dict[str, tuple[str, str]] = {
    "mulaw": ("WAV", "ULAW"),
    "alaw": ("WAV", "ALAW"),
    "gsm": ("WAV", "GSM610"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Layer III bitrates (kbit/s) reachable at 16 kHz and the libsndfile compression level that
#: gives each in constant-bitrate mode (measured with libsndfile 1.2.2 / LAME)
MP3_LEVELS = {8: 0.98, 16: 0.94, 24: 0.9, 32: 0.85}
#: Opus: libsndfile maps compression level c in [0, 1] to a target of 6 + (1 - c) * 250 kbit/s
OPUS_KBPS_RANGE = (6.0, 256.0)


class CodecUnavailable(RuntimeError):
    """The codec is not in this machine's libsndfile (see :func:`codec_available`)."""


@cache
def codec_available(name: str) -> str | None:
    """None when codec ``name`` (a key of :data:`CODECS`) works here, else why not.

    Tries a 20 ms round trip once per process.

    Raises:
        KeyError: ``name`` is not a codec of :data:`CODECS`.
    """
    fmt, sub = CODECS[name]
    if sub not in sf.available_subtypes(fmt):
        return f"libsndfile {sf.__libsndfile_version__} has no {fmt}/{sub} encoder"
    try:
        _roundtrip(np.zeros(TEL_SR // 50 * 4, np.float32), TEL_SR if name != "mp3" else SR, fmt, sub)
    except Exception as e:  # noqa: BLE001 - any failure means "not usable here"
        return f"libsndfile {sf.__libsndfile_version__} {fmt}/{sub} round trip failed: {e}"
    return None


def _require(name: str) -> None:
    why = codec_available(name)
    if why is not None:
        raise CodecUnavailable(why)


def _encode(x: np.ndarray, sr: int, fmt: str, subtype: str, **kw: object) -> bytes:
    """The encoded file, in memory."""
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype, **kw)
    return buf.getvalue()


def _roundtrip(x: np.ndarray, sr: int, fmt: str, subtype: str, **kw: object) -> np.ndarray:
    y, _ = sf.read(io.BytesIO(_encode(x, sr, fmt, subtype, **kw)), dtype="float32", always_2d=True)
    return y[:, 0]


def align(ref: np.ndarray, y: np.ndarray, max_lag: int = 2400) -> np.ndarray:
    """``y`` shifted by its delay against ``ref`` (0..``max_lag`` samples, found by
    cross-correlation) and cut or zero-padded to ``len(ref)``."""
    n = len(ref)
    lag = 0
    if n and len(y) and np.any(ref) and np.any(y):
        m = 1 << int(np.ceil(np.log2(n + len(y))))
        c = np.fft.irfft(np.fft.rfft(y, m) * np.conj(np.fft.rfft(ref, m)), m)[: max_lag + 1]
        lag = int(np.argmax(c))
    out = y[lag : lag + n]
    return np.pad(out, (0, n - len(out))).astype(np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr high-quality resampling (the one the corpora were made with)."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=True)
    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32)


def pad_or_cut(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut to ``n`` samples or zero-padded to them, as float32."""
    return np.pad(y[:n], (0, max(0, n - len(y)))).astype(np.float32)


def g711(x8k: np.ndarray, law: str = "mulaw") -> np.ndarray:
    """G.711 companding (``law`` "mulaw" or "alaw", 8 bits a sample) of 8 kHz audio.

    Raises:
        ValueError: unknown ``law``.
        CodecUnavailable: libsndfile lacks it.
    """
    if law not in ("mulaw", "alaw"):
        raise ValueError(f"law must be 'mulaw' or 'alaw', got {law!r}")
    _require(law)
    fmt, sub = CODECS[law]
    return pad_or_cut(_roundtrip(np.clip(x8k, -1, 1), TEL_SR, fmt, sub), len(x8k))


def gsm(x8k: np.ndarray) -> np.ndarray:
    """GSM 06.10 full-rate (13 kbit/s) encode and decode of 8 kHz audio.

    Raises:
        CodecUnavailable: libsndfile lacks it.
    """
    _require("gsm")
    return align(x8k, _roundtrip(np.clip(x8k, -1, 1), TEL_SR, *CODECS["gsm"]), 400)


def opus(x: np.ndarray, kbps: float = 8.0, sr: int = SR) -> np.ndarray:
    """Ogg Opus at about ``kbps`` kbit/s (6-256), encoded and decoded at ``sr`` (8, 12, 16,
    24 or 48 kHz).

    Raises:
        ValueError: ``kbps`` out of range.
        CodecUnavailable: libsndfile lacks it.
    """
    lo, hi = OPUS_KBPS_RANGE
    if not lo <= kbps <= hi:
        raise ValueError(f"opus kbps must be in [{lo}, {hi}], got {kbps}")
    _require("opus")
    level = 1.0 - (kbps - lo) / (hi - lo)
    return align(x, _roundtrip(np.clip(x, -1, 1), sr, *CODECS["opus"], compression_level=level), 1000)


def mp3(x: np.ndarray, kbps: int = 16) -> np.ndarray:
    """MPEG-2 Layer III at ``kbps`` kbit/s constant bitrate (one of :data:`MP3_LEVELS`),
    16 kHz in and out; the encoder delay is removed.

    Raises:
        ValueError: ``kbps`` not in :data:`MP3_LEVELS`.
        CodecUnavailable: libsndfile lacks it.
    """
    if kbps not in MP3_LEVELS:
        raise ValueError(f"mp3 kbps must be one of {sorted(MP3_LEVELS)}, got {kbps}")
    _require("mp3")
    y = _roundtrip(np.clip(x, -1, 1), SR, *CODECS["mp3"], compression_level=MP3_LEVELS[kbps],
                   bitrate_mode="CONSTANT")
    return align(x, y, 2400)


@cache
def _band_sos(lo: float, hi: float, sr: int) -> np.ndarray:
    return butter(4, [lo, hi], btype="band", fs=sr, output="sos")


def telephone(x: np.ndarray, codec: str | None = "mulaw", band: bool = True, out_sr: int = SR) -> np.ndarray:
    """A narrow-band telephone channel: 16 kHz in, 8 kHz resampling, the G.712 300-3400 Hz
    band-pass (zero phase) when ``band``, then ``codec`` ("mulaw", "alaw", "gsm" or None) at
    8 kHz. Returned at ``out_sr`` (16000: resampled back, same length; 8000: what a phone
    system hands over, half the length).

    Raises:
        ValueError: unknown ``codec`` or ``out_sr``.
        CodecUnavailable: libsndfile lacks the codec.
    """
    if out_sr not in (SR, TEL_SR):
        raise ValueError(f"out_sr must be {SR} or {TEL_SR}, got {out_sr}")
    y = resample(x, SR, TEL_SR)
    if band and len(y) > 27:
        y = sosfiltfilt(_band_sos(*TEL_BAND, TEL_SR), y).astype(np.float32)
    if codec in ("mulaw", "alaw"):
        y = g711(y, codec)
    elif codec == "gsm":
        y = gsm(y)
    elif codec is not None:
        raise ValueError(f"telephone codec must be mulaw, alaw, gsm or None, got {codec!r}")
    if out_sr == TEL_SR:
        return pad_or_cut(y, len(x) // 2)
    return pad_or_cut(resample(y, TEL_SR, SR), len(x))
