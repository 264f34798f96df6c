"""CPU cost of live streams against process_file on the same audio (issue 21).

N concurrent ``process_stream`` calls are fed 16-bit PCM in 20 ms chunks (what telephony and
WebRTC deliver) as fast as the engine takes them, and the process CPU time they cost is
compared with ``process_file`` on the same audio (a WAV of the same samples, N times).
Both run in one process pinned to one core with one ONNX thread per model; the ratio, not
the absolute time, is the figure (shared machines). Also ``process_audio_bytes`` on the
same audio, and many short files.

    python benchmarks/bench_stream_cpu.py [--models all|vad|...] [--streams 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import pin_one_core, sample_audio  # noqa: E402

SR = 16_000


async def _measure(models: list[str] | None, n: int, seconds: float, period: int, folder: Path) -> dict[str, float]:
    from deeptone_async import Deeptone

    engine = Deeptone(max_inference_threads=1)
    audio = (sample_audio(seconds) * 32767).astype(np.int16)
    path = folder / "a.wav"
    sf.write(path, audio, SR, subtype="PCM_16")
    chunk = SR // 50  # 20 ms
    await engine.process_file(path, models)  # warm up

    async def feed():
        for pos in range(0, len(audio), chunk):
            yield audio[pos : pos + chunk].tobytes()

    async def one_stream() -> None:
        async for _ in engine.process_stream(feed(), models, output_period=period):
            pass

    out: dict[str, float] = {}
    t = time.process_time()
    for _ in range(n):
        await engine.process_file(path, models, output_period=period)
    out["file"] = time.process_time() - t
    t = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one_stream)
    out["streams"] = time.process_time() - t
    t = time.process_time()
    for _ in range(n):
        await engine.process_audio_bytes(audio, models, output_period=period)
    out["bytes"] = time.process_time() - t
    short = [folder / f"s{i}.wav" for i in range(100)]
    for i, p in enumerate(short):
        sf.write(p, audio[i * 3 * SR % (len(audio) - 3 * SR) :][: 3 * SR], SR, subtype="PCM_16")
    t = time.process_time()
    for p in short:
        await engine.process_file(p, models)
    out["short_files_100x3s"] = time.process_time() - t
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="all", help="comma-separated model keys, or 'all'")
    p.add_argument("--streams", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--period", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    pin_one_core()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models = None if args.models == "all" else args.models.split(",")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            runs.append(anyio.run(_measure, models, args.streams, args.seconds, args.period, Path(tmp)))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    audio_s = args.streams * args.seconds
    print(f"models {args.models}, {args.streams} x {args.seconds:g} s, period {args.period} ms, medians of {args.repeats}:")
    print(f"  process_file        {med['file']:.2f} s CPU ({audio_s / med['file']:.0f}x real time)")
    print(f"  streams (20 ms)     {med['streams']:.2f} s CPU: {med['streams'] / med['file']:.2f}x process_file "
          f"({audio_s / med['streams']:.0f} real-time streams per core)")
    print(f"  process_audio_bytes {med['bytes']:.2f} s CPU: {med['bytes'] / med['file']:.2f}x process_file")
    print(f"  100 files of 3 s    {med['short_files_100x3s']:.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
