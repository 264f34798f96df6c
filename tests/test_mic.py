"""The microphone source, for real, through the JACK dummy 'loopback' device.

scripts/test.sh starts ``jackd -d dummy``; audio played into the loopback device's output
comes back on its input bit-exact (float32). Skipped where no such device exists.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import numpy as np
import pytest
from conftest import SR
from loopback import Player, loopback_device

from deeptone_async import Deeptone, DeviceError
from deeptone_async.sources import MicrophoneSource

sd = pytest.importorskip("sounddevice")
pytestmark = pytest.mark.mic


if not loopback_device():
    pytest.skip("no JACK 'loopback' device (scripts/test.sh starts jackd)", allow_module_level=True)


async def test_capture_is_bit_exact() -> None:
    signal = (np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32)
    signal[0] = 0.5  # a marker to align on
    mic = MicrophoneSource("loopback")
    got = []
    async with aclosing(mic.__aiter__()) as blocks:
        got.append((await blocks.__anext__())[:, 0].copy())  # the device is open: start playing
        with Player(np.concatenate([signal, np.zeros(SR // 2, np.float32)])):
            async for block in blocks:
                got.append(block[:, 0].copy())
                if sum(len(g) for g in got) > 2 * SR:
                    break
    assert not mic.active
    rec = np.concatenate(got)
    start = int(np.flatnonzero(rec == np.float32(0.5))[0])
    np.testing.assert_array_equal(rec[start : start + SR], signal)


async def test_live_results_from_the_microphone(engine: Deeptone, speech: np.ndarray) -> None:
    audio = np.concatenate([speech[: 3 * SR], np.zeros(2 * SR, np.int16)]).astype(np.float32) / 32768
    mic = MicrophoneSource("loopback")
    results = []
    player = Player(np.concatenate([audio, np.zeros(SR, np.float32)]))
    async with engine.process_stream(mic, ["vad"], output_period=512) as stream:
        async for r in stream:
            if not results and not player.stream.active:
                player.stream.start()  # the device is open: play into it
            results.append(r["results"]["vad"]["result"])
            if len(results) >= 16:
                break
    player.stream.close()
    assert not mic.active
    assert results.count("speech") >= 3 and "silence" in results
    assert stream.stats.lag_ms < 1000


async def test_cancelling_closes_the_device(engine: Deeptone) -> None:
    mic = MicrophoneSource("loopback")

    async def consume() -> None:
        async for _ in engine.process_stream(mic, ["vad"]):
            pass

    task = asyncio.create_task(consume())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if mic.active:
            break
    assert mic.active
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not mic.active


async def test_a_stalled_pipeline_drops_and_counts() -> None:
    mic = MicrophoneSource("loopback", buffer_blocks=4)
    it = mic.__aiter__()
    await it.__anext__()
    await asyncio.sleep(1.0)  # stop pulling: about 15 blocks arrive, 4 fit
    assert mic.dropped_frames >= 5 * 1024
    await it.aclose()
    assert not mic.active


async def test_unknown_device_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="no-such-device"):
        async for _ in MicrophoneSource("no-such-device"):
            pass
