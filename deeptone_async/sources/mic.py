"""The microphone, through sounddevice (``pip install 'deeptone-async[mic]'``).

PortAudio calls our callback on its own thread with each captured block. The callback
never blocks: it hands a copy of the block to the event loop, which puts it in a bounded
channel. A live device cannot wait, so when the channel is full (the pipeline has fallen
behind) the block is dropped and counted in :attr:`MicrophoneSource.dropped_frames`.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import numpy as np

from ..audio import AudioFormat
from ..errors import DeviceError
from ..framer import Chunk
from ._threadsafe import loop_caller

__all__ = ["MicrophoneSource", "import_sounddevice"]


def import_sounddevice() -> ModuleType:
    """Import sounddevice or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module("sounddevice")
    except ImportError as exc:
        raise ImportError(
            "the microphone needs sounddevice: pip install 'deeptone-async[mic]'"
        ) from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise ImportError(f"sounddevice cannot load PortAudio ({exc}); install libportaudio2") from exc


class MicrophoneSource:
    """Capture float32 audio from an input device.

    Args:
        device: device name or index (sounddevice's default input when ``None``).
        sample_rate: capture rate; audio is resampled to 16 kHz downstream.
        channels: channels to capture.
        block_frames: frames per callback (1024 = 64 ms at 16 kHz).
        buffer_blocks: capacity of the bounded channel between the callback and the
            pipeline; when full, new blocks are dropped and counted.

    Attributes:
        dropped_frames: frames dropped because the pipeline fell behind.
        overflows: blocks for which PortAudio reported an input overflow.
        active: whether the device stream is open.

    Iteration opens the device (raising :class:`~deeptone_async.DeviceError` if it
    cannot) and closes it when the iteration ends, is cancelled or abandoned.
    """

    live = True

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = 16_000,
        channels: int = 1,
        block_frames: int = 1024,
        buffer_blocks: int = 64,
    ) -> None:
        self.device = device
        self.format = AudioFormat(sample_rate, channels, "float32")
        self._block = block_frames
        self._capacity = buffer_blocks
        self.dropped_frames = 0
        self.overflows = 0
        self.active = False

    async def open(self) -> AudioFormat:
        return self.format

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        sd = import_sounddevice()
        send, receive = anyio.create_memory_object_stream[np.ndarray](self._capacity)
        call = loop_caller()

        def deliver(block: np.ndarray) -> None:  # runs on the event loop
            try:
                send.send_nowait(block)
            except anyio.WouldBlock:
                self.dropped_frames += block.shape[0]
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

        def callback(indata: np.ndarray, frames: int, time: Any, status: Any) -> None:  # PortAudio thread
            if status.input_overflow:
                self.overflows += 1
            call(deliver, indata.copy())

        try:
            stream = sd.InputStream(
                device=self.device,
                samplerate=self.format.sample_rate,
                channels=self.format.channels,
                dtype="float32",
                blocksize=self._block,
                callback=callback,
            )
            stream.start()
        except Exception as exc:  # sounddevice.PortAudioError and ValueError for bad settings
            send.close()
            receive.close()
            raise DeviceError(f"cannot open input device {self.device!r}: {exc}") from exc
        self.active = True
        try:
            async with receive:
                async for block in receive:
                    yield block
        finally:
            send.close()
            self.active = False
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)
