"""Live streams: frames computed as they arrive, rounds at most every interval, bytes decoded per block.

Issue 21's latency work. A stream whose chunks are waited for (a live source) can run
each 64 ms frame as soon as it is whole, so that little is left to compute when its
period ends; the engine's shared rounds start at most every ``batch_interval_ms`` unless
every stream is already waiting. None of it may change a result.
"""

from __future__ import annotations

import time

import anyio
import numpy as np
import pytest
from conftest import SR, assert_same_results

from deeptone_async import Deeptone
from deeptone_async.audio import AudioFormat
from deeptone_async.batching import StreamBatcher
from deeptone_async.errors import ParameterError
from deeptone_async.framer import LIVE_WAIT_S, frames


def _paced(x: np.ndarray, pause: float, n: int = 320):
    """16-bit PCM in 20 ms chunks, each after ``pause`` seconds (0: as fast as taken)."""

    async def gen():
        for lo in range(0, len(x), n):
            await anyio.sleep(pause)
            yield x[lo : lo + n].tobytes()

    return gen()


@pytest.mark.parametrize("live_frames", [True, False, None])
async def test_a_live_stream_gets_the_same_results_whether_frames_run_as_they_arrive_or_per_period(
    speech: np.ndarray, live_frames: bool | None
) -> None:
    engine = Deeptone(batch_interval_ms=0)
    x = speech[: 3 * SR]  # 3 s: 47 frames, three 1024 ms periods
    batcher = engine._stream_batcher()
    got = [r async for r in engine.process_stream(_paced(x, 2 * LIVE_WAIT_S), ["vad", "gender"], include_raw_values=True, live_frames=live_frames)]
    want = await engine.process_audio_bytes(x, ["vad", "gender"], include_raw_values=True)
    assert_same_results(got, want["time_series"])
    if live_frames:  # every frame went to the models as soon as it was whole
        assert batcher.blocks >= 40, batcher.blocks
    else:  # a period at a time (auto: Gender is a log-mel model, so per period)
        assert batcher.blocks <= 4, batcher.blocks


async def test_the_vad_alone_runs_live_frames_by_default_and_a_fast_stream_still_runs_per_period(speech: np.ndarray) -> None:
    engine = Deeptone(batch_interval_ms=0)
    x = speech[: 3 * SR]
    batcher = engine._stream_batcher()
    live = [r async for r in engine.process_stream(_paced(x, 2 * LIVE_WAIT_S), ["vad"])]
    assert batcher.blocks >= 40, batcher.blocks
    before = batcher.blocks
    fast = [r async for r in engine.process_stream(_paced(x, 0), ["vad"])]  # ready at once: not live
    assert batcher.blocks - before <= 4, batcher.blocks - before
    assert_same_results(live, fast)


async def test_live_frames_must_be_a_bool_or_none(engine: Deeptone) -> None:
    with pytest.raises(ParameterError, match="live_frames"):
        engine.process_stream(_paced(np.zeros(SR, np.int16), 0), ["vad"], live_frames="yes")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="batch_interval_ms"):
        Deeptone(load_bundled=False, batch_interval_ms=-1)


async def test_a_round_waits_the_interval_for_streams_that_are_not_waiting_yet(engine: Deeptone) -> None:
    """The second round of a stream waits up to the interval for the others; it starts
    as soon as every open stream is waiting."""
    batcher = StreamBatcher(anyio.CapacityLimiter(1), interval_s=0.5)
    _, plan = engine.plan(["vad"])
    block = (np.random.default_rng(0).standard_normal((1, 2, 1024)) * 0.1).astype(np.float32)
    a, b = [plan.new_stream()], [plan.new_stream()]
    batcher.open_stream()
    batcher.open_stream()
    await batcher.run(plan, block, a)  # the first round starts at once
    assert batcher.rounds == 1
    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run, plan, block, a)
        await anyio.sleep(0.1)
        assert batcher.rounds == 1  # held: stream b is open and not waiting
        tg.start_soon(batcher.run, plan, block, b)  # now everyone waits: the round starts
    assert batcher.rounds == 2 and batcher.blocks == 3  # a's and b's blocks shared one round
    assert time.monotonic() - t0 < 0.45
    batcher.close_stream()  # b is done: a alone waits only for the interval
    t0 = time.monotonic()
    await batcher.run(plan, block, a)
    assert batcher.rounds == 3 and time.monotonic() - t0 < 0.45  # a is the only open stream left waiting
    batcher.close_stream()


async def test_int16_chunks_decoded_per_block_give_the_frames_of_per_chunk_decoding() -> None:
    """Bytes, an odd byte split, then arrays, then bytes again: the same frames as one array."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(5 * 1024 + 77) * 3000).astype(np.int16)
    raw = x.tobytes()

    async def mixed():
        yield raw[:1001]  # ends mid-sample
        yield raw[1001:4000]
        yield x[2000:3000]  # an array after bytes
        yield raw[6000:]

    async def whole():
        yield x

    got = [b async for b in frames(mixed(), AudioFormat(), min_block_frames=2)]
    want = [b async for b in frames(whole(), AudioFormat())]
    cat = np.concatenate([b.samples[0] for b in got])
    assert np.array_equal(cat, np.concatenate([b.samples[0] for b in want]))
    assert [int(v) for b in got for v in b.valid] == [1024] * 5 + [77]
