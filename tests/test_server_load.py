"""The server under load: many clients at once, clients that vanish, clients that do not read."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import uvicorn
from conftest import noise, tone
from websockets.asyncio.client import connect

from deeptone_async import Deeptone, ModelSpec
from deeptone_async.batching import StreamBatcher
from deeptone_async.framer import FrameBlock
from deeptone_async.inference import StreamState, infer
from deeptone_async.server import (
    ServerSettings,
    StreamServer,
    create_app,
    running_server,
    uvicorn_config,
)


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x * 32768), -32768, 32767).astype("<i2").tobytes()


def audio_for(i: int, seconds: float = 2.0) -> np.ndarray:
    """A different signal per client, so crossed streams would show."""
    if i % 2:
        return tone(seconds, freq=200 + 40 * i, amp=0.05 + 0.01 * i)
    return noise(seconds, amp=0.02 * (i + 1), seed=i)


async def settle(predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_twenty_concurrent_clients_get_their_own_results(engine: Deeptone) -> None:
    n = 20
    signals = [audio_for(i) for i in range(n)]
    expected = []
    for s in signals:
        stream = engine.process_stream(pcm16(s), ["vad"], output_period=256, include_raw_values=True)
        expected.append([r async for r in stream])
    got: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    before = engine.batching_stats()
    async with running_server(engine=engine) as srv:
        url = srv.ws_url + "?models=vad&output_period=256&include_raw_values=true"

        async def client(i: int) -> None:
            data = pcm16(signals[i])
            async with connect(url, compression=None) as ws:
                for lo in range(0, len(data), 4096):  # 128 ms per message, as fast as it goes
                    await ws.send(data[lo : lo + 4096])
                await ws.send(b"")
                async for message in ws:
                    got[i].append(json.loads(message)["results"]["channels"]["0"])
                assert ws.close_code == 1000

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(client, i)
        after = engine.batching_stats()
    assert got == expected
    assert before is not None and after is not None
    blocks, calls = after["blocks"] - before["blocks"], after["calls"] - before["calls"]
    assert blocks >= n and blocks / calls > 1.0, (blocks, calls)  # streams shared inference calls


async def test_a_client_vanishing_mid_stream_leaves_nothing_behind(engine: Deeptone) -> None:
    async with running_server(engine=engine) as srv:
        deeptone = srv.deeptone
        assert deeptone is not None
        url = srv.ws_url + "?models=vad&output_period=64"
        # warm up: the first connection starts worker threads that stay pooled
        async with connect(url, compression=None) as ws:
            await ws.send(pcm16(noise(0.5)))
            await ws.send(b"")
            _ = [m async for m in ws]
        await settle(lambda: deeptone.slots.active == 0)
        tasks_before = len(asyncio.all_tasks())
        threads_before = threading.active_count()

        for how in ("abort", "close"):
            ws = await connect(url, compression=None)
            data = pcm16(noise(10.0, amp=0.1))
            for lo in range(0, 64_000, 2048):
                await ws.send(data[lo : lo + 2048])
            await ws.recv()  # the stream is running
            await settle(lambda: deeptone.slots.active == 1)
            if how == "abort":
                ws.transport.abort()  # the TCP connection just drops, no close frame
            else:
                await ws.close()  # a close frame mid-stream, without the end frame
            await settle(lambda: deeptone.slots.active == 0 and not deeptone.slots.streams)
            await settle(lambda: len(asyncio.all_tasks()) <= tasks_before)
            assert engine._stream_batcher().pending == 0
            assert threading.active_count() <= threads_before


@asynccontextmanager
async def small_buffer_server(engine: Deeptone, settings: ServerSettings) -> AsyncIterator[tuple[int, StreamServer]]:
    """The app under uvicorn on a listening socket with small kernel buffers (inherited by
    accepted connections), so that a client that does not read fills them in moments."""
    app = create_app(engine, settings=settings)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, port=port))
    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            await settle(lambda: server.started)
            try:
                yield port, app.state.deeptone
            finally:
                server.should_exit = True


async def test_a_client_that_does_not_read_gets_backpressure_not_server_memory(engine: Deeptone) -> None:
    settings = ServerSettings(queue_messages=4)
    chunk = pcm16(noise(0.064, amp=0.1))  # 2048 bytes, 64 ms
    async with small_buffer_server(engine, settings) as (port, deeptone):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        url = f"ws://127.0.0.1:{port}/stream?models=vad&output_period=64&include_raw_values=true"
        async with connect(url, sock=sock, compression=None, max_queue=4) as ws:
            sent = 0
            most_buffered = 0
            with anyio.fail_after(8):
                while True:  # as fast as it goes, never reading a result
                    with anyio.move_on_after(0.5) as blocked:
                        await ws.send(chunk)
                    if blocked.cancelled_caught:
                        break
                    sent += 1
                    for info in deeptone.slots.streams:
                        most_buffered = max(most_buffered, info.received - info.consumed)
            (info,) = deeptone.slots.streams
            # the sender is held back after a bounded amount of audio ...
            assert sent * len(chunk) < 4_000_000
            # ... and the server never held more than its bounded queue (plus the message
            # being handed over); the rest waited in the kernel's (small) socket buffers
            assert most_buffered <= (settings.queue_messages + 1) * len(chunk)
            assert info.results < sent
            received = info.received
            await anyio.sleep(0.3)
            assert info.received == received  # nothing more is taken off the socket
            ws.transport.abort()
        await settle(lambda: deeptone.slots.active == 0)


async def test_batched_outputs_equal_separate_runs(engine: Deeptone) -> None:
    _, plan = engine.plan(["vad"])
    rng = np.random.default_rng(3)
    frames = (rng.standard_normal((6, 5, 1024)) * 0.1).astype(np.float32)
    alone: list[list[StreamState]] = [[plan.new_stream()] for _ in range(6)]
    shared: list[list[StreamState]] = [[plan.new_stream()] for _ in range(6)]
    async def one(batcher: StreamBatcher, i: int, step: int, outs: list[tuple[int, Any]]) -> None:
        outs.append((i, await batcher.run(plan, frames[i : i + 1, step : step + 1], shared[i])))

    batcher = StreamBatcher(anyio.CapacityLimiter(1))
    for step in range(5):  # five frames of six streams, each stream with its own state
        outs: list[tuple[int, Any]] = []
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, batcher, i, step, outs)
        for i, out in outs:
            ref = plan.run(frames[i : i + 1, step : step + 1], alone[i])
            np.testing.assert_allclose(out.probs["vad"], ref.probs["vad"], atol=1e-5)
    assert batcher.largest > 1


async def test_batcher_groups_by_frame_count(engine: Deeptone) -> None:
    _, plan = engine.plan(["vad"])
    batcher = StreamBatcher(anyio.CapacityLimiter(1))
    async with anyio.create_task_group() as tg:
        for n in (1, 1, 2, 3, 3, 3):
            x = np.zeros((1, n, 1024), np.float32)
            tg.start_soon(batcher.run, plan, x, [plan.new_stream()])
    assert batcher.blocks == 6 and batcher.frames == 13
    assert batcher.rounds == 1 and batcher.calls == 3 and batcher.largest == 3  # one round, a call per frame count



async def test_batching_is_exact_for_feature_models_with_context(tmp_path: Path) -> None:
    """Log-mel models keep a feature history per stream; stacking streams must not mix them."""
    from onnx_models import causal_conv_model, constant_model

    engine = Deeptone()
    engine.register_model(
        ModelSpec(
            name="Context", key="context", kind="logmel", labels=("p", "q"),
            onnx=causal_conv_model(tmp_path / "k.onnx", 5), receptive_field_ms=6 * 64, context_frames=5,
        )
    )
    engine.register_model(
        ModelSpec(
            name="Pitch", key="pitch", kind="logmel", labels=("high", "low"),
            onnx=constant_model(tmp_path / "c.onnx", [0.8, 0.2]), receptive_field_ms=64, voice=True,
        )
    )
    n = 6
    signals = [audio_for(i, 1.5) for i in range(n)]
    models = ["vad", "context", "pitch"]
    expected = []
    for s in signals:
        stream = engine.process_stream(pcm16(s), models, output_period=128, include_raw_values=True)
        expected.append([r async for r in stream])
    got: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    async with running_server(engine=engine) as srv:
        url = srv.ws_url + "?models=vad,context,pitch&output_period=128&include_raw_values=true"

        async def client(i: int) -> None:
            data = pcm16(signals[i])
            async with connect(url, compression=None) as ws:
                for lo in range(0, len(data), 2048):
                    await ws.send(data[lo : lo + 2048])
                await ws.send(b"")
                got[i] = [json.loads(m)["results"]["channels"]["0"] async for m in ws]

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(client, i)
        stats = engine.batching_stats()
    assert stats is not None and stats["largest"] > 1
    assert got == expected


async def test_a_lone_fast_stream_is_not_held_back_by_the_batch_interval(engine: Deeptone) -> None:
    _, plan = engine.plan(["vad"])

    async def blocks() -> AsyncIterator[FrameBlock]:
        for i in range(40):
            yield FrameBlock(i, np.zeros((1, 1, 1024), np.float32), np.array([1024]))

    batcher = StreamBatcher(anyio.CapacityLimiter(1), interval_s=0.05)  # 40 rounds would take 2 s
    start = anyio.current_time()
    done = [outputs async for _, outputs in infer(blocks(), plan, [plan.new_stream()], anyio.CapacityLimiter(1), batcher)]
    assert len(done) == 40
    assert anyio.current_time() - start < 1.0
