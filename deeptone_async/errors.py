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
    ├── VoiceSignatureError (ValueError)  a voice signature cannot be made or used
    │   ├── NotEnoughSpeechError         a speaker sample holds less than 1 s of speech
    │   └── SignatureVersionError        a signature made by another SpeakerMap model version
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
    "VoiceSignatureError",
    "NotEnoughSpeechError",
    "SignatureVersionError",
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


class VoiceSignatureError(DeeptoneError, ValueError):
    """A voice signature that cannot be made or used (malformed, bad speaker sample)."""


class NotEnoughSpeechError(VoiceSignatureError):
    """A speaker sample for :meth:`~deeptone_async.Deeptone.create_voice_signatures` holds
    less speech than a signature needs.

    Attributes:
        speaker_id: the sample's speaker.
        speech_ms: the speech the speech detector found in it, in ms.
        needed_ms: the speech a signature needs, in ms.
    """

    def __init__(self, speaker_id: str, speech_ms: int, needed_ms: int) -> None:
        self.speaker_id = speaker_id
        self.speech_ms = speech_ms
        self.needed_ms = needed_ms
        super().__init__(
            f"the sample of speaker {speaker_id!r} holds {speech_ms} ms of speech; a voice signature "
            f"needs at least {needed_ms} ms (give 1-10 s of audio in which the speaker talks)"
        )


class SignatureVersionError(VoiceSignatureError):
    """A voice signature made by another version of the SpeakerMap model's embedding.

    Attributes:
        speaker_id: the signature's speaker.
        version: the signature's version.
        expected: the version of the engine's SpeakerMap model.
    """

    def __init__(self, speaker_id: str, version: object, expected: int) -> None:
        self.speaker_id = speaker_id
        self.version = version
        self.expected = expected
        super().__init__(
            f"the voice signature of {speaker_id!r} has version {version!r}, but this engine's SpeakerMap "
            f"model makes version {expected}: signatures of another model version do not compare; "
            "enrol the speaker again with create_voice_signatures"
        )
