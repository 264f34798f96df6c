"""DeepTone's cloud streaming protocol: query parameters, messages and close codes (pure).

A client opens ``/stream?models=vad&output_period=1024&...``, sends binary frames of 16-bit
little-endian PCM (any byte count; a split sample is carried over) and receives one JSON
text message per output period::

    {"message_type": "results",
     "results": {"channels": {"0": {"timestamp": 0, "results": {"vad": {...}}, "raw": {...}}}}}

An empty binary frame ends the audio: the server sends the results of the final partial
period and closes with 1000. Anything that goes wrong is reported with one
``{"message_type": "error", "error": "..."}`` message followed by a close frame whose code
says what kind of fault it was (:data:`CLOSE_UNSUPPORTED_DATA` etc.).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine import DEFAULT_VOLUME_THRESHOLD, check_output_period
from ..errors import ParameterError
from ..gate import check_volume_threshold

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_UNSUPPORTED_DATA",
    "StreamParams",
    "error_message",
    "parse_bool",
    "results_message",
]

CLOSE_NORMAL = 1000
#: A text frame (the protocol carries binary PCM only).
CLOSE_UNSUPPORTED_DATA = 1003
#: Bad or missing API key, bad query parameters, server full, idle or too long.
CLOSE_POLICY_VIOLATION = 1008
#: A binary message larger than ``max_message_bytes``.
CLOSE_MESSAGE_TOO_BIG = 1009
#: The analysis failed on the server.
CLOSE_INTERNAL_ERROR = 1011

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, value: str | None, default: bool = False) -> bool:
    """``true/false/1/0/yes/no/on/off`` (case-insensitive) as a bool.

    Raises:
        ParameterError: any other value.
    """
    if value is None:
        return default
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ParameterError(f"{name} must be true or false, got {value!r}")


def parse_int(name: str, value: str | None, default: int) -> int:
    """An integer query parameter.

    Raises:
        ParameterError: not an integer.
    """
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise ParameterError(f"{name} must be an integer, got {value!r}") from None


def parse_float(name: str, value: str | None, default: float) -> float:
    """A number query parameter.

    Raises:
        ParameterError: not a number.
    """
    if value is None:
        return default
    try:
        return float(value.strip())
    except ValueError:
        raise ParameterError(f"{name} must be a number, got {value!r}") from None


def parse_models(value: str | None) -> list[str] | None:
    """``"vad,gender"`` -> ``["vad", "gender"]``; missing or empty -> ``None`` (every model)."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


def parse_signatures(value: str | None) -> dict[str, Any] | None:
    """The ``voice_signatures`` parameter: the JSON object ``create_voice_signatures``
    returns (``{speaker_id: {"version", "data"}}``), URL-encoded; missing -> ``None``.

    Raises:
        ParameterError: not a JSON object.
    """
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        raise ParameterError("voice_signatures must be the JSON object create_voice_signatures returns") from None
    if not isinstance(data, dict):
        raise ParameterError("voice_signatures must be a JSON object {speaker_id: {version, data}}")
    return data


@dataclass(frozen=True)
class StreamParams:
    """The query parameters of one ``/stream`` connection, checked.

    Model names are not resolved here (that needs the engine); unknown names fail when
    the stream is built.
    """

    models: list[str] | None = None
    output_period: int = 1024
    volume_threshold: float = DEFAULT_VOLUME_THRESHOLD
    include_raw_values: bool = False
    sample_rate: int = 16_000
    voice_signatures: dict[str, Any] | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> StreamParams:
        """Read and check the parameters.

        Raises:
            ParameterError: an output_period that is not a positive multiple of 64, a
                volume_threshold outside [0, 1], a sample_rate outside 8-192 kHz, a
                non-boolean include_raw_values, voice_signatures that are not a JSON
                object, or an unknown parameter.
        """
        known = {"models", "output_period", "volume_threshold", "include_raw_values", "sample_rate", "voice_signatures"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ParameterError(
                f"unknown query parameter(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
            )
        period = parse_int("output_period", query.get("output_period"), 1024)
        check_output_period(period)
        threshold = check_volume_threshold(
            parse_float("volume_threshold", query.get("volume_threshold"), DEFAULT_VOLUME_THRESHOLD)
        )
        rate = parse_int("sample_rate", query.get("sample_rate"), 16_000)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ParameterError(f"sample_rate must lie in {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {rate}")
        return cls(
            models=parse_models(query.get("models")),
            output_period=period,
            volume_threshold=threshold,
            include_raw_values=parse_bool("include_raw_values", query.get("include_raw_values")),
            sample_rate=rate,
            voice_signatures=parse_signatures(query.get("voice_signatures")),
        )


def results_message(result: Mapping[str, Any], channel: int = 0) -> str:
    """One stream result (``{"timestamp", "results", "raw"?}``) as a protocol message."""
    return json.dumps({"message_type": "results", "results": {"channels": {str(channel): result}}})


def error_message(error: str) -> str:
    """An error as a protocol message."""
    return json.dumps({"message_type": "error", "error": error})
