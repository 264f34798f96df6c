"""Memory a live stream holds, and that it does not grow with the stream's length (issue 21).

N concurrent ``process_stream`` calls are fed 16-bit PCM in 20 ms chunks. Every stream stops
feeding (its generator waits, as a quiet caller's would) after ``--first`` seconds of audio,
then again after ``--second`` seconds; at each pause, once the pipeline has drained, the
memory the process holds is measured, and once more after every stream has ended:

- traced: Python and numpy allocations (``tracemalloc``: frames held for a period, model
  states, feature histories, queues, aggregator logs, the generators), the figure that
  says what a stream keeps;
- RSS: the resident set, which also counts ONNX Runtime's arenas and the allocator's
  free lists (noisier; it does not shrink when memory is freed).

Per stream = (measure - the same measure before the streams started) / N. Memory is not
time, so the figures do not depend on what else the machine runs.

    python benchmarks/bench_stream_memory.py [--models vad | all | vad,gender,...] [--streams 50]
        [--first 10] [--second 60] [--period 1024]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import sample_audio  # noqa: E402

SR = 16_000
CHUNK = SR // 50  # 20 ms
#: issue 21's "all models": the six the issue measured
SIX = ["vad", "speech", "speech-rt", "gender", "arousal", "emotions"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _held() -> tuple[int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], _rss()


async def measure(models: list[str], n: int, first: float, second: float, period: int) -> dict[str, Any]:
    """Per-stream memory at the two pauses and after the streams ended; blocks the loop's thread."""
    from deeptone_async import Deeptone

    engine = Deeptone(max_inference_threads=1)
    audio = (sample_audio(second + 2) * 32767).astype(np.int16)  # a pause at `second` needs audio after it
    async for _ in engine.process_stream([audio[: 4 * SR].tobytes()], models, output_period=period):
        pass  # warm up: sessions, arenas, the batcher

    pauses = [int(first * SR), int(second * SR)]
    arrived = [0, 0]
    go = [anyio.Event(), anyio.Event()]
    results = [0]

    async def feed():  # type: ignore[no-untyped-def]
        stage = 0
        for pos in range(0, len(audio), CHUNK):
            if stage < 2 and pos >= pauses[stage]:
                arrived[stage] += 1
                await go[stage].wait()
                stage += 1
            yield audio[pos : pos + CHUNK].tobytes()

    async def one_stream() -> None:
        async for _ in engine.process_stream(feed(), models, output_period=period):
            results[0] += 1

    async def drained(stage: int) -> None:
        while arrived[stage] < n:
            await anyio.sleep(0.05)
        want = n * (pauses[stage] // (period * 16))
        while results[0] < want:  # every period before the pause has its result
            await anyio.sleep(0.05)
        await anyio.sleep(0.5)

    tracemalloc.start()
    base = _held()
    out: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one_stream)
        for stage, label in enumerate((f"after {first:g} s", f"after {second:g} s")):
            await drained(stage)
            held = _held()
            out[label] = {"traced_kb": (held[0] - base[0]) / n / 1024, "rss_kb": (held[1] - base[1]) / n / 1024}
            go[stage].set()
    held = _held()
    out["after the streams ended"] = {"traced_kb": (held[0] - base[0]) / n / 1024, "rss_kb": (held[1] - base[1]) / n / 1024}
    tracemalloc.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="vad", help="'all' (the six of issue 21) or comma-separated model keys")
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--first", type=float, default=10.0)
    p.add_argument("--second", type=float, default=60.0)
    p.add_argument("--period", type=int, default=1024)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models = SIX if args.models == "all" else args.models.split(",")
    out = anyio.run(measure, models, args.streams, args.first, args.second, args.period)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"models {args.models}, {args.streams} streams of 20 ms chunks, period {args.period} ms; per stream:")
    for label, m in out.items():
        print(f"  {label:<26} traced {m['traced_kb']:8.1f} KB   RSS {m['rss_kb']:8.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
