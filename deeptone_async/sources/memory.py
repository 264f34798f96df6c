"""Sources over audio already in memory: a numpy array, or bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import numpy as np
import numpy.typing as npt

from ..audio import SUPPORTED_DTYPES, AudioFormat
from ..errors import AudioFormatError
from ..framer import Chunk

__all__ = ["ArraySource"]


class ArraySource:
    """Stream a numpy array in chunks.

    Args:
        data: 1-D (mono) or 2-D ``(frames, channels)`` samples of any supported dtype.
        sample_rate: the array's sample rate (resampled to 16 kHz downstream).
        chunk_frames: samples per yielded chunk (at the array's rate).

    Raises:
        AudioFormatError: unsupported dtype or shape (at construction).
    """

    def __init__(self, data: npt.NDArray[np.generic], sample_rate: int = 16_000, chunk_frames: int = 16_384) -> None:
        if not isinstance(data, np.ndarray):
            raise AudioFormatError(f"expected a numpy array, got {type(data).__name__}")
        if data.dtype.name not in SUPPORTED_DTYPES:
            raise AudioFormatError(
                f"unsupported sample dtype {data.dtype.name!r}; expected one of {', '.join(SUPPORTED_DTYPES)}"
            )
        if data.ndim not in (1, 2):
            raise AudioFormatError(f"audio must be 1-D or 2-D (frames, channels), got shape {data.shape}")
        self._data = data if data.ndim == 2 else data.reshape(-1, 1)
        self._chunk = chunk_frames
        self.format = AudioFormat(sample_rate, int(self._data.shape[1]), data.dtype.name)
        #: True once the chunk just yielded is the array's last (see :func:`deeptone_async.framer.frames`)
        self.at_end = False

    async def open(self) -> AudioFormat:
        return self.format

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        n = self._data.shape[0]
        for lo in range(0, n, self._chunk):
            self.at_end = lo + self._chunk >= n
            yield self._data[lo : lo + self._chunk]
            await anyio.lowlevel.checkpoint()
