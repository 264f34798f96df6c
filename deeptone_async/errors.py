"""The exceptions deeptone-async raises.

Every error of ours derives from :class:`DeeptoneError`; where a built-in meaning fits, the
class also derives from the built-in, so ``except ValueError`` keeps working::

    DeeptoneError
    ├── ParameterError (ValueError)      bad argument: output_period, volume_threshold, ...
    ├── ChannelKeyError (KeyError)       result["time_series"] on a result with several channels
    ├── AudioFormatError (ValueError)    audio we cannot interpret: dtype, shape, NaN/inf
    ├── DecodeError                      a file that does not decode (names the file)
    ├── SourceError                      a source failed while streaming (device, socket)
    │   └── DeviceError                  the microphone could not be opened or failed
    ├── ModelError                       a model spec or ONNX file is unusable
    │   └── UnknownModelError (ValueError)  a model name that is not registered
    ├── SinkError                        a sink could not write a result
    └── ServerError                      a streaming server refused or ended a stream (client)

A missing input file raises the built-in :class:`FileNotFoundError`. The original cause of
a wrapped error is kept as ``__cause__``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AudioFormatError",
    "ChannelKeyError",
    "DecodeError",
    "DeeptoneError",
    "DeviceError",
    "ModelError",
    "ParameterError",
    "ServerError",
    "SinkError",
    "SourceError",
    "UnknownModelError",
]


class DeeptoneError(Exception):
    """Base class of every error raised by deeptone-async."""


class ParameterError(DeeptoneError, ValueError):
    """An argument has a value the engine cannot use."""


class ChannelKeyError(DeeptoneError, KeyError):
    """A per-channel key (``"time_series"``, ``"summary"``, ...) read from the top of a result
    with several channels, where it is ambiguous; the message names the keys to use."""

    def __str__(self) -> str:  # KeyError's own str() quotes its argument like a repr
        return str(self.args[0]) if self.args else ""


class AudioFormatError(DeeptoneError, ValueError):
    """Audio data of a type, shape or content the engine cannot interpret."""


class DecodeError(DeeptoneError):
    """A file could not be decoded as audio.

    Attributes:
        path: the file that failed.
        reason: what went wrong, from the decoder.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot decode {str(path)!r} as audio: {reason}")


class SourceError(DeeptoneError):
    """An audio source failed while it was streaming."""


class DeviceError(SourceError):
    """An audio device could not be opened or stopped delivering audio."""


class ModelError(DeeptoneError):
    """A model spec or ONNX file is unusable."""


class UnknownModelError(ModelError, ValueError):
    """A model name that is not registered with the engine."""


class SinkError(DeeptoneError):
    """A sink failed to accept a result."""


class ServerError(DeeptoneError):
    """A streaming server could not be reached, refused the stream or ended it with an error.

    Attributes:
        code: the WebSocket close code (1003 unsupported data, 1008 policy: key,
            parameters, limits; 1009 message too big; 1011 server failure; 1012 server
            restarting), or ``None`` when no connection was made.
        error: the server's error message, when it sent one.
    """

    def __init__(self, message: str, *, code: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error = error
