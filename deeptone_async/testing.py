"""Helpers for testing your own sources and sinks against deeptone-async's protocols.

>>> frames = await check_source(MySource())      # raises AssertionError on a violation
>>> await check_sink(MySink())
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .audio import AudioFormat
from .sinks.base import Sink
from .sources.base import Source

__all__ = ["RecordingSink", "check_sink", "check_source"]


async def check_source(source: Source) -> int:
    """Check that ``source`` follows the :class:`~deeptone_async.sources.Source` protocol.

    Opens it, iterates it to the end and checks every chunk against the declared format:
    bytes hold whole or partial samples of ``fmt.dtype``; arrays are 1-D or
    ``(frames, channels)`` with the declared channel count.

    Returns:
        The number of sample frames the source yielded.

    Raises:
        AssertionError: a protocol violation, with what was expected and what came.
    """
    fmt = await source.open()
    assert isinstance(fmt, AudioFormat), f"open() must return an AudioFormat, got {fmt!r}"
    n_bytes = 0
    frames = 0
    async for chunk in source:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            n_bytes += len(chunk)
        else:
            assert isinstance(chunk, np.ndarray), f"chunks must be bytes or numpy arrays, got {type(chunk).__name__}"
            if chunk.ndim == 2:
                assert chunk.shape[1] == fmt.channels, f"chunk has {chunk.shape[1]} channels, format says {fmt.channels}"
                frames += chunk.shape[0]
            else:
                assert chunk.ndim == 1, f"chunk must be 1-D or 2-D, got shape {chunk.shape}"
                frames += chunk.shape[0] // fmt.channels
    assert n_bytes % fmt.bytes_per_frame == 0, f"{n_bytes} bytes is not a whole number of {fmt.dtype} frames"
    return frames + n_bytes // fmt.bytes_per_frame


class RecordingSink:
    """A sink that keeps every result it is sent (and whether it was closed)."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.closed = False

    async def send(self, result: dict[str, Any]) -> None:
        assert not self.closed, "send() after aclose()"
        self.results.append(result)

    async def aclose(self) -> None:
        self.closed = True


async def check_sink(sink: Sink) -> None:
    """Send two DeepTone-shaped results to ``sink`` and close it; raises what the sink raises."""
    for ts in (0, 1024):
        await sink.send({"timestamp": ts, "results": {"vad": {"result": "speech", "confidence": 0.9}}})
    await sink.aclose()
