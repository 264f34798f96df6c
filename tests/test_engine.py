"""The DeepTone-compatible API on real audio with the Vad model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, assert_same_results, noise, tone

from deeptone_async import (
    AudioFormatError,
    DecodeError,
    Deeptone,
    DeeptoneError,
    ParameterError,
    UnknownModelError,
)
from deeptone_async.sources import FileSource


def labels(series: list[dict], key: str = "vad") -> list[str]:
    return [item["results"][key]["result"] for item in series]


async def test_speech_silence_and_noise_are_told_apart(engine: Deeptone, speech: np.ndarray) -> None:
    audio = np.concatenate([np.zeros(SR * 2, np.int16), speech, (noise(3.0, 0.05) * 32767).astype(np.int16)])
    out = await engine.process_audio_bytes(audio, [engine.models.Vad], include_summary=True)
    got = labels(out["time_series"])
    assert got[:2] == ["silence", "silence"]
    speech_periods = got[2 : 2 + len(speech) // SR - 1]
    assert speech_periods.count("speech") >= 4  # the fixture has a 1.5 s pause in the middle
    assert set(speech_periods) <= {"speech", "silence"}
    assert got[-2:] == ["no_speech", "no_speech"]
    assert 0.2 < out["summary"]["vad"]["speech_fraction"] < 0.6


async def test_output_shape_is_deeptones(engine: Deeptone, speech_wav: Path) -> None:
    out = await engine.process_file(
        speech_wav, [engine.models.Vad], include_summary=True, include_transitions=True, include_raw_values=True
    )
    assert set(out) == {"channels"} and set(out["channels"]) == {"0"}
    ch = out["channels"]["0"]
    assert set(ch) == {"time_series", "summary", "transitions"}
    item = ch["time_series"][1]
    assert set(item) == {"timestamp", "results", "raw"}
    assert item["timestamp"] == 1024
    assert set(item["results"]["vad"]) == {"result", "confidence"}
    assert set(item["raw"]["vad"]) == {"speech", "no_speech"}
    assert abs(sum(item["raw"]["vad"].values()) - 1) < 1e-3
    # DeepTone's bytes example reads the mono channel's keys directly
    assert out["time_series"] is ch["time_series"] and "summary" in out
    json.loads(json.dumps(out))  # serialises as plain DeepTone JSON
    assert "time_series" not in json.loads(json.dumps(out))


async def test_summary_and_transitions_cover_the_input(engine: Deeptone, speech_wav: Path) -> None:
    out = await engine.process_file(speech_wav, ["vad"], include_summary=True, include_transitions=True)
    duration_ms = round(sf.info(str(speech_wav)).frames * 1000 / SR)
    tr = out["transitions"]["vad"]
    assert tr[0]["timestamp_start"] == 0 and tr[-1]["timestamp_end"] == duration_ms
    for a, b in zip(tr, tr[1:]):
        assert a["timestamp_end"] == b["timestamp_start"] and a["result"] != b["result"]
        assert a["timestamp_end"] % 64 == 0
    assert abs(sum(out["summary"]["vad"].values()) - 1) < 1e-9
    assert any(t["result"] == "silence" and t["timestamp_end"] - t["timestamp_start"] >= 1000 for t in tr)


@pytest.mark.parametrize("rate", [16_000, 44_100])
async def test_file_equals_stream(engine: Deeptone, speech: np.ndarray, tmp_path: Path, rate: int) -> None:
    audio = speech if rate == SR else _resample_int16(speech, rate)
    path = tmp_path / "x.flac"
    sf.write(path, audio, rate)
    file_out = await engine.process_file(path, ["vad"], output_period=512, include_raw_values=True)
    streamed = [r async for r in engine.process_stream(FileSource(path), ["vad"], 512, include_raw_values=True)]
    assert streamed == file_out["time_series"]
    assert len(streamed) == -(-round(len(audio) * SR / rate) // (512 * SR // 1000))


def _resample_int16(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return np.clip(soxr.resample(x.astype(np.float32), SR, rate), -32768, 32767).astype(np.int16)


async def test_stream_of_odd_sized_byte_chunks_equals_bytes(engine: Deeptone, speech: np.ndarray) -> None:
    data = speech.astype("<i2").tobytes()
    sizes = np.random.default_rng(3).integers(1, 3001, size=len(data) // 100)
    chunks, pos = [], 0
    for s in sizes:
        chunks.append(data[pos : pos + int(s)])
        pos += int(s)
    chunks.append(data[pos:])
    assert any(len(c) % 2 for c in chunks)
    streamed = [r async for r in engine.process_stream(input_generator=chunks, models=["vad"])]
    whole = await engine.process_audio_bytes(speech, ["vad"])
    assert streamed == whole["time_series"]


async def test_results_only_use_past_audio(engine: Deeptone, speech: np.ndarray) -> None:
    cut = SR * 2
    future_changed = speech.copy()
    future_changed[cut:] = (noise(len(speech[cut:]) / SR, 0.3) * 32767).astype(np.int16)
    a = await engine.process_audio_bytes(speech, ["vad"], output_period=64)
    b = await engine.process_audio_bytes(future_changed, ["vad"], output_period=64)
    n = cut // 1024
    assert a["time_series"][:n] == b["time_series"][:n]
    assert a["time_series"][n:] != b["time_series"][n:]


async def test_multichannel_file_analyses_every_channel(engine: Deeptone, speech: np.ndarray, tmp_path: Path) -> None:
    stereo = np.stack([speech, np.zeros_like(speech)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, SR)
    out = await engine.process_file(path, ["vad"], include_summary=True)
    assert set(out["channels"]) == {"0", "1"}
    assert out["channels"]["0"]["summary"]["vad"]["speech_fraction"] > 0.4
    assert out["channels"]["1"]["summary"]["vad"]["silence_fraction"] == 1.0
    picked = await engine.process_file(path, ["vad"], channel=1, include_summary=True)
    assert set(picked["channels"]) == {"1"}
    assert picked["summary"]["vad"]["silence_fraction"] == 1.0
    with pytest.raises(ParameterError, match="channel 2"):
        await engine.process_file(path, ["vad"], channel=2)
    with pytest.raises(AudioFormatError, match="one channel"):
        async for _ in engine.process_stream(FileSource(path), ["vad"]):
            pass


async def test_chunked_and_whole_file_agree(engine: Deeptone, speech_wav: Path) -> None:
    a = await engine.process_file(speech_wav, ["vad"], use_chunking=True, include_transitions=True)
    b = await engine.process_file(speech_wav, ["vad"], use_chunking=False, include_transitions=True)
    assert a == b


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64"])
async def test_every_supported_dtype_gives_the_same_labels(engine: Deeptone, speech: np.ndarray, dtype: str) -> None:
    f = speech.astype(np.float64) / 32768.0
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    if info is None:
        data = f.astype(dtype)
    else:
        mid = (int(info.max) + int(info.min) + 1) / 2
        data = np.round(f * (int(info.max) - mid) + mid).astype(dtype)
    out = await engine.process_audio_bytes(data, ["vad"])
    ref = await engine.process_audio_bytes(speech, ["vad"])
    agree = np.mean([a == b for a, b in zip(labels(out["time_series"]), labels(ref["time_series"]))])
    assert agree >= (0.8 if dtype in ("int8", "uint8") else 1.0)


async def test_other_sample_rates_are_resampled(engine: Deeptone, speech: np.ndarray) -> None:
    x8k = _resample_int16(speech, 8000)
    out = await engine.process_audio_bytes(x8k, ["vad"], rate_in=8000, include_summary=True)
    assert len(out["time_series"]) == -(-len(speech) // SR)
    assert out["summary"]["vad"]["speech_fraction"] > 0.4


async def test_audio_chunk_gives_one_result(engine: Deeptone, speech: np.ndarray) -> None:
    out = await engine.process_audio_chunk(speech[: SR * 2], [engine.models.Vad], include_raw_values=True)
    assert set(out) == {"results", "raw"}
    assert out["results"]["vad"]["result"] == "speech"
    assert out["raw"]["vad"]["speech"] > 0.5
    quiet = await engine.process_audio_chunk(np.zeros(SR, np.int16), ["vad"])
    assert quiet == {"results": {"vad": {"result": "silence", "confidence": 1.0}}}
    assert await engine.process_audio_chunk(np.zeros(0, np.int16), ["vad"]) == {"results": {}}


async def test_volume_threshold_controls_silence(engine: Deeptone) -> None:
    quiet_tone = tone(2.0, amp=0.01)  # RMS ~ 0.007
    lo = await engine.process_audio_bytes(quiet_tone, ["vad"], volume_threshold=0.005, include_summary=True)
    hi = await engine.process_audio_bytes(quiet_tone, ["vad"], volume_threshold=0.01, include_summary=True)
    assert lo["summary"]["vad"]["silence_fraction"] == 0.0
    assert hi["summary"]["vad"]["silence_fraction"] == 1.0


# -- bad input ---------------------------------------------------------------------------


async def test_missing_file(engine: Deeptone, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await engine.process_file(tmp_path / "nope.wav", ["vad"])


async def test_undecodable_file_names_the_file(engine: Deeptone, tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(DecodeError, match="notes.wav") as info:
        await engine.process_file(path, ["vad"])
    assert info.value.path == path and info.value.__cause__ is not None


async def test_empty_audio_gives_a_valid_empty_result(engine: Deeptone, tmp_path: Path) -> None:
    out = await engine.process_audio_bytes(np.zeros(0, np.int16), ["vad"], include_summary=True, include_transitions=True)
    assert out["time_series"] == [] and out["transitions"] == {"vad": []}
    assert set(out["summary"]["vad"].values()) == {0.0}
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.int16), SR)
    assert (await engine.process_file(path, ["vad"]))["time_series"] == []
    assert [r async for r in engine.process_stream([b""], ["vad"])] == []


async def test_bad_arguments_fail_at_the_call(engine: Deeptone) -> None:
    with pytest.raises(ParameterError, match="multiple of 64"):
        engine.process_stream([b""], ["vad"], output_period=1000)
    with pytest.raises(ParameterError):
        engine.process_stream([b""], ["vad"], output_period=0)
    with pytest.raises(ParameterError, match="volume_threshold"):
        engine.process_stream([b""], ["vad"], volume_threshold=-1)
    with pytest.raises(UnknownModelError, match="Vad"):
        engine.process_stream([b""], ["Laughter"])
    with pytest.raises(ParameterError, match="multiple of 64"):
        await engine.process_file("whatever.wav", ["vad"], output_period=100)
    with pytest.raises(AttributeError, match="available models"):
        engine.models.Laughter  # noqa: B018
    assert engine.is_model_available("vad") and engine.is_model_available("Vad")
    assert not engine.is_model_available("laughter")


async def test_nan_and_wrong_dtype_are_clear_errors(engine: Deeptone) -> None:
    bad = np.zeros(SR, np.float32)
    bad[100] = np.nan
    with pytest.raises(AudioFormatError, match="NaN"):
        await engine.process_audio_bytes(bad, ["vad"])
    with pytest.raises(AudioFormatError, match="int64"):
        await engine.process_audio_bytes(np.zeros(SR, np.int64), ["vad"])
    with pytest.raises(AudioFormatError, match="bytes or a numpy array"):
        async for _ in engine.process_stream([[1, 2, 3]], ["vad"]):
            pass


async def test_source_failure_delivers_earlier_results_then_raises(engine: Deeptone, speech: np.ndarray) -> None:
    async def flaky():
        for i in range(3):
            yield speech[i * SR : (i + 1) * SR]
        raise ConnectionResetError("microphone unplugged")

    got = []
    with pytest.raises(ConnectionResetError, match="unplugged"):
        async for r in engine.process_stream(flaky(), ["vad"]):
            got.append(r["timestamp"])
    assert got == [0, 1024]  # every complete period before the fault (3 s = 2 whole periods + 0.93)


async def test_early_stop_releases_the_source(engine: Deeptone, speech: np.ndarray) -> None:
    state = {"closed": False, "yielded": 0}

    async def endless():
        try:
            while True:
                state["yielded"] += 1
                yield speech[:SR]
        finally:
            state["closed"] = True

    async with engine.process_stream(endless(), ["vad"]) as stream:
        async for r in stream:
            if r["timestamp"] >= 2048:
                break
    assert state["closed"]
    assert state["yielded"] < 10  # pull-driven: the source was not run ahead


async def test_cancellation_leaves_no_tasks(engine: Deeptone, speech: np.ndarray) -> None:
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                yield speech[:SR]
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def consume() -> None:
        async for _ in engine.process_stream(endless(), ["vad"]):
            pass

    before = set(asyncio.all_tasks())
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert closed.is_set()
    assert set(asyncio.all_tasks()) == before


async def test_abandoned_stream_is_closed_by_the_loop(engine: Deeptone, speech: np.ndarray) -> None:
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                yield speech[:SR]
        finally:
            closed.set()

    async for _ in engine.process_stream(endless(), ["vad"]):
        break  # no aclose, no async with
    await asyncio.wait_for(closed.wait(), 2)


async def test_file_handles_are_released(engine: Deeptone, speech_wav: Path) -> None:
    import os

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        async with engine.process_stream(FileSource(speech_wav, block_frames=4096), ["vad"]) as s:
            async for _ in s:
                break
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_stream_reports_lag_when_behind_real_time(engine: Deeptone, speech: np.ndarray) -> None:
    async def realtime():
        for i in range(0, SR * 2, 1024):
            yield speech[i : i + 1024]
            await asyncio.sleep(1024 / SR)

    stream = engine.process_stream(realtime(), ["vad"], output_period=256)
    lags = []
    async for _ in stream:
        lags.append(stream.stats.lag_ms)
        await asyncio.sleep(0.4)  # a consumer slower than the audio
    assert stream.stats.results == len(lags) == 8
    assert lags[-1] > lags[0] + 500
    assert stream.stats.audio_ms == pytest.approx(2048, abs=1)


async def test_no_worker_thread_is_left_busy(engine: Deeptone, speech: np.ndarray) -> None:
    import threading

    async def endless():
        while True:
            yield speech

    for _ in range(3):
        async with engine.process_stream(endless(), ["vad"]) as stream:
            async for _ in stream:
                break
    # anyio keeps idle workers for reuse; none may still be running our work
    await asyncio.sleep(0.1)
    frames = {t.ident: t for t in threading.enumerate()}
    import sys

    busy = [
        name
        for ident, stack in sys._current_frames().items()
        if ident in frames and ident != threading.get_ident()
        for name in [frames[ident].name]
        if "deeptone_async" in "".join(str(f.f_code.co_filename) for f in _walk(stack))
    ]
    assert busy == []


def _walk(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


@pytest.mark.parametrize(("suffix", "fmt", "subtype"), [("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III")])
async def test_compressed_formats_decode(engine: Deeptone, speech: np.ndarray, tmp_path: Path, suffix: str, fmt: str, subtype: str) -> None:
    path = tmp_path / f"speech.{suffix}"
    try:
        sf.write(path, speech, SR, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write {subtype}: {exc}")
    out = await engine.process_file(path, ["vad"], include_summary=True)
    assert out["summary"]["vad"]["speech_fraction"] > 0.4


@pytest.mark.parametrize("shape", ["frames_first", "channels_first"])
async def test_stereo_chunks_in_a_stream_are_a_clear_format_error(engine: Deeptone, speech: np.ndarray, shape: str) -> None:
    # DeepTone's real-time example 1 fed a stereo WAV: wavfile.read gives (n, 2) arrays
    stereo = np.stack([speech, speech], axis=1)
    chunks = [stereo[i : i + 1024] for i in range(0, len(stereo), 1024)]
    if shape == "channels_first":
        chunks = [c.T for c in chunks]
    mono_first = [speech[: 4 * 16 * 1024]] + chunks  # a mono chunk before the stereo ones: its results come first
    results = []
    with pytest.raises(AudioFormatError, match=r"shape \((1024, 2|2, 1024)\).*expected 1-D mono") as info:
        async for r in engine.process_stream(mono_first, ["vad"], output_period=1024):
            results.append(r)
    assert [r["timestamp"] for r in results] == [0, 1024, 2048, 3072]
    assert ("chunk[:, 0]" in str(info.value)) and (shape == "frames_first" or "transpose" in str(info.value))


async def test_channel_can_be_named_by_its_output_key(engine: Deeptone, speech: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([speech, np.zeros_like(speech)], axis=1), SR)
    by_str = await engine.process_file(path, ["vad"], channel="1", include_summary=True)
    by_int = await engine.process_file(path, ["vad"], channel=1, include_summary=True)
    assert by_str == by_int and set(by_str["channels"]) == {"1"}
    for bad in (1.0, True, -1, "one", "1.5"):
        with pytest.raises(ParameterError, match="channel must be"):
            await engine.process_file(path, ["vad"], channel=bad)  # type: ignore[arg-type]


async def test_multichannel_result_says_which_key_to_use(engine: Deeptone, speech: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([speech, speech], axis=1), SR)
    out = await engine.process_file(path, ["vad"], include_summary=True)
    with pytest.raises(KeyError) as info:
        out["time_series"]
    assert str(info.value).startswith("this result has 2 channels") and 'output["channels"][\'0\'][\'time_series\']' in str(info.value)
    assert isinstance(info.value, DeeptoneError)
    with pytest.raises(KeyError, match="summary"):
        out["summary"]
    assert out.get("time_series") is None and "time_series" not in out
    with pytest.raises(KeyError) as plain:
        out["no_such_key"]
    assert not isinstance(plain.value, DeeptoneError)


async def test_mp3_gives_the_same_results_chunked_whole_and_streamed(engine: Deeptone, tmp_path: Path) -> None:
    # libsndfile's MP3 decoder gives other samples near some read boundaries; one read
    # pattern in FileSource makes all three paths decode the same audio. The bundled sample
    # (20 s of speech, notes and noise) showed the difference at 40 of 310 split points.
    from importlib import resources

    audio, rate = sf.read(str(resources.files("deeptone_async") / "data" / "sample.ogg"), dtype="float32")
    path = tmp_path / "sample.mp3"
    try:
        sf.write(path, audio, rate, format="MP3")
    except (sf.LibsndfileError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write MP3: {exc}")
    models = ["vad", "speech", "gender"]
    kw = {"include_raw_values": True, "include_summary": True, "include_transitions": True}
    chunked = await engine.process_file(path, models, use_chunking=True, **kw)
    whole = await engine.process_file(path, models, use_chunking=False, **kw)
    streamed = [r async for r in engine.process_stream(FileSource(path, block_frames=1024), models, include_raw_values=True)]
    assert chunked == whole  # same blocks: exactly equal
    assert_same_results(streamed, chunked["time_series"])  # per-period blocks: one rounding step
    assert len(streamed) == 20


@pytest.mark.parametrize("period", [64, 320, 1024, 4096])
@pytest.mark.parametrize("chunk_bytes", [640, 999])
async def test_live_chunks_give_the_file_results_for_every_period(
    engine: Deeptone, speech: np.ndarray, period: int, chunk_bytes: int
) -> None:
    # 20 ms chunks (640 bytes) as telephony delivers them, and odd-sized ones; the stream
    # runs the models once per period, the file once per 16 s: the results are the same
    # (exactly for the Vad, within one 4-decimal rounding step for the others)
    data = speech.astype("<i2").tobytes()
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    models = ["vad", "speech", "gender"]
    streamed = [r async for r in engine.process_stream(chunks, models, output_period=period, include_raw_values=True)]
    whole = await engine.process_audio_bytes(speech, models, output_period=period, include_raw_values=True)
    assert_same_results(streamed, whole["time_series"])
    assert len(streamed) == -(-len(speech) // (period * 16))
