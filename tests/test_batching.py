"""Concurrent streams of one engine share inference calls, and each still gets its own results."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from conftest import SR, assert_same_results, noise, tone

from deeptone_async import Deeptone


def _clips(speech: np.ndarray) -> list[np.ndarray]:
    loud = (speech.astype(np.float32) / 32768).astype(np.float32)
    other = [tone(3.0, 220 + 40 * k) * (0.2 + 0.1 * k) for k in range(3)] + [noise(4.0, 0.05, seed=k) for k in range(3)]
    return [loud, loud[::-1].copy(), *other, loud * 0.3]


def _chunks(x: np.ndarray, n: int = 320):  # 20 ms
    async def gen():
        for lo in range(0, len(x), n):
            yield x[lo : lo + n]
            await anyio.sleep(0)

    return gen()


async def test_concurrent_streams_share_calls_and_keep_their_own_results(engine: Deeptone, speech: np.ndarray) -> None:
    clips = _clips(speech)
    models_of = [["vad", "speech"], ["vad", "gender"]]
    got: dict[int, list[dict]] = {}

    async def one(k: int) -> None:
        got[k] = [r async for r in engine.process_stream(_chunks(clips[k]), models_of[k % 2], include_raw_values=True)]

    batcher = engine._stream_batcher()
    rounds, blocks = batcher.rounds, batcher.blocks
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for k in range(len(clips)):
                tg.start_soon(one, k)
    for k, clip in enumerate(clips):
        alone = await engine.process_audio_bytes(clip, models_of[k % 2], include_raw_values=True)
        assert_same_results(got[k], alone["time_series"], exact=())
    served, made = batcher.blocks - blocks, batcher.rounds - rounds
    assert served >= sum(-(-len(c) // 16384) for c in clips)
    assert made < served / 2, f"{served} blocks in {made} rounds: hardly shared"


async def test_a_cancelled_stream_does_not_hold_up_the_others(engine: Deeptone, speech: np.ndarray) -> None:
    clips = _clips(speech)
    done: dict[int, int] = {}

    async def one(k: int) -> None:
        n = 0
        async for _ in engine.process_stream(_chunks(clips[k]), ["vad", "speech"]):
            n += 1
        done[k] = n

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for k in range(len(clips)):
                if k % 3 == 0:
                    with anyio.move_on_after(0.05 * (k + 1)):  # these stop early, at various points
                        await one(k)
                else:
                    tg.start_soon(one, k)
    for k, clip in enumerate(clips):
        if k % 3:
            assert done[k] == -(-len(clip) // SR)


@pytest.mark.parametrize("batch", [True, False])
async def test_batching_can_be_turned_off(speech: np.ndarray, batch: bool) -> None:
    engine = Deeptone(batch_streams=batch)
    clips = _clips(speech)[:4]
    async with anyio.create_task_group() as tg:
        for clip in clips:
            tg.start_soon(lambda c=clip: _drain(engine, c))
    assert (engine._stream_batcher().blocks > 0) is batch


async def _drain(engine: Deeptone, clip: np.ndarray) -> None:
    async for _ in engine.process_stream(_chunks(clip), ["vad"]):
        pass
