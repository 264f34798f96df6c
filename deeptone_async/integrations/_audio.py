"""Audio glue shared by the plug-ins: streaming resampling to the engine's 16 kHz."""

from __future__ import annotations

import numpy as np
import soxr

from ..audio import Float32

__all__ = ["Resampler"]


class Resampler:
    """soxr's streaming resampler for one mono float32 stream (state kept between chunks).

    Args:
        rate_in: the input's sample rate.
        rate_out: the output's (16 kHz for the engine).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def push(self, audio: Float32, last: bool = False) -> Float32:
        """Resample the next chunk; ``last=True`` flushes the filter's tail. Pure CPU, no blocking I/O."""
        out = self._stream.resample_chunk(np.ascontiguousarray(audio, dtype=np.float32), last=last)
        return np.asarray(out, dtype=np.float32).reshape(-1)
