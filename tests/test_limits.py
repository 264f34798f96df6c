"""Inputs outside the engine's limits are refused at once, with the limit and how to change it."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR

from deeptone_async import AudioFormatError, Deeptone, ParameterError
from deeptone_async.limits import Limits


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("rate", [1, 7, 1_000_000])
async def test_a_file_header_with_an_absurd_rate_is_refused(engine: Deeptone, tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, np.zeros(32_000, np.int16), rate)  # 63 KB, as in the report
    before = _peak_rss_mb()
    with pytest.raises(AudioFormatError, match=rf"r{rate}\.wav'?: sample rate {rate} Hz is outside the accepted 4000-384000 Hz.*Limits\("):
        await engine.process_file(path, ["vad"])
    assert _peak_rss_mb() - before < 50  # nothing was resampled


async def test_a_thousand_channel_file_is_refused(engine: Deeptone, tmp_path: Path) -> None:
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((160, 1000), np.int16), SR)
    with pytest.raises(AudioFormatError, match="1000 channels, more than the limit of 32.*max_channels"):
        await engine.process_file(path, ["vad"])


async def test_limits_can_be_raised(tmp_path: Path) -> None:
    path = tmp_path / "forty.wav"
    sf.write(path, np.zeros((SR // 2, 40), np.int16), SR)
    out = await Deeptone(limits=Limits(max_channels=40)).process_file(path, ["vad"])
    assert len(out["channels"]) == 40 and out["channels"]["39"]["time_series"][0]["results"]["vad"]["result"] == "silence"
    with pytest.raises(ParameterError, match="positive int"):
        Limits(max_channels=0)
    with pytest.raises(ParameterError, match="above max_sample_rate"):
        Limits(min_sample_rate=48_000, max_sample_rate=16_000)


async def test_a_channels_first_array_is_refused_with_the_fix(engine: Deeptone) -> None:
    with pytest.raises(AudioFormatError, match=r"16000 channels.*transposed \(data\.T\)"):
        await engine.process_audio_bytes(np.zeros((2, SR), np.float32), ["vad"])
    out = await engine.process_audio_bytes(np.zeros((2, SR), np.float32).T, ["vad"])  # transposed: fine
    assert set(out["channels"]) == {"0", "1"}


@pytest.mark.parametrize("rate_in", [1, 10**15])
async def test_an_absurd_rate_in_is_a_parameter_error_at_the_call(engine: Deeptone, rate_in: int) -> None:
    with pytest.raises(ParameterError, match=f"rate_in {rate_in} Hz is outside"):
        await engine.process_audio_bytes(np.zeros(SR, np.int16), ["vad"], rate_in=rate_in)


@pytest.mark.parametrize("value", [1e20, 3e38, 32767.0])
async def test_float_input_far_outside_the_unit_range_is_refused(engine: Deeptone, value: float) -> None:
    x = np.zeros(SR, np.float32)
    x[100] = value
    with pytest.raises(AudioFormatError, match="must be on the \\[-1, 1\\] scale; this peaks at"):
        await engine.process_audio_bytes(x, ["vad", "speech"], include_raw_values=True)
    stream = engine.process_stream([np.zeros(SR, np.float32), x], ["vad"])
    with pytest.raises(AudioFormatError, match="peaks at"):
        async for _ in stream:
            pass


async def test_float_input_a_little_over_full_scale_gives_valid_results(engine: Deeptone, speech: np.ndarray) -> None:
    loud = speech.astype(np.float32) / 32768 * 6  # peaks near 3 (+10 dBFS): analysed as it is
    out = await engine.process_audio_bytes(loud, ["vad", "speech", "gender"], include_raw_values=True, include_summary=True)
    for item in out["time_series"]:
        for model, res in item["results"].items():
            assert np.isfinite(res["confidence"]), (model, item)
        assert all(np.isfinite(v) for raw in item["raw"].values() for v in raw.values())


@pytest.mark.parametrize("chunking", [True, False])
async def test_headerless_pcm_reads_in_bounded_pieces_either_way(engine: Deeptone, tmp_path: Path, speech: np.ndarray, chunking: bool) -> None:
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    out = await engine.process_file(empty, ["vad"], use_chunking=chunking, include_summary=True)
    assert out["time_series"] == [] and out["summary"]["vad"]["silence_fraction"] == 0.0
    pcm = tmp_path / "speech.pcm"
    pcm.write_bytes(speech.astype("<i2").tobytes())
    got = await engine.process_file(pcm, ["vad"], use_chunking=chunking)
    assert got["time_series"] == (await engine.process_audio_bytes(speech, ["vad"]))["time_series"]


async def test_bytes_input_equals_the_array(engine: Deeptone, speech: np.ndarray) -> None:
    long = np.tile(speech, 4)  # longer than one in-memory piece (16 s)
    a = await engine.process_audio_bytes(long.astype("<i2").tobytes(), ["vad"])
    b = await engine.process_audio_bytes(long, ["vad"])
    assert a == b and len(a["time_series"]) == -(-len(long) // SR)
