"""Audio formats and sample conversion (synchronous, pure numpy).

Every piece of audio entering the pipeline is turned into float32 samples of shape
``(frames, channels)`` on the [-1, 1] scale by :func:`to_float32`. Integer PCM is scaled by
its full range (``int16``: / 32768; unsigned types are centred first), float input is taken
as it is after a check that it is finite and peaks at most :data:`MAX_FLOAT_PEAK`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import AudioFormatError, ParameterError

__all__ = ["MAX_FLOAT_PEAK", "SUPPORTED_DTYPES", "AudioFormat", "BytesDecoder", "to_float32"]

#: dtype name -> (offset, scale): float = (int - offset) / scale
_INT_SCALES: dict[str, tuple[float, float]] = {
    "int8": (0.0, 2.0**7),
    "int16": (0.0, 2.0**15),
    "int32": (0.0, 2.0**31),
    "uint8": (2.0**7, 2.0**7),
    "uint16": (2.0**15, 2.0**15),
    "uint32": (2.0**31, 2.0**31),
}
SUPPORTED_DTYPES = (*_INT_SCALES, "float32", "float64")

Float32 = npt.NDArray[np.float32]

#: Largest float sample magnitude accepted (+24 dBFS). Float audio is on the [-1, 1] scale;
#: peaks a little above 1 (a mix, a resampler's overshoot) are analysed as they are, while
#: anything above this is refused: it is almost always integer PCM cast to float, and
#: values near the float32 range would overflow the features to NaN.
MAX_FLOAT_PEAK = 16.0


@dataclass(frozen=True)
class AudioFormat:
    """What a source yields: sample rate, channel count and sample type of byte payloads.

    Array payloads carry their own dtype; ``dtype`` says how to read ``bytes`` payloads
    (little-endian).
    """

    sample_rate: int = 16_000
    channels: int = 1
    dtype: str = "int16"

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ParameterError(f"sample_rate must be a positive int, got {self.sample_rate!r}")
        if not isinstance(self.channels, int) or self.channels <= 0:
            raise ParameterError(f"channels must be a positive int, got {self.channels!r}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise ParameterError(f"dtype must be one of {SUPPORTED_DTYPES}, got {self.dtype!r}")

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one sample frame (one sample of every channel)."""
        return np.dtype(self.dtype).itemsize * self.channels


def to_float32(data: npt.ArrayLike, channels: int = 1) -> Float32:
    """Convert PCM samples to float32 ``(frames, channels)`` on the [-1, 1] scale.

    Args:
        data: a numpy array of int8/16/32, uint8/16/32 or float32/64; 1-D for mono (or
            interleaved when ``channels`` > 1), or 2-D ``(frames, channels)``.
        channels: channel count that a 1-D array is interleaved with.

    Raises:
        AudioFormatError: unsupported dtype, a shape that does not fit ``channels``, or
            NaN/inf or a peak above :data:`MAX_FLOAT_PEAK` in float input.
    """
    if not isinstance(data, np.ndarray):
        raise AudioFormatError(f"expected a numpy array of audio samples, got {type(data).__name__}")
    name = data.dtype.name
    if name not in SUPPORTED_DTYPES:
        raise AudioFormatError(f"unsupported sample dtype {name!r}; expected one of {', '.join(SUPPORTED_DTYPES)}")
    if data.ndim == 1:
        if data.shape[0] % channels:
            raise AudioFormatError(f"{data.shape[0]} samples do not interleave into {channels} channels")
        arr = data.reshape(-1, channels)
    elif data.ndim == 2:
        arr = data
        if arr.shape[1] != channels:
            raise AudioFormatError(_shape_message(data.shape, channels))
    else:
        raise AudioFormatError(f"audio must be 1-D or 2-D (frames, channels), got shape {data.shape}")
    if name in _INT_SCALES:
        offset, scale = _INT_SCALES[name]
        out = arr.astype(np.float32)
        if offset:
            out -= np.float32(offset)
        out *= np.float32(1.0 / scale)
        return out
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size == 0:
        return out
    peak = float(np.max(np.abs(out)))  # NaN and inf propagate: one pass checks both
    if not np.isfinite(peak):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise AudioFormatError(f"float audio contains {bad} NaN or infinite sample(s)")
    if peak > MAX_FLOAT_PEAK:
        raise AudioFormatError(
            f"float audio must be on the [-1, 1] scale; this peaks at {peak:.4g} (the limit is {MAX_FLOAT_PEAK:g}): "
            "integer PCM cast to float must be divided by its full scale (32768 for int16), "
            "or pass the integer array as it is"
        )
    return out


def _shape_message(shape: tuple[int, ...], channels: int) -> str:
    """Why a 2-D array does not fit a ``channels``-channel format, and what to do instead."""
    want = "1-D mono samples or an array of shape (frames, 1)" if channels == 1 else f"an array of shape (frames, {channels})"
    hints = []
    rows, cols = shape
    if rows < cols:
        hints.append("it looks channels-first, (channels, frames): transpose it, e.g. data.T")
    if channels == 1 and min(rows, cols) > 1:
        hints.append(
            "a stream is analysed as one channel: pass one channel (chunk[:, 0]) or a downmix "
            "(chunk.mean(axis=1)); process_file and process_audio_bytes analyse every channel"
        )
    return f"got an audio array of shape {shape}; expected {want}" + "".join(f"; {h}" for h in hints)


class BytesDecoder:
    """Turns a stream of byte chunks into samples, carrying a split sample to the next chunk.

    A chunk need not hold whole samples: with 16-bit PCM an odd byte count leaves one byte
    over, which is prepended to the next chunk instead of being dropped or misaligning the
    rest of the stream.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self._fmt = fmt
        self._dtype = np.dtype(fmt.dtype).newbyteorder("<")
        self._frame_bytes = fmt.bytes_per_frame
        self._int16 = fmt.dtype == "int16"
        self._spare = b""

    @property
    def pending(self) -> int:
        """Bytes held over from the last chunk."""
        return len(self._spare)

    def decode(self, chunk: bytes | bytearray | memoryview) -> Float32:
        """Samples for the whole sample frames now available, as float32 ``(n, channels)``."""
        buf: bytes | bytearray | memoryview = self._spare + bytes(chunk) if self._spare else chunk
        usable = len(buf) - len(buf) % self._frame_bytes
        self._spare = bytes(buf[usable:])
        samples = np.frombuffer(buf, dtype=self._dtype, count=usable // self._dtype.itemsize)
        if self._int16:  # the stream format: one conversion, no checks needed
            out = samples.astype(np.float32).reshape(-1, self._fmt.channels)
            out *= np.float32(1.0 / 32768.0)
            return out
        return to_float32(samples.astype(self._dtype.newbyteorder("=")), self._fmt.channels)
