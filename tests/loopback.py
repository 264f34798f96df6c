"""The JACK dummy ``loopback`` device as a test microphone (scripts/test.sh starts jackd)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

SR = 16_000


def loopback_device() -> bool:
    """Whether sounddevice sees an input device named ``loopback``."""
    try:
        import sounddevice as sd

        return any(d["name"] == "loopback" and d["max_input_channels"] > 0 for d in sd.query_devices())
    except Exception:
        return False


class Player:
    """Plays a signal into the loopback device from a callback stream (then silence)."""

    def __init__(self, signal: np.ndarray) -> None:
        import sounddevice as sd

        self.signal = signal.astype(np.float32)
        self.pos = 0
        self.done = threading.Event()
        self.stream = sd.OutputStream(device="loopback", samplerate=SR, channels=1, dtype="float32", callback=self._cb)

    def _cb(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        n = max(0, min(frames, len(self.signal) - self.pos))
        outdata[:] = 0
        outdata[:n, 0] = self.signal[self.pos : self.pos + n]
        self.pos += frames
        if self.pos >= len(self.signal):
            self.done.set()

    def __enter__(self) -> Player:
        self.stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
