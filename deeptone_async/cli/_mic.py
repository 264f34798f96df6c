"""``deeptone-async mic``: live results from an input device."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import DeviceError
from ._parser import model_names

__all__ = ["input_device", "run_mic"]


def _input_devices(sd: Any) -> list[tuple[int, str]]:
    try:
        devices = sd.query_devices()
    except Exception as exc:  # noqa: BLE001 - PortAudio fails in its own ways
        raise DeviceError(f"cannot list the audio devices: {exc}") from exc
    return [(i, str(d["name"])) for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def input_device(device: str | None) -> int | str | None:
    """``--device`` as sounddevice takes it, checked before anything is printed.

    Raises:
        ImportError: sounddevice or PortAudio is missing (the message says what to install).
        DeviceError: no input device matches (the message lists the input devices).
    """
    from ..sources.mic import import_sounddevice

    sd = import_sounddevice()
    wanted: int | str | None = int(device) if device is not None and device.strip().isdigit() else device
    try:
        sd.query_devices(wanted, kind="input")
    except Exception as exc:  # noqa: BLE001 - ValueError or PortAudioError, both mean "not usable"
        inputs = _input_devices(sd)
        listing = "".join(f"\n  {i:3d}  {name}" for i, name in inputs) or " none"
        if wanted is None:
            what = "no default input device"
        elif "No input device matching" in str(exc) or "Error querying device" in str(exc):
            what = f"no input device matches {device!r}"
        else:  # e.g. several devices match
            what = f"cannot use input device {device!r}: {exc}"
        raise DeviceError(f"{what}; the input devices are:{listing}") from exc
    return wanted


async def run_mic(args: argparse.Namespace) -> int:
    """Print results until Ctrl-C or ``--duration``; returns the exit status."""
    import anyio

    from ..engine import Deeptone
    from ..sinks import StdoutSink, drain
    from ..sources.mic import MicrophoneSource

    device = input_device(args.device)
    engine = Deeptone()
    models = model_names(args.models)
    source = MicrophoneSource(device, sample_rate=args.sample_rate)
    stream = engine.process_stream(
        source,
        models,
        output_period=args.output_period,
        include_raw_values=args.raw,
        volume_threshold=args.volume_threshold,
    )
    print(f"listening on {device if device is not None else 'the default input'}; Ctrl-C stops", file=sys.stderr)
    with anyio.move_on_after(args.duration):
        async with stream:
            await drain(stream, StdoutSink(args.format))
    print(
        f"stopped: {stream.stats.results} results, {stream.stats.dropped_ms:.0f} ms of audio dropped, "
        f"lag {stream.stats.lag_ms:.0f} ms",
        file=sys.stderr,
    )
    return 0
