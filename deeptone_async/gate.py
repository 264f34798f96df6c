"""Stage 2: the volume gate.

A frame is *silence* when the RMS of its real samples, on the [-1, 1] scale, is below
``volume_threshold``. Every model reports ``silence`` for such frames with confidence 1.0,
whatever the model itself says. ``volume_threshold=0`` turns the gate off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterable

import numpy as np

from .audio import Float32
from .errors import ParameterError
from .framer import FrameBlock

__all__ = ["frame_rms", "gate", "check_volume_threshold"]


def check_volume_threshold(volume_threshold: float) -> float:
    """Return ``volume_threshold`` as a float, or raise :class:`ParameterError`."""
    try:
        value = float(volume_threshold)
    except (TypeError, ValueError):
        raise ParameterError(f"volume_threshold must be a number, got {volume_threshold!r}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise ParameterError(f"volume_threshold must lie in [0, 1] (RMS on the [-1, 1] scale), got {value}")
    return value


def frame_rms(block: FrameBlock) -> Float32:
    """RMS of each frame's real samples, shape ``(channels, n)``.

    Padding after a final partial frame is excluded, so it cannot make a loud tail silent.
    """
    energy = np.einsum("cnk,cnk->cn", block.samples, block.samples, dtype=np.float64)
    rms = np.sqrt(energy / np.maximum(block.valid, 1)[None, :])
    out: Float32 = rms.astype(np.float32)
    return out


async def gate(blocks: AsyncIterable[FrameBlock], volume_threshold: float) -> AsyncGenerator[FrameBlock, None]:
    """Mark each frame's RMS and whether it is silence.

    Raises:
        ParameterError: ``volume_threshold`` is not a number in [0, 1].
    """
    threshold = check_volume_threshold(volume_threshold)
    async for block in blocks:
        rms = frame_rms(block)
        yield dataclasses.replace(block, rms=rms, silent=rms < threshold)

