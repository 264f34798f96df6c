"""Audio files: anything libsndfile decodes (WAV, FLAC, OGG Vorbis/Opus, MP3, ...).

Headerless PCM (``.raw`` / ``.pcm``) is read with aiofiles in the declared format. Encoded
files are decoded by soundfile in worker threads, one block per thread hop: libsndfile does
its own (seeking) I/O, so the decoder, not aiofiles, reads those files. Either way the event
loop never blocks on the disk. A file shorter than one block is checked, decoded and closed
in the one hop of :meth:`FileSource.open` (a short file costs one decoding hop, and, being
one chunk that says it is the last, one inference call).

The decoder is always called with reads of :data:`DECODE_FRAMES` frames from the start of
the file, whatever block size the caller asks for; blocks are cut from those reads. For
PCM, FLAC and Ogg this changes nothing, but the MP3 decoder in libsndfile 1.2.2 (its
mpg123) gives different samples near some read boundaries than a single whole-file read
(up to 0.39 in one test file, with ``part2_3_length`` errors from libmpg123 on stderr). A
fixed read pattern makes every path (``process_file`` with and without chunking, and
``process_stream`` over a :class:`FileSource`) decode exactly the same samples.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import numpy as np
import numpy.typing as npt

from ..audio import AudioFormat
from ..errors import DecodeError, ParameterError
from ..framer import Chunk

if TYPE_CHECKING:
    import soundfile as sf

__all__ = ["DECODE_FRAMES", "FileSource", "RAW_SUFFIXES", "check_channel"]

RAW_SUFFIXES = (".raw", ".pcm")
#: Frames per decoder call: every read of an encoded file is this size (see the module docstring).
DECODE_FRAMES = 65_536
ProgressCallback = Callable[[int, int | None], None]


class FileSource:
    """Decode an audio file block by block.

    Args:
        path: the file.
        channel: analyse only this channel (0-based int, or a string naming one, as the
            output's channel keys do: ``"1"``); all channels when ``None``.
        block_frames: frames decoded per thread hop; ``None`` decodes the whole file in
            one go (memory then grows with the file).
        raw_format: format of a headerless ``.raw``/``.pcm`` file (16 kHz mono int16 by
            default).
        progress: called as ``progress(frames_read, frames_total)`` after each block.

    :meth:`open` raises :class:`FileNotFoundError` for a missing file,
    :class:`~deeptone_async.DecodeError` for one that does not decode and
    :class:`~deeptone_async.ParameterError` for a channel the file does not have.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | str | None = None,
        block_frames: int | None = 65_536,
        raw_format: AudioFormat | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.path = Path(path)
        self.channel = check_channel(channel)
        self._block = block_frames
        self._raw = self.path.suffix.lower() in RAW_SUFFIXES
        self._raw_format = raw_format or AudioFormat()
        self._progress = progress
        self.frames_total: int | None = None
        self.file_channels = 1
        self.format: AudioFormat | None = None
        #: True once the chunk just yielded is the file's last (see :func:`deeptone_async.framer.frames`)
        self.at_end = False
        self._whole: npt.NDArray[np.float32] | None = None

    async def open(self) -> AudioFormat:
        """Check the file and read its header, in one worker-thread hop.

        A file shorter than one block is decoded in the same hop and held (at most one
        block, the memory its iteration would hold anyway), so a short file costs one
        decoding hop in all, not one each for its header, opening, reading and closing.
        """
        if self._raw:
            import aiofiles.os

            st = await aiofiles.os.stat(self.path)  # FileNotFoundError propagates as it is
            fmt = self._raw_format
            self.frames_total = st.st_size // fmt.bytes_per_frame
        else:
            import soundfile as sf

            try:
                (rate, channels, frames), self._whole = await anyio.to_thread.run_sync(self._probe)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DecodeError(self.path, str(exc)) from exc
            fmt = AudioFormat(rate, channels, "float32")
            self.frames_total = frames
        self.file_channels = fmt.channels
        if self.channel is not None:
            if not 0 <= self.channel < fmt.channels:
                raise ParameterError(f"channel {self.channel} does not exist in {self.path} ({fmt.channels} channel(s))")
            fmt = AudioFormat(fmt.sample_rate, 1, fmt.dtype)
        self.format = fmt
        return fmt

    def _probe(self) -> tuple[tuple[int, int, int], npt.NDArray[np.float32] | None]:
        """(rate, channels, frames) of the header, and the whole decoded file when the header
        says it is shorter than one block and decoding reaches its end within one block
        (``None`` otherwise: iteration decodes it, and reports any decoding error with the
        frames read before it). Blocking: call in a worker thread.

        Raises:
            FileNotFoundError: no such file.
            soundfile.LibsndfileError: not audio libsndfile can open.
        """
        import soundfile as sf

        os.stat(self.path)  # a missing file is FileNotFoundError, not a decoding error
        with sf.SoundFile(str(self.path)) as handle:
            header = (int(handle.samplerate), int(handle.channels), int(handle.frames))
            if self._block is None or not 0 <= handle.frames < self._block:
                return header, None
            decoder = _Decoder(handle)
            try:
                data = decoder.read(self._block)
            except (sf.LibsndfileError, RuntimeError):
                return header, None
            return header, data if decoder.at_end else None  # a header that understates the length: decode again

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        if self.format is None:
            await self.open()
        if self._raw:
            async for chunk in self._raw_chunks():
                yield chunk
            return
        if self._whole is not None:  # decoded by open(): no more hops
            whole, self._whole = self._whole, None
            self.at_end = True
            if self._progress is not None:
                self._progress(whole.shape[0], self.frames_total)
            if whole.shape[0]:
                yield whole if self.channel is None else whole[:, self.channel : self.channel + 1]
            return
        import soundfile as sf

        try:
            handle = await anyio.to_thread.run_sync(sf.SoundFile, str(self.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(self.path, str(exc)) from exc
        decoder = _Decoder(handle)
        try:
            done = 0
            while True:
                try:
                    block = await anyio.to_thread.run_sync(decoder.read, self._block)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise DecodeError(self.path, f"after {done} frames: {exc}") from exc
                if block.shape[0] == 0:
                    return
                self.at_end = decoder.at_end
                done += block.shape[0]
                if self._progress is not None:
                    self._progress(done, self.frames_total)
                yield block if self.channel is None else block[:, self.channel : self.channel + 1]
                if self._block is None:
                    return
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(handle.close)

    async def _raw_chunks(self) -> AsyncIterator[Chunk]:
        fmt = self._raw_format
        dtype = np.dtype(fmt.dtype).newbyteorder("<")
        size = (self._block or DECODE_FRAMES) * fmt.bytes_per_frame  # whole-file mode too: bounded reads
        import aiofiles

        done = 0
        async with aiofiles.open(self.path, "rb") as f:
            while data := await f.read(size):
                usable = len(data) - len(data) % fmt.bytes_per_frame  # a torn last sample at EOF is dropped
                samples = np.frombuffer(data[:usable], dtype).astype(dtype.newbyteorder("=")).reshape(-1, fmt.channels)
                done += samples.shape[0]
                if self._progress is not None:
                    self._progress(done, self.frames_total)
                yield samples if self.channel is None else samples[:, self.channel : self.channel + 1]


def check_channel(channel: object) -> int | None:
    """``channel`` as a 0-based int (``None`` for every channel).

    Accepts an int or a string of decimal digits (the output's channel keys are strings).

    Raises:
        ParameterError: anything else (floats, bools, negative numbers, other strings).
    """
    if channel is None:
        return None
    if isinstance(channel, str) and channel.strip().isdigit():
        return int(channel.strip())
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and channel >= 0:
        return int(channel)
    raise ParameterError(f"channel must be a non-negative int or a string such as '1' (the output's keys), got {channel!r}")


class _Decoder:
    """Reads a SoundFile in fixed :data:`DECODE_FRAMES` calls and hands out blocks of any size.

    Blocking (libsndfile I/O and decoding): call :meth:`read` in a worker thread. Holds at
    most one decoder read beyond the block asked for.
    """

    def __init__(self, handle: sf.SoundFile) -> None:
        self._handle = handle
        self._carry: list[npt.NDArray[np.float32]] = []
        self._held = 0
        self._eof = False

    @property
    def at_end(self) -> bool:
        """Whether the file's end was reached and every frame read was handed out."""
        return self._eof and not self._carry

    def read(self, frames: int | None) -> npt.NDArray[np.float32]:
        """The next ``frames`` frames (all that is left for ``None``); fewer only at the end."""
        while not self._eof and (frames is None or self._held < frames):
            piece = self._handle.read(DECODE_FRAMES, dtype="float32", always_2d=True)
            if piece.shape[0] == 0:
                self._eof = True
                break
            self._carry.append(piece)
            self._held += piece.shape[0]
        if not self._carry:
            return np.zeros((0, self._handle.channels), np.float32)
        buf = self._carry[0] if len(self._carry) == 1 else np.concatenate(self._carry)
        take = buf.shape[0] if frames is None else min(frames, buf.shape[0])
        rest = buf[take:]
        self._carry = [rest] if rest.shape[0] else []
        self._held = rest.shape[0]
        return buf[:take]
