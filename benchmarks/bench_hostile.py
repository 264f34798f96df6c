"""The hostile inputs of issue 19, rerun one by one: time, memory and event-loop blocking.

Each case runs in a fresh process (so peak RSS is its own) with a heartbeat task that
measures the longest stretch the event loop did not run it, and, for the server cases, a
client polling ``GET /health`` throughout. Printed as a markdown table (the one in
``benchmarks/RESULTS.md``):

    python benchmarks/bench_hostile.py            # every case
    python benchmarks/bench_hostile.py --case upload-7hz
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import soundfile as sf

from deeptone_async import Deeptone, DeeptoneError
from deeptone_async.sources import TcpSource

SR = 16_000
#: What is being measured: reset by _mark() once a case's set-up (a server start) is done.
_STATE: dict[str, float] = {"block": 0.0, "rss0": 0.0, "start": 0.0}


def _mark() -> None:
    _STATE.update(block=0.0, rss0=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, start=time.perf_counter())


def _wav(x: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


async def _file(engine: Deeptone, blob: bytes, suffix: str = ".wav", **kw: Any) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(blob)
        await engine.process_file(path, None, **kw)
    return "result"


async def case_file_7hz(engine: Deeptone) -> str:
    return await _file(engine, _wav(np.zeros(32_000, np.int16), 7))


async def case_file_1hz(engine: Deeptone) -> str:
    return await _file(engine, _wav(np.zeros(32_000, np.int16), 1))


async def case_file_1000ch(engine: Deeptone) -> str:
    return await _file(engine, _wav(np.zeros((160, 1000), np.int16), SR))


async def case_bytes_rate_1(engine: Deeptone) -> str:
    await engine.process_audio_bytes(np.zeros(SR, np.int16), None, rate_in=1)
    return "result"


async def case_bytes_rate_1e15(engine: Deeptone) -> str:
    await engine.process_audio_bytes(np.zeros(SR, np.int16), None, rate_in=10**15)
    return "result"


async def case_channels_first(engine: Deeptone) -> str:
    await engine.process_audio_bytes(np.zeros((2, SR), np.float32), None)
    return "result"


async def case_float_1e20(engine: Deeptone) -> str:
    x = np.full(SR, 1e20, np.float32)
    await engine.process_audio_bytes(x, None, include_raw_values=True)
    return "result"


async def case_raw_unchunked(engine: Deeptone) -> str:
    return await _file(engine, b"", ".raw", use_chunking=False)


async def case_stereo_stream(engine: Deeptone) -> str:
    chunks = [np.zeros((1024, 2), np.int16)] * 20
    async for _ in engine.process_stream(chunks, ["vad"]):
        pass
    return "result"


async def case_tcp_server_flood(engine: Deeptone) -> str:
    """A client sends 1 GB as fast as it can; the consumer takes 3 s over 20 s of audio."""
    src = TcpSource("127.0.0.1", 0, listen=True)
    await src.open()
    sent = [0]

    def flood() -> None:
        with socket.create_connection(("127.0.0.1", src.port)) as s:
            s.settimeout(3.0)
            piece = bytes(1 << 16)
            try:
                while sent[0] < 1 << 30:
                    s.sendall(piece)
                    sent[0] += len(piece)
            except OSError:
                pass

    thread = threading.Thread(target=flood)
    thread.start()
    n = 0
    async with engine.process_stream(src, ["vad"]) as stream:
        async for _ in stream:
            n += 1
            await anyio.sleep(0.15)  # a slow consumer
            if n == 20:
                break
    await anyio.to_thread.run_sync(thread.join)
    return f"sender held at {sent[0] / 2**20:.0f} MiB"


async def _serve_and_poll(engine: Deeptone, request: Callable[[Any, str], Awaitable[Any]]) -> str:
    import httpx

    from deeptone_async.server import running_server

    worst = [0.0]
    async with running_server(engine=engine) as srv, httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        assert (await http.get("/health")).status_code == 200
        _mark()  # the server's start-up (imports on the loop) is not the case's
        done = anyio.Event()

        async def poll() -> None:
            while not done.is_set():
                t = time.perf_counter()
                assert (await http.get("/health")).status_code == 200
                worst[0] = max(worst[0], time.perf_counter() - t)
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            response = await request(http, srv.url)
            done.set()
    return f"HTTP {response.status_code}; /health worst {1000 * worst[0]:.0f} ms"


async def case_upload_7hz(engine: Deeptone) -> str:
    blob = _wav(np.zeros(32_000, np.int16), 7)  # 63 KB
    return await _serve_and_poll(engine, lambda http, _: http.post("/analyse?filename=x.wav", content=blob))


async def case_upload_1000ch(engine: Deeptone) -> str:
    blob = _wav(np.zeros((160, 1000), np.int16), SR)
    return await _serve_and_poll(engine, lambda http, _: http.post("/analyse?filename=x.wav", content=blob))


CASES: dict[str, Callable[[Deeptone], Awaitable[str]]] = {
    "file-7hz": case_file_7hz,
    "file-1hz": case_file_1hz,
    "file-1000ch": case_file_1000ch,
    "bytes-rate-1": case_bytes_rate_1,
    "bytes-rate-1e15": case_bytes_rate_1e15,
    "array-channels-first": case_channels_first,
    "float-1e20": case_float_1e20,
    "raw-unchunked-empty": case_raw_unchunked,
    "stereo-stream": case_stereo_stream,
    "tcp-server-flood": case_tcp_server_flood,
    "upload-7hz": case_upload_7hz,
    "upload-1000ch": case_upload_1000ch,
}


async def _measure(name: str) -> dict[str, Any]:
    engine = Deeptone()
    await engine.process_audio_bytes(np.zeros(SR, np.int16), None)  # warm: lazy imports, first calls
    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.005)
            now = time.perf_counter()
            _STATE["block"] = max(_STATE["block"], now - last - 0.005)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        await anyio.sleep(0.05)
        _mark()
        try:
            with anyio.fail_after(60):
                outcome = await CASES[name](engine)
        except DeeptoneError as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
        wall = time.perf_counter() - _STATE["start"]
        tg.cancel_scope.cancel()
    return {
        "case": name,
        "outcome": outcome,
        "wall_s": round(wall, 3),
        "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _STATE["rss0"]) / 1024, 1),
        "loop_block_ms": round(1000 * _STATE["block"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=sorted(CASES), help="run one case in this process (default: each in its own)")
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(anyio.run(_measure, args.case)))
        return 0
    print("| case | outcome | wall | peak RSS growth | longest loop block |")
    print("|---|---|---|---|---|")
    for name in CASES:
        proc = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, timeout=300)
        if proc.returncode:
            print(f"| {name} | FAILED: {proc.stderr.strip().splitlines()[-1][:120]} | | | |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {name} | {r['outcome']} | {r['wall_s']:.2f} s | {r['rss_growth_mb']:.0f} MB | {r['loop_block_ms']:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
