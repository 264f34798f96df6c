"""Load benchmark of the streaming server: real-time streams per core, and added latency.

    python benchmarks/bench_server.py                                   # both modes, default ramp
    python benchmarks/bench_server.py --modes batched --streams 100,200,300 --seconds 8
    python benchmarks/bench_server.py --inference-only                  # Silero cost vs batch size

The server (``deeptone-async serve``) runs in its own process pinned to one core
(``os.sched_setaffinity``); this process, pinned to another core, plays N clients that each
send 16 kHz 16-bit audio in 64 ms messages paced at real time, with random phases, over
loopback WebSockets, and read their results as they come. For every complete output period
the *added latency* is the time from sending the message that completes the period's audio
to receiving its result. A step *keeps up* when every result arrives, the p99 latency stays
under ``--max-p99-ms`` and latency does not grow during the step; the ramp stops at the
first step that does not. Server CPU is read from ``/proc/<pid>/stat``.

Modes: ``batched`` (the default server: one inference call for the waiting frames of all
streams), ``batched:<ms>`` (the same with ``--batch-interval-ms``) and ``unbatched``
(``--no-batching``: each stream its own calls). The whole run is
bounded by ``--budget`` seconds. Loopback only; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SR = 16_000
CHUNK_MS = 64
CHUNK_BYTES = 2 * SR * CHUNK_MS // 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    mode: str
    streams: int
    seconds: float
    results: int = 0
    expected: int = 0
    median_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    drift_ms: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    server_rss_mb: float = 0.0
    client_late_p99_ms: float = 0.0
    mean_batch: float | None = None
    errors: list[str] = field(default_factory=list)
    keeps_up: bool = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
        doc: dict[str, Any] = json.load(r)
    return doc


def start_server(port: int, core: int, mode: str, max_batch: int, log: Any) -> subprocess.Popen[bytes]:
    """``mode``: ``unbatched``, ``batched`` or ``batched:<interval ms>``."""
    cmd = [sys.executable, "-m", "deeptone_async", "serve", "--port", str(port), "--log-level", "warning"]
    cmd += ["--max-connections", "2000", "--idle-timeout", "0", "--max-batch", str(max_batch)]
    if mode == "unbatched":
        cmd.append("--no-batching")
    elif mode.startswith("batched:"):
        cmd += ["--batch-interval-ms", mode.split(":", 1)[1]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=lambda: os.sched_setaffinity(0, {core})
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            health(port)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


async def run_step(port: int, pid: int, mode: str, n: int, seconds: float, period: int, max_p99: float) -> Step:
    from websockets.asyncio.client import connect

    step = Step(mode, n, seconds)
    chunks = int(seconds * 1000 // CHUNK_MS)
    per_period = period // CHUNK_MS
    step.expected = n * (chunks // per_period)
    rng = np.random.default_rng(n)
    audio = (rng.standard_normal(chunks * CHUNK_BYTES // 2) * 0.05 * 32768).astype("<i2").tobytes()
    url = f"ws://127.0.0.1:{port}/stream?models=vad&output_period={period}"
    latencies: list[tuple[float, float]] = []  # (send time, latency)
    late: list[float] = []
    sem = asyncio.Semaphore(32)

    async def open_ws() -> Any:
        async with sem:
            return await connect(url, compression=None, open_timeout=30, ping_interval=None, max_queue=None)

    conns = await asyncio.gather(*(open_ws() for _ in range(n)), return_exceptions=True)
    for c in conns:
        if isinstance(c, BaseException):
            step.errors.append(f"connect: {c!r}")
    live = [c for c in conns if not isinstance(c, BaseException)]
    t0 = time.monotonic() + 0.5

    async def client(ws: Any) -> None:
        sent_at = [0.0] * chunks
        start = t0 + random.random() * CHUNK_MS / 1000  # a random phase, as real streams have

        async def receive() -> None:
            async for message in ws:
                now = time.monotonic()
                ts = json.loads(message)["results"]["channels"]["0"]["timestamp"]
                last_chunk = (ts + period) // CHUNK_MS - 1
                if last_chunk < chunks and sent_at[last_chunk]:
                    latencies.append((sent_at[last_chunk] - t0, 1000 * (now - sent_at[last_chunk])))

        reader = asyncio.create_task(receive())
        try:
            for i in range(chunks):
                target = start + i * CHUNK_MS / 1000
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                late.append(max(0.0, 1000 * (time.monotonic() - target)))
                await ws.send(audio[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
                sent_at[i] = time.monotonic()
            await ws.send(b"")
            await asyncio.wait_for(reader, timeout=30)
        except Exception as exc:
            step.errors.append(repr(exc))
        finally:
            reader.cancel()
            await ws.close()

    cpu0, wall0, own0 = proc_cpu_s(pid), time.monotonic(), time.process_time()
    rss = 0.0

    async def sample_rss() -> None:
        nonlocal rss
        while True:
            rss = max(rss, proc_rss_mb(pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    await asyncio.gather(*(client(ws) for ws in live))
    sampler.cancel()
    elapsed = time.monotonic() - wall0
    step.server_cpu = (proc_cpu_s(pid) - cpu0) / elapsed
    step.client_cpu = (time.process_time() - own0) / elapsed
    step.server_rss_mb = rss
    step.results = len(latencies)
    if latencies:
        lat = np.array([x[1] for x in latencies])
        when = np.array([x[0] for x in latencies])
        step.median_ms = float(np.median(lat))
        step.p99_ms = float(np.percentile(lat, 99))
        step.max_ms = float(lat.max())
        first, last = lat[when < seconds / 3], lat[when > 2 * seconds / 3]
        if len(first) and len(last):
            step.drift_ms = float(np.median(last) - np.median(first))
    step.client_late_p99_ms = float(np.percentile(late, 99)) if late else 0.0
    step.keeps_up = (
        not step.errors
        and step.results >= step.expected
        and step.p99_ms <= max_p99
        and step.drift_ms <= max(50.0, 0.25 * max_p99)
    )
    return step


def bench_inference(core: int) -> None:
    """Silero VAD cost per stream-frame against batch size: what cross-stream batching saves.

    Timed in process CPU time, so time the shared core spends on other jobs is left out.
    """
    os.sched_setaffinity(0, {core})
    from deeptone_async import Deeptone

    engine = Deeptone()
    _, plan = engine.plan(["vad"])
    print("| streams per call | CPU ms per call | CPU us per stream-frame |\n|---|---|---|")
    for batch in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        states = [plan.new_stream() for _ in range(batch)]
        frames = (np.random.default_rng(0).standard_normal((batch, 1, 1024)) * 0.1).astype(np.float32)
        plan.run(frames, states)
        calls = max(20, 800 // batch)
        times = []
        for _ in range(5):
            t = time.process_time()
            for _ in range(calls):
                plan.run(frames, states)
            times.append((time.process_time() - t) / calls)
        per_call = float(np.median(times))
        print(f"| {batch} | {1000 * per_call:.3f} | {1e6 * per_call / batch:.0f} |", flush=True)


def fmt_row(s: Step) -> str:
    batch = f"{s.mean_batch:.1f}" if s.mean_batch is not None else "-"
    return (
        f"| {s.mode} | {s.streams} | {'yes' if s.keeps_up else 'no'} | {s.results}/{s.expected} | "
        f"{s.median_ms:.1f} | {s.p99_ms:.1f} | {s.max_ms:.0f} | {s.drift_ms:+.1f} | {100 * s.server_cpu:.0f}% | "
        f"{s.server_rss_mb:.0f} | {batch} | {100 * s.client_cpu:.0f}% | {s.client_late_p99_ms:.1f} |"
    )


HEADER = (
    "| mode | streams | keeps up | results | median ms | p99 ms | max ms | drift ms | server CPU | RSS MB | "
    "mean batch | client CPU | client late p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--modes", default="batched,unbatched", help="comma-separated: unbatched, batched, batched:<interval ms>"
    )
    p.add_argument("--streams", default="50,75,100,125,150,175,200,250", help="the ramp of concurrent streams")
    p.add_argument("--seconds", type=float, default=6.0, help="audio per stream per step")
    p.add_argument("--output-period", type=int, default=512, help="ms between results")
    p.add_argument("--max-p99-ms", type=float, default=500.0, help="a step keeps up below this p99 latency")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--budget", type=float, default=115.0, help="stop starting steps after this many seconds")
    p.add_argument("--json", help="write every step here")
    p.add_argument("--inference-only", action="store_true", help="only time Silero calls against batch size")
    args = p.parse_args()
    if args.inference_only:
        bench_inference(args.server_core)
        return 0

    began = time.monotonic()
    os.sched_setaffinity(0, {args.client_core})
    ramp = [int(x) for x in args.streams.split(",")]
    steps: list[Step] = []
    print(f"server on core {args.server_core}, clients on core {args.client_core}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print(HEADER, flush=True)
    log = tempfile.NamedTemporaryFile("w", prefix="bench_server_", suffix=".log", delete=False)
    for mode in args.modes.split(","):
        port = free_port()
        server = start_server(port, args.server_core, mode, args.max_batch, log)
        try:
            for n in ramp:
                if time.monotonic() - began + args.seconds + 4 > args.budget:
                    print(f"(budget of {args.budget:g} s reached)", flush=True)
                    break
                before = health(port).get("batching") or {}
                step = asyncio.run(run_step(port, server.pid, mode, n, args.seconds, args.output_period, args.max_p99_ms))
                after = health(port).get("batching") or {}
                if after:
                    calls = after["calls"] - before.get("calls", 0)
                    step.mean_batch = (after["blocks"] - before.get("blocks", 0)) / calls if calls else 0.0
                steps.append(step)
                print(fmt_row(step), flush=True)
                if not step.keeps_up:
                    break
        finally:
            server.terminate()
            server.wait(timeout=15)
    best = {m: max([s.streams for s in steps if s.mode == m and s.keeps_up], default=0) for m in args.modes.split(",")}
    log.close()
    print(f"\nmost streams kept up: {best}; total {time.monotonic() - began:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f}; server log {log.name}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "steps": [asdict(s) for s in steps], "best": best}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
