"""What the engine accepts from any input, stated once and enforced at the edges.

Every input, whatever it comes through (a file header, an array, bytes with ``rate_in``,
a source's declared format, a server upload), is checked against one :class:`Limits`
before any audio is converted or resampled, so a crafted input cannot make the engine
allocate or compute without bound: a 7 Hz header would otherwise be upsampled 2,300-fold,
and a 1,000-channel file (or a ``(2, 16000)`` array read as 16,000 channels) would run
every model 1,000 times. A violation raises :class:`~deeptone_async.AudioFormatError` (or
:class:`~deeptone_async.ParameterError` for a call argument such as ``rate_in``) naming
the limit and how to change it: ``Deeptone(limits=Limits(max_channels=64))``.

Float samples are on the [-1, 1] scale; a peak above :data:`MAX_FLOAT_PEAK` (16, i.e.
+24 dBFS) is refused rather than clipped, since it almost always means integer PCM cast
to float without scaling (see :func:`deeptone_async.audio.to_float32`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .audio import AudioFormat
from .errors import AudioFormatError, ParameterError

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds on the audio an engine accepts.

    Attributes:
        min_sample_rate: lowest input sample rate, Hz (default 4 kHz: resampling to
            16 kHz then grows the audio at most 4-fold).
        max_sample_rate: highest input sample rate, Hz (default 384 kHz).
        max_channels: most channels in one input (default 32); each channel runs every
            model, so time and memory grow with it.

    Raises:
        ParameterError: a bound that is not a positive int, or min above max.
    """

    min_sample_rate: int = 4_000
    max_sample_rate: int = 384_000
    max_channels: int = 32

    def __post_init__(self) -> None:
        for name in ("min_sample_rate", "max_sample_rate", "max_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"Limits.{name} must be a positive int, got {value!r}")
        if self.min_sample_rate > self.max_sample_rate:
            raise ParameterError(f"Limits.min_sample_rate {self.min_sample_rate} is above max_sample_rate {self.max_sample_rate}")

    def check_rate(self, rate: int, what: str = "sample rate") -> None:
        """Raise :class:`ParameterError` if ``rate`` (a call argument) is outside the bounds."""
        if not self.min_sample_rate <= rate <= self.max_sample_rate:
            raise ParameterError(self._rate_message(rate, what))

    def check_format(self, fmt: AudioFormat, what: str = "the audio") -> None:
        """Raise :class:`AudioFormatError` if a source's format is outside the bounds."""
        if not self.min_sample_rate <= fmt.sample_rate <= self.max_sample_rate:
            raise AudioFormatError(self._rate_message(fmt.sample_rate, f"{what}: sample rate"))
        if fmt.channels > self.max_channels:
            raise AudioFormatError(
                f"{what} has {fmt.channels} channels, more than the limit of {self.max_channels}; "
                f"a (channels, frames) array must be transposed (data.T); to analyse more channels, "
                f"raise it: Deeptone(limits=Limits(max_channels=...))"
            )

    def _rate_message(self, rate: int, what: str) -> str:
        return (
            f"{what} {rate} Hz is outside the accepted {self.min_sample_rate}-{self.max_sample_rate} Hz; "
            f"to change the bounds: Deeptone(limits=Limits(min_sample_rate=..., max_sample_rate=...))"
        )


#: The limits of an engine created without ``limits=``.
DEFAULT_LIMITS = Limits()
