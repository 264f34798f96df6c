"""``deeptone_async.client``: streaming files, arrays and any source to a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import numpy as np
import pytest
import soundfile as sf
from conftest import SR, noise, tone

from deeptone_async import Deeptone, SourceError
from deeptone_async.client import ServerError, stream_to_server, to_pcm16
from deeptone_async.framer import Framer
from deeptone_async.server import ServerSettings, running_server
from deeptone_async.sources import ArraySource, IterableSource

AUDIO = np.concatenate([tone(1.5), noise(1.0, amp=0.2), noise(0.7, amp=0.0005, seed=2)])


async def collect(stream: AsyncIterator[dict[str, object]]) -> list[dict[str, object]]:
    return [r async for r in stream]


async def test_a_file_streams_to_the_same_results_as_the_local_engine(engine: Deeptone, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, AUDIO, SR, subtype="PCM_16")
    local = await engine.process_file(path, ["vad"], 512, include_raw_values=True)
    async with running_server(engine=engine) as srv:
        async with stream_to_server(srv.url, path, models=["vad"], output_period=512, include_raw_values=True) as s:
            remote = await collect(s)
        assert s.stats.close_code == 1000 and s.stats.results == len(remote)
        assert s.stats.sent_ms == pytest.approx(1000 * len(AUDIO) / SR)
        # a str path, the full stream URL and a model handle work too
        async with stream_to_server(srv.ws_url, str(path), models=engine.models.Vad, output_period=512) as s:
            plain = await collect(s)
    assert remote == local["time_series"]
    assert [r["results"] for r in plain] == [r["results"] for r in remote]


async def test_any_source_is_converted_to_16_khz_mono_pcm(engine: Deeptone) -> None:
    rate = 44_100
    t = np.arange(int(2.0 * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1).astype(np.float32)

    async def chunks() -> AsyncIterator[bytes]:
        data = (np.clip(AUDIO, -1, 1) * 32767).astype("<i2").tobytes()
        for lo in range(0, len(data), 1001):  # odd sizes: samples split across chunks
            yield data[lo : lo + 1001]

    async with running_server(engine=engine) as srv:
        resampled = await collect(stream_to_server(srv.url, ArraySource(stereo, sample_rate=rate), models="vad"))
        from_bytes = await collect(stream_to_server(srv.url, IterableSource(chunks()), models="vad", output_period=256))
    assert [r["timestamp"] for r in resampled] == [0, 1024]
    assert len(from_bytes) == int(np.ceil(len(AUDIO) / SR / 0.256))


async def test_server_errors_are_typed(engine: Deeptone) -> None:
    async with running_server(engine=engine, settings=ServerSettings(api_key="right")) as srv:
        with pytest.raises(ServerError) as wrong:
            await collect(stream_to_server(srv.url, AUDIO, models="vad", api_key="wrong"))
        with pytest.raises(ServerError) as unknown:
            await collect(stream_to_server(srv.url, AUDIO, models="nope", api_key="right"))
        ok = await collect(stream_to_server(srv.url, AUDIO, models="vad", api_key="right"))
        port = srv.port
    assert wrong.value.code == 1008 and wrong.value.error is not None and "API key" in wrong.value.error
    assert unknown.value.code == 1008 and "unknown model" in str(unknown.value)
    assert len(ok) == 4
    with pytest.raises(ServerError) as unreachable:  # the server is gone now
        await collect(stream_to_server(f"ws://127.0.0.1:{port}", AUDIO))
    assert unreachable.value.code is None


async def test_the_api_key_comes_from_the_environment(engine: Deeptone, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPTONE_API_KEY", "env-key")
    async with running_server(engine=engine, settings=ServerSettings(api_key="env-key")) as srv:
        assert len(await collect(stream_to_server(srv.url, AUDIO, models="vad"))) == 4


async def test_a_failing_source_raises_its_own_error(engine: Deeptone) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"\0" * 4096
        raise SourceError("the line went dead")

    async with running_server(engine=engine) as srv:
        with pytest.raises(SourceError, match="went dead"):
            await collect(stream_to_server(srv.url, IterableSource(broken()), models="vad"))
        deeptone = srv.deeptone
        assert deeptone is not None
        with anyio.fail_after(5):
            while deeptone.slots.active:
                await anyio.sleep(0.01)


async def test_leaving_early_closes_the_connection_and_the_sender(engine: Deeptone) -> None:
    long = noise(30.0, amp=0.1)
    async with running_server(engine=engine) as srv:
        deeptone = srv.deeptone
        assert deeptone is not None
        tasks_before = len(asyncio.all_tasks())
        async with stream_to_server(srv.url, long, models="vad", output_period=64, realtime=True) as stream:
            async for _ in stream:
                break
        with anyio.fail_after(5):
            while deeptone.slots.active or len(asyncio.all_tasks()) > tasks_before:
                await anyio.sleep(0.01)


async def test_realtime_pacing(engine: Deeptone) -> None:
    async with running_server(engine=engine) as srv:
        start = time.monotonic()
        results = await collect(stream_to_server(srv.url, AUDIO[:SR], models="vad", realtime=True, chunk_ms=64))
        took = time.monotonic() - start
    assert len(results) == 1
    assert 0.85 <= took < 3.0


def test_pcm16_conversion_is_bit_exact_for_16_bit_audio() -> None:
    pcm = (np.random.default_rng(0).integers(-32768, 32767, 3000)).astype(np.int16)
    framer = Framer(1)
    blocks = framer.push((pcm.astype(np.float32) / 32768).reshape(-1, 1)) + framer.flush()
    out = b"".join(to_pcm16(b) for b in blocks)
    assert out == pcm.astype("<i2").tobytes()  # the zero padding of the last frame is left out


def test_bad_arguments_fail_at_the_call() -> None:
    from deeptone_async import ParameterError

    with pytest.raises(ParameterError, match="ws://"):
        stream_to_server("ftp://host", AUDIO)
    with pytest.raises(ParameterError, match="chunk_ms"):
        stream_to_server("ws://host", AUDIO, chunk_ms=0)
    s = stream_to_server("http://h:1/x?a=b", AUDIO, models=["vad", "gender"], volume_threshold=0.01)
    assert s.url.startswith("ws://h:1/x?a=b&output_period=1024") and "models=vad%2Cgender" in s.url
    assert "volume_threshold=0.01" in s.url
