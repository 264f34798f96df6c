"""Chaining custom sinks: one writes JSON Lines, one counts speech time.

A sink is any object with ``async send(result)`` and ``async aclose()``;
:func:`~deeptone_async.sinks.tee` passes each result through several sinks on its way to
your loop, :func:`~deeptone_async.sinks.drain` just consumes the stream into them. The
results come from the engine in-process, or from a server with ``--url``.

    python examples/custom_sinks.py                          # the bundled sample
    python examples/custom_sinks.py call.wav --out call.jsonl --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio import AsyncFile

from deeptone_async import Deeptone
from deeptone_async.cli import sample_path
from deeptone_async.client import stream_to_server
from deeptone_async.sinks import SinkBase, tee
from deeptone_async.sources import FileSource


class LabelsJsonl(SinkBase):
    """One compact line per result: ``{"t": seconds, "<model>": "<label>", ...}``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: AsyncFile[str] | None = None
        self.lines = 0

    async def send(self, result: dict[str, Any]) -> None:
        if self._file is None:  # opened at the first result, in a worker thread
            self._file = await anyio.open_file(self.path, "w", encoding="utf-8")
        line = {"t": result["timestamp"] / 1000, **{m: r["result"] for m, r in result["results"].items()}}
        await self._file.write(json.dumps(line) + "\n")
        self.lines += 1

    async def aclose(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await f.aclose()


class SpeechTimer(SinkBase):
    """Adds up the periods whose ``model`` result is ``label`` (speech, by default)."""

    def __init__(self, period_ms: int, model: str = "vad", label: str = "speech") -> None:
        self.period_ms = period_ms
        self.model = model
        self.label = label
        self.speech_ms = 0
        self.total_ms = 0

    async def send(self, result: dict[str, Any]) -> None:
        self.total_ms += self.period_ms
        if result["results"][self.model]["result"] == self.label:
            self.speech_ms += self.period_ms


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="chain a JSON Lines sink and a speech timer")
    p.add_argument("path", nargs="?", default=str(sample_path()), help="audio file (default: the bundled sample)")
    p.add_argument("--out", default="labels.jsonl", help="JSON Lines output")
    p.add_argument("--url", help="stream to this deeptone-async server instead of analysing in-process")
    p.add_argument("--output-period", type=int, default=512)
    args = p.parse_args(argv)

    if args.url:
        results: Any = stream_to_server(args.url, args.path, models=["vad"], output_period=args.output_period)
    else:
        engine = Deeptone()
        results = engine.process_stream(FileSource(args.path, channel=0), ["vad"], output_period=args.output_period)
    jsonl = LabelsJsonl(args.out)
    timer = SpeechTimer(args.output_period)
    async with results:
        # tee: every result goes through both sinks, then on to this loop
        async for result in tee(results, jsonl, timer):
            if result["results"]["vad"]["result"] == "speech" and timer.speech_ms == timer.period_ms:
                print(f"first speech at {result['timestamp'] / 1000:.2f} s", flush=True)
        # (await drain(results, jsonl, timer) does the same without the loop)
    print(f"speech: {timer.speech_ms / 1000:.2f} s of {timer.total_ms / 1000:.2f} s; {jsonl.lines} lines in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
