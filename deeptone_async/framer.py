"""Stage 1: raw chunks -> 64 ms frames.

:func:`frames` is the first stage of every pipeline. It takes whatever a source yields
(bytes or numpy arrays, any supported dtype and rate), converts it to float32, resamples it
to 16 kHz (in a worker thread for large chunks) and cuts it into blocks of whole 1024-sample
frames. Chunk boundaries never
matter: a split sample in a byte stream, a frame spread over two chunks and the resampler's
filter state are all carried over, so the frames are the same however the audio was chunked.
A final partial frame is zero-padded and marked with its real length in
:attr:`FrameBlock.valid`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass

import anyio
import numpy as np
import numpy.typing as npt

from .audio import AudioFormat, BytesDecoder, Float32, to_float32
from .errors import AudioFormatError
from .features import FRAME_SAMPLES, SAMPLE_RATE

__all__ = ["Chunk", "FrameBlock", "Framer", "frames"]

Chunk = bytes | bytearray | memoryview | npt.NDArray[np.generic]

#: Most frames one block holds (16 s): bounds the work of one inference hop.
MAX_BLOCK_FRAMES = 256
#: Chunks with more samples than this (all channels) are resampled in a worker thread;
#: smaller ones (live streams' 20-100 ms chunks) inline, where a thread hop would cost more.
INLINE_RESAMPLE_SAMPLES = 32_768
#: A chunk the stage waited at least this long for comes from a live source (the source,
#: not the analysis, sets the pace): its whole frames go out at once, not at the period's end.
LIVE_WAIT_S = 0.005
#: ... and so do those of the chunks that follow within this many seconds: a live stream
#: whose chunks queued up for a moment (a loaded server) is still live.
LIVE_HOLD_S = 1.0


@dataclass(frozen=True)
class FrameBlock:
    """Consecutive 64 ms frames of every channel.

    Attributes:
        start: index of the block's first frame from the start of the stream.
        samples: float32 ``(channels, n, 1024)``.
        valid: int ``(n,)``: samples of real audio in each frame; 1024 except for a final
            partial frame, which is zero-padded.
        rms: float32 ``(channels, n)``: RMS of each frame's real samples, set by the gate.
        silent: bool ``(channels, n)``: RMS below the volume threshold, set by the gate.
    """

    start: int
    samples: Float32
    valid: npt.NDArray[np.int64]
    rms: Float32 | None = None
    silent: npt.NDArray[np.bool_] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])


class Framer:
    """Synchronous core of :func:`frames` for one stream (float32 16 kHz in, blocks out).

    Args:
        channels: channels of the samples pushed.
        max_block_frames: most frames per block.
        min_block_frames: frames are held until the next multiple of this many (counted
            from the stream's start) is whole, and blocks end on such multiples (except the
            last, at :meth:`flush`, and those :meth:`push` releases ``early``): with the
            output period's frame count, a stream fed in 20 ms chunks faster than real time
            makes one inference call per period instead of one per frame, and its results
            are unchanged (they come at the period's end either way). Memory held: at most
            this many frames plus a chunk.
    """

    def __init__(self, channels: int, max_block_frames: int = MAX_BLOCK_FRAMES, min_block_frames: int = 1) -> None:
        self._channels = channels
        self._max = max_block_frames
        self._min = max(1, min(min_block_frames, max_block_frames))
        # samples not yet cut into blocks: a list of arrays, joined only when a block is due
        # (a stream of 20 ms chunks would otherwise copy the whole held period per chunk)
        self._held: list[Float32] = []
        self._held_samples = 0
        self._next = 0

    def push(self, samples: Float32, early: bool = False) -> list[FrameBlock]:
        """Blocks of the whole frames now available from ``samples`` ``(n, channels)``.

        ``early``: hand out every whole frame now, not only those up to the last multiple
        of ``min_block_frames`` (a live stream's frames are computed as they complete, so
        that little is left to compute when its period ends).
        """
        if samples.shape[0] == 0:
            return []
        self._held.append(samples)
        self._held_samples += samples.shape[0]
        n = self._cut_frames(self._held_samples, early)
        if n <= 0:
            if not samples.flags.owndata:
                self._held[-1] = samples.copy()  # the caller's buffer may be reused
            return []
        buf = self._take()
        rest = buf[n * FRAME_SAMPLES :]
        if rest.shape[0]:
            self._held, self._held_samples = [rest.copy()], rest.shape[0]
        return self._blocks(buf[: n * FRAME_SAMPLES], np.full(n, FRAME_SAMPLES, np.int64))

    def due(self, more: int, early: bool = False) -> bool:
        """Whether pushing ``more`` samples would hand out a block (see :meth:`push`)."""
        return self._cut_frames(self._held_samples + more, early) > 0

    def _cut_frames(self, held_samples: int, early: bool) -> int:
        """Frames :meth:`push` hands out when ``held_samples`` are held: every whole one
        when ``early``, else those up to the last period boundary (may be <= 0: none)."""
        n = held_samples // FRAME_SAMPLES
        if not early:
            n -= (self._next + n) % self._min
        return n

    def hold(self, samples: Float32) -> None:
        """Keep ``samples`` without cutting blocks: the stream's last chunk, which
        :meth:`flush` then hands out with the frames before it."""
        if samples.shape[0]:
            self._held.append(samples)
            self._held_samples += samples.shape[0]

    def _take(self) -> Float32:
        """Every held sample as one array; the holder is left empty."""
        held, self._held, self._held_samples = self._held, [], 0
        return held[0] if len(held) == 1 else np.concatenate(held)

    def flush(self) -> list[FrameBlock]:
        """Every frame still held, the last one zero-padded if partial."""
        rest = self._held_samples
        if rest == 0:
            return []
        n = -(-rest // FRAME_SAMPLES)
        padded = np.zeros((n * FRAME_SAMPLES, self._channels), np.float32)
        padded[:rest] = self._take()
        valid = np.full(n, FRAME_SAMPLES, np.int64)
        valid[-1] = rest - (n - 1) * FRAME_SAMPLES
        return self._blocks(padded, valid)

    def _blocks(self, whole: Float32, valid: npt.NDArray[np.int64]) -> list[FrameBlock]:
        n = valid.shape[0]
        if n == 0:
            return []
        # (n*1024, C) -> (C, n, 1024)
        framed = np.ascontiguousarray(whole.T.reshape(self._channels, n, FRAME_SAMPLES))
        out = []
        for lo in range(0, n, self._max):
            hi = min(n, lo + self._max)
            out.append(FrameBlock(self._next + lo, framed[:, lo:hi], valid[lo:hi]))
        self._next += n
        return out


class _Resampler:
    """Streaming resampler to 16 kHz (soxr), exact pass-through at 16 kHz."""

    def __init__(self, rate: int, channels: int) -> None:
        import soxr  # here, not at the top: only other rates than 16 kHz need it

        self._stream = (
            None
            if rate == SAMPLE_RATE
            else soxr.ResampleStream(rate, SAMPLE_RATE, channels, dtype="float32", quality="HQ")
        )
        self._channels = channels

    @property
    def active(self) -> bool:
        """Whether samples are resampled (the input is not 16 kHz)."""
        return self._stream is not None

    def __call__(self, samples: Float32, last: bool = False) -> Float32:
        if self._stream is None:
            return samples
        out: Float32 = self._stream.resample_chunk(samples, last=last)
        return out.reshape(-1, self._channels)


async def frames(
    chunks: AsyncIterable[Chunk],
    fmt: AudioFormat | None = None,
    *,
    max_block_frames: int = MAX_BLOCK_FRAMES,
    min_block_frames: int = 1,
    at_end: Callable[[], bool] | None = None,
    live_frames: bool = False,
) -> AsyncGenerator[FrameBlock, None]:
    """Convert, resample and frame a source's chunks.

    Args:
        chunks: bytes (read as ``fmt.dtype``, little-endian, interleaved channels) or numpy
            arrays (1-D mono/interleaved or ``(frames, channels)``).
        fmt: the source's sample rate, channel count and byte sample type (default:
            16 kHz mono 16-bit).
        max_block_frames: most frames per yielded block.
        min_block_frames: hold frames until the next multiple of this many is whole
            (see :class:`Framer`); the stream's end releases the rest.
        at_end: called after each chunk arrives; True says that chunk is the source's
            last (a file or an array knows it), so its frames, the partial last one
            included, go out as one block: a short file is one inference call, not two.
            It must never say True before the last chunk.
        live_frames: a chunk the stage had to wait :data:`LIVE_WAIT_S` or more for (a
            live source: microphone, socket, a call's packets), and every chunk in the
            :data:`LIVE_HOLD_S` after it, releases every whole frame at once, so a live
            stream's frames are computed as they arrive and little is left to compute when
            its period ends; chunks of a source that never makes the stage wait (a file, an
            array, a backlog) are held to the period's end.

    Yields:
        :class:`FrameBlock` s in stream order; the last one may end in a partial frame.

    Raises:
        AudioFormatError: a chunk of a type, dtype or shape the format does not allow, or
            with NaN/inf samples. Blocks already yielded stay valid.
    """
    fmt = fmt or AudioFormat()
    decoder = BytesDecoder(fmt)
    resample = _Resampler(fmt.sample_rate, fmt.channels)
    framer = Framer(fmt.channels, max_block_frames, min_block_frames)
    ended = False
    # 16-bit PCM at 16 kHz (a live stream's usual format) stays bytes until a block is due:
    # one conversion per block instead of one per 20 ms chunk
    lazy = fmt.dtype == "int16" and not resample.active
    raw: list[bytes] = []
    raw_bytes = 0
    frame_bytes = fmt.bytes_per_frame
    asked: float | None = None  # when the next chunk was asked for (not for the first)
    live_until = -math.inf
    async for chunk in chunks:
        # waited for: the source sets the pace (live), so frames go out as they complete
        now = time.monotonic()
        if asked is not None and now - asked >= LIVE_WAIT_S:
            live_until = now + LIVE_HOLD_S
        live = live_frames and now < live_until
        if ended:
            raise RuntimeError("the source yielded a chunk after the one its at_end() called its last")
        ended = at_end is not None and at_end()
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            if lazy:
                raw.append(bytes(chunk))  # a copy only of a bytearray or memoryview (reusable buffers)
                raw_bytes += len(raw[-1])
                if not ended and not framer.due(
                    (raw_bytes + decoder.pending) // frame_bytes, early=live
                ):
                    asked = time.monotonic()
                    continue
                chunk = raw[0] if len(raw) == 1 else b"".join(raw)
                raw, raw_bytes = [], 0
            samples = decoder.decode(chunk)
        elif isinstance(chunk, np.ndarray):
            if raw:  # bytes kept before this array go first
                framer.hold(decoder.decode(b"".join(raw)))
                raw, raw_bytes = [], 0
            samples = to_float32(chunk, fmt.channels)
        else:
            raise AudioFormatError(f"a source chunk must be bytes or a numpy array, got {type(chunk).__name__}")
        if resample.active and samples.size > INLINE_RESAMPLE_SAMPLES:
            # a large chunk (a file block) is resampled in a worker thread, not on the loop
            resampled = await anyio.to_thread.run_sync(resample, samples, ended)
        else:
            resampled = resample(samples, ended)
        if ended:
            framer.hold(resampled)  # out with the rest below, in one block
            continue
        blocks = framer.push(resampled, early=live)
        del chunk, samples, resampled  # not held while the next chunk is awaited (a period's worth)
        while blocks:  # popped: a yielded block is the consumer's, not held here
            yield blocks.pop(0)
        asked = time.monotonic()
    if raw:
        framer.hold(decoder.decode(b"".join(raw)))
    if not ended:
        for block in framer.push(resample(np.zeros((0, fmt.channels), np.float32), last=True)):
            yield block
    for block in framer.flush():
        yield block
