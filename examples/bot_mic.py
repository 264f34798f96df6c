"""A minimal asyncio voice bot: it listens to the microphone and reacts when the speaker changes.

With ``--url`` it streams the microphone to a deeptone-async server (DeepTone's cloud
protocol); without, it runs the models in-process. Either way the results reach the bot
through a :class:`~deeptone_async.sinks.CallbackSink`, and the bot reacts to every change of
label: with the ``vad`` model that is someone starting or stopping to talk; add a speaker
model (``--models vad,gender`` once one is bundled) and a change of voice shows the same way.

    deeptone-async serve &
    python examples/bot_mic.py --url ws://127.0.0.1:8765 --seconds 30
    python examples/bot_mic.py --device loopback --seconds 10          # no server
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from deeptone_async import Deeptone
from deeptone_async.client import stream_to_server
from deeptone_async.sinks import CallbackSink, drain
from deeptone_async.sources import IterableSource, MicrophoneSource


@dataclass
class Change:
    """A model's label changed at ``timestamp`` ms (``before`` is None at the start)."""

    timestamp: int
    model: str
    before: str | None
    after: str


@dataclass
class SpeakerChangeBot:
    """Keeps the latest label per model and reacts when one changes."""

    last: dict[str, str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    async def on_result(self, result: dict[str, Any]) -> None:
        for model, res in result["results"].items():
            label = res["result"]
            before = self.last.get(model)
            if label != before:
                self.last[model] = label
                change = Change(result["timestamp"], model, before, label)
                self.changes.append(change)
                await self.react(change)

    async def react(self, change: Change) -> None:
        """What the bot does; here it says what it heard (a real bot would answer, mute, log...)."""
        if change.before is None:
            what = f"{change.model}: {change.after}"
        elif change.model == "vad":
            what = "someone started talking" if change.after == "speech" else "quiet now"
        else:
            what = f"{change.model}: {change.before} -> {change.after}"
        print(f"{change.timestamp / 1000:7.2f} s  {what}", flush=True)


async def first_seconds(mic: MicrophoneSource, seconds: float) -> AsyncIterator[Any]:
    """The microphone's blocks until ``seconds`` of audio; the device closes after."""
    wanted = int(seconds * mic.format.sample_rate)
    async with aclosing(mic.__aiter__()) as blocks:
        async for block in blocks:
            yield block[:wanted]
            wanted -= len(block)
            if wanted <= 0:
                return


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a deeptone-async server (ws://host:port); in-process models without")
    p.add_argument("--api-key", help="the server's key (default: $DEEPTONE_API_KEY)")
    p.add_argument("--device", help="input device name or index (default: the system's)")
    p.add_argument("--sample-rate", type=int, default=16_000)
    p.add_argument("--models", default="vad", help="comma-separated model names")
    p.add_argument("--output-period", type=int, default=256, help="ms between results")
    p.add_argument("--seconds", type=float, default=30.0, help="listen this long, then stop")
    return p.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device: str | int | None = int(args.device) if args.device and args.device.isdigit() else args.device
    mic = MicrophoneSource(device, sample_rate=args.sample_rate)
    source = IterableSource(first_seconds(mic, args.seconds), mic.format)
    models = [m for m in args.models.split(",") if m]
    if args.url:
        results: Any = stream_to_server(args.url, source, models=models, output_period=args.output_period, api_key=args.api_key)
    else:
        results = Deeptone().process_stream(source, models, output_period=args.output_period)
    bot = SpeakerChangeBot()
    print(f"listening for {args.seconds:g} s on {device if device is not None else 'the default input'}", flush=True)
    async with results:
        count = await drain(results, CallbackSink(bot.on_result))
    print(f"done: {count} results, {len(bot.changes)} changes, {mic.dropped_frames} frames dropped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
