"""The source protocol and adapters from plain Python objects.

A source is anything with an async ``open()`` that returns its :class:`AudioFormat` and an
``__aiter__`` that yields chunks (``bytes`` or numpy arrays) in that format. ``open()`` only
resolves the format (for a file: reads its header); the resource itself (file handle,
device, socket) is acquired when iteration starts and released when it ends, however it
ends, so an abandoned source holds nothing. (A file shorter than one block is decoded
whole in ``open()`` and its handle closed there; an abandoned one holds those samples.)

A source may also have a bool attribute ``at_end``, True from the moment it yields its last
chunk (files and arrays know): the pipeline then sends that chunk's frames, the partial last
frame included, in one block (:func:`deeptone_async.framer.frames`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Generator, Iterable, Iterator
from typing import Protocol, runtime_checkable

import anyio
import numpy as np

from ..audio import AudioFormat
from ..errors import AudioFormatError
from ..framer import Chunk

__all__ = ["IterableSource", "Source", "as_source"]


@runtime_checkable
class Source(Protocol):
    """An async source of audio chunks with a declared format."""

    async def open(self) -> AudioFormat:
        """Resolve the format. May block briefly in a worker thread; raises on bad input."""
        ...

    def __aiter__(self) -> AsyncIterator[Chunk]:
        """Yield chunks; acquires the underlying resource, releases it when closed."""
        ...


_END = object()


def _next_or_end(it: Iterator[Chunk]) -> object:
    return next(it, _END)


class IterableSource:
    """Wrap an async or plain iterable of chunks as a :class:`Source`.

    A plain (synchronous) iterable is advanced in a worker thread, so a generator that
    blocks (reading a device, sleeping) never blocks the event loop. A generator (sync or
    async) is closed when the stream ends.

    Args:
        iterable: yields ``bytes`` (read as ``fmt.dtype``) or numpy arrays.
        fmt: the format of the chunks; 16 kHz mono int16 by default, as DeepTone's streams.
    """

    def __init__(self, iterable: AsyncIterable[Chunk] | Iterable[Chunk], fmt: AudioFormat | None = None) -> None:
        self._iterable = iterable
        self.format = fmt or AudioFormat()

    async def open(self) -> AudioFormat:
        return self.format

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        # The stream owns the iterator it was given: a generator is closed when the stream
        # ends, fails or is abandoned, so its own cleanup (finally blocks) runs then.
        if isinstance(self._iterable, AsyncIterable):
            ait = aiter(self._iterable)
            try:
                async for chunk in ait:
                    yield chunk
            finally:
                if isinstance(ait, AsyncGenerator):
                    with anyio.CancelScope(shield=True):
                        await ait.aclose()
            return
        it = iter(self._iterable)
        try:
            while True:
                item = await anyio.to_thread.run_sync(_next_or_end, it)
                if item is _END:
                    return
                yield item  # type: ignore[misc]
        finally:
            if isinstance(it, Generator):
                it.close()


def as_source(obj: object, fmt: AudioFormat | None = None) -> Source:
    """Make a :class:`Source` of a source, an async/plain iterable of chunks, an array or bytes.

    Raises:
        AudioFormatError: ``obj`` is none of these.
    """
    from .memory import ArraySource

    if isinstance(obj, Source):
        return obj
    if isinstance(obj, np.ndarray):
        return ArraySource(obj, sample_rate=(fmt or AudioFormat()).sample_rate)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return IterableSource([bytes(obj)], fmt)
    if isinstance(obj, (AsyncIterable, Iterable)) and not isinstance(obj, str):
        return IterableSource(obj, fmt)
    raise AudioFormatError(
        f"cannot stream from a {type(obj).__name__}: expected a Source, an (async) iterable of "
        "bytes/arrays, a numpy array or bytes"
    )
