"""Batch throughput (issue 17); results are recorded in benchmarks/RESULTS.md.

    python benchmarks/bench_batch.py make   [--dir /tmp/deeptone-batch]      # the two archives
    python benchmarks/bench_batch.py local  [--sets short,long] [--models vad,all] [--workers 1,2]
    python benchmarks/bench_batch.py ray    [--sets short] [--models vad,all] [--workers 2]
    python benchmarks/bench_batch.py ray-warm ...   # a local cluster started once, outside the timing
    python benchmarks/bench_batch.py overhead
    python benchmarks/bench_batch.py memory [--models all]   # a worker's peak RSS on 1, 10, 60 min files

Archives: ``short`` is 500 FLAC files of 3-60 s (uniform, seeded), ``long`` 20 FLAC files of
10 min; their audio is the bundled demo sample (generated speech, notes and noise) from a
random offset, tiled. Each run is ``deeptone_async.batch.analyse`` into a fresh Parquet
folder and prints a markdown row: hours of audio per wall-clock hour, and the run's wall
time, which includes starting the worker processes (or the Ray cluster) and their engines;
for local runs also per CPU hour and the cores used (CPU seconds of the driver and its
workers over wall seconds), which tell a starved machine from a run that does not scale.

``overhead`` fits ``elapsed_s = a + b * duration_s`` over the ``files`` table of a
one-worker run of the short archive (``a``: per-file cost: opening, decoding set-up,
results to Arrow; ``b``: per audio second), and times a worker's start (a spawned process
importing the package and loading the engine). The machine is shared: quote medians.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
DEFAULT_DIR = Path(tempfile.gettempdir()) / "deeptone-batch"


def make(root: Path) -> None:
    from deeptone_async.cli import sample_path

    base, rate = sf.read(sample_path(), dtype="float32")
    assert rate == SR
    rng = np.random.default_rng(17)
    for name, durations in (("short", rng.uniform(3, 60, 500)), ("long", [600.0] * 20)):
        folder = root / name
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        for i, seconds in enumerate(durations):
            n = int(seconds * SR)
            start = int(rng.integers(0, len(base)))
            x = np.resize(np.roll(base, -start), n)
            sf.write(folder / f"{name}{i:03d}.flac", x, SR)
        print(f"{folder}: {len(durations)} files, {sum(durations) / 3600:.2f} h", flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the pool's workers, after the run)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(root: Path, dataset: str, models: str, workers: int, ray: bool) -> tuple[float, float, int, float]:
    from deeptone_async import batch

    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        options = batch.BatchOptions(models=None if models == "all" else tuple(models.split("+")))
        start, cpu = time.perf_counter(), cpu_seconds()
        report = batch.analyse([root / dataset], out / "out", options=options, workers=workers, ray=ray)
        wall = time.perf_counter() - start
        assert report.failed == 0, report.failures
        return report.audio_s, wall, report.analysed, cpu_seconds() - cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)


def row(kind: str, dataset: str, models: str, workers: int, audio_s: float, walls: list[float], files: int,
        cpus: list[float]) -> None:
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    per_cpu = f"{audio_s / cpu:.0f}" if kind == "local" else "n/a"  # Ray's actors are not our children
    print(f"| {kind} | {dataset} ({files} files, {audio_s / 3600:.2f} h) | {models} | {workers} | "
          f"{audio_s / wall:.0f} | {per_cpu} | {cpu / wall:.2f} | {', '.join(f'{w:.1f}' for w in walls)} |", flush=True)


def bench(root: Path, kind: str, sets: list[str], models: list[str], workers: list[int], repeats: int) -> None:
    print("| runner | archive | models | workers | hours of audio per wall-clock hour | per CPU hour | cores used | wall s (each run) |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in sets:
        for m in models:
            for w in workers:
                walls, cpus = [], []
                for _ in range(repeats):
                    audio_s, wall, files, cpu = run_once(root, dataset, m, w, kind == "ray")
                    walls.append(wall)
                    cpus.append(cpu)
                row(kind, dataset, m, w, audio_s, walls, files, cpus)


def overhead(root: Path) -> None:
    import pyarrow.parquet as pq

    from deeptone_async import batch

    out = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        for models in ("vad", "all"):
            options = batch.BatchOptions(models=None if models == "all" else (models,))
            batch.analyse([root / "short"], out / models, options=options, workers=1)
            files = pq.read_table(out / models / "files").to_pylist()
            d = np.array([f["duration_s"] for f in files])
            e = np.array([f["elapsed_s"] for f in files])
            b, a = np.polyfit(d, e, 1)
            print(f"| {models} | {a * 1000:.1f} ms | {b * 1000:.3f} ms ({1 / b:.0f}x real time) | "
                  f"{a / (a + b * d.mean()):.1%} |")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    code = (
        "import time; t = time.perf_counter(); from deeptone_async.batch._work import Worker, Job;"
        "from deeptone_async.batch import BatchOptions; Worker(Job(BatchOptions(), 'jsonl', '', None));"
        "print(time.perf_counter() - t)"
    )
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        starts.append(time.perf_counter() - t)
    print(f"worker start (spawn, import, engine with all six models): median {statistics.median(starts):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in starts)})")


def memory(root: Path, models: str) -> None:
    """A worker's peak RSS (a fresh process each) analysing one file of 1, 10 and 60 minutes
    into Parquet with raw values: what it holds besides its engine as files get longer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import write_long_file

    code = (
        "import resource, sys, tempfile;"
        "from deeptone_async.batch import BatchOptions;"
        "from deeptone_async.batch._work import Worker, Job;"
        "from deeptone_async.batch._run import _raw_labels;"
        "m = sys.argv[2]; o = BatchOptions(models=None if m == 'all' else tuple(m.split('+')), include_raw_values=True);"
        "w = Worker(Job(o, 'parquet', tempfile.mkdtemp(), _raw_labels(o)));"
        "a = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "r = w.run([sys.argv[1]]).records[0]; assert r.ok, r;"
        "print(a // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    )
    print("| file | models | peak RSS after the engine loaded | peak RSS after the file |")
    print("|---|---|---|---|")
    for minutes in (1, 10, 60):
        path = root / f"long_{minutes * 60}s.wav"
        if not path.exists():
            write_long_file(minutes * 60, root)
        run = subprocess.run([sys.executable, "-c", code, str(path), models], check=True, capture_output=True, text=True)
        loaded, peak = run.stdout.split()
        print(f"| {minutes} min | {models} | {loaded} MB | {peak} MB |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["make", "local", "ray", "ray-warm", "overhead", "memory"])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--sets", default="short,long")
    p.add_argument("--models", default="vad,all", help="comma-separated; 'all' or names joined with +")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    make(a.dir)
    if a.what == "ray-warm":  # an existing cluster: analyse() uses the initialised Ray as it is
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=max(int(w) for w in a.workers.split(",")), include_dashboard=False,
                 configure_logging=False, log_to_driver=False)
        print(f"ray.init: {time.perf_counter() - t:.1f} s")
    if a.what in ("local", "ray", "ray-warm"):
        kind = "ray" if a.what.startswith("ray") else "local"
        bench(a.dir, kind, a.sets.split(","), a.models.split(","), [int(w) for w in a.workers.split(",")], a.repeats)
    elif a.what == "overhead":
        overhead(a.dir)
    elif a.what == "memory":
        memory(a.dir, a.models.split(",")[-1])


if __name__ == "__main__":
    main()
