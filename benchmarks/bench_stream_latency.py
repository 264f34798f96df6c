"""Latency and memory of concurrent real-time streams in one process (issue 21).

N streams are fed 16-bit PCM in 20 ms chunks at real-time pace, their starts spread over
one output period as calls starting at random moments are (``--aligned``: all within one
20 ms chunk, so every stream's period ends at once: the worst case). For every result, the latency is the time from the moment the chunk
holding its period's last sample was handed to the engine to the moment the result came
out; p50 / p99 / max over all results of all streams. Memory: the process's peak RSS
growth while the streams run, per stream. One core, one ONNX thread per model.

    python benchmarks/bench_stream_latency.py --streams 100 --models vad --seconds 30
    python benchmarks/bench_stream_latency.py --streams 100 --models all --no-batching
    python benchmarks/bench_stream_latency.py --streams 100 --models vad --aligned --live-frames off
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import pin_one_core, sample_audio  # noqa: E402

SR = 16_000
CHUNK = SR // 50  # 20 ms


async def run(
    n: int,
    models: list[str] | None,
    seconds: float,
    period_ms: int,
    batching: bool,
    aligned: bool,
    live_frames: bool | None = None,
    interval_ms: float = 10.0,
) -> dict[str, float]:
    from deeptone_async import Deeptone

    engine = Deeptone(max_inference_threads=1, batch_streams=batching, batch_interval_ms=interval_ms)
    audio = (sample_audio(seconds) * 32767).astype(np.int16)
    await engine.process_audio_bytes(audio[:SR], models)  # warm up
    period = period_ms * SR // 1000
    latencies: list[float] = []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    start = time.monotonic() + 0.5

    async def one(k: int) -> None:
        sent: dict[int, float] = {}  # period index -> when its last chunk was handed over
        # streams that start together have their period ends within one chunk of each other
        # (the worst case); calls that start at random moments spread them over the period
        offset = k * CHUNK / n / SR if aligned else k * period / n / SR

        async def feed():
            for i, lo in enumerate(range(0, len(audio), CHUNK)):
                delay = start + offset + (i + 1) * CHUNK / SR - time.monotonic()
                if delay > 0:
                    await anyio.sleep(delay)  # the chunk is complete at this moment
                hi = min(lo + CHUNK, len(audio))
                for p in range(lo // period, hi // period + 1):
                    if lo <= (p + 1) * period - 1 < hi or (hi == len(audio) and p == (len(audio) - 1) // period):
                        sent[p] = time.monotonic()
                yield audio[lo:hi].tobytes()

        async for r in engine.process_stream(feed(), models, output_period=period_ms, live_frames=live_frames):
            p = r["timestamp"] // period_ms
            latencies.append(time.monotonic() - sent[p])

    async with anyio.create_task_group() as tg:
        for k in range(n):
            tg.start_soon(one, k)
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * q[98],
        "max_ms": 1000 * max(latencies),
        "results": len(latencies),
        "rss_per_stream_kb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / n,
        "cpu_share": (time.process_time() - cpu0) / (time.monotonic() - start),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--models", default="vad", help="comma-separated model keys, or 'all'")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--period", type=int, default=1024)
    p.add_argument("--no-batching", action="store_true")
    p.add_argument("--aligned", action="store_true", help="every stream's periods end within 20 ms of the others'")
    p.add_argument("--live-frames", choices=["auto", "on", "off"], default="auto", help="process_stream's live_frames")
    p.add_argument("--interval-ms", type=float, default=10.0, help="the engine's batch_interval_ms")
    args = p.parse_args(argv)
    pin_one_core()
    models = None if args.models == "all" else args.models.split(",")
    live = {"auto": None, "on": True, "off": False}[args.live_frames]
    r = anyio.run(
        run, args.streams, models, args.seconds, args.period, not args.no_batching, args.aligned, live, args.interval_ms
    )
    print(
        f"| {args.streams} real-time streams, {args.models}, period {args.period} ms, "
        f"{'batched' if not args.no_batching else 'unbatched'}, {'aligned' if args.aligned else 'spread'} periods, "
        f"live frames {args.live_frames}, interval {args.interval_ms:g} ms, "
        f"1 core, {args.seconds:g} s | "
        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms over {r['results']} results | "
        f"CPU {100 * r['cpu_share']:.0f}% of the core | peak RSS growth {r['rss_per_stream_kb']:.0f} KB per stream |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
