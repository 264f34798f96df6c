"""Analyse a file: stream its results as they come, then print its summary.

    python examples/analyse_file.py [PATH]      # the bundled sample by default
"""

from __future__ import annotations

import sys

import anyio

from deeptone_async import Deeptone
from deeptone_async.cli import sample_path
from deeptone_async.sinks import StdoutSink, tee
from deeptone_async.sources import FileSource


async def main(path: str) -> None:
    engine = Deeptone()
    models = [engine.models.Vad]
    # live: one line per second of audio, as soon as that second is analysed
    async with engine.process_stream(FileSource(path, channel=0), models) as stream:
        async for _ in tee(stream, StdoutSink()):
            pass
    # whole file: fractions of the duration per label
    out = await engine.process_file(path, models, include_summary=True)
    for channel, entry in out["channels"].items():
        print(f"channel {channel}:", {k: round(v, 3) for k, v in entry["summary"]["vad"].items()})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else str(sample_path()))
