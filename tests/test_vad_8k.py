"""8 kHz input runs the Vad's 8 kHz branch (Silero's own weights for 8 kHz audio).

The engine's frames are 16 kHz; for a stream whose input is 8 kHz the Vad runs the 8 kHz
sequence graph on every other sample of them (:mod:`deeptone_async.narrowband`). Checked
here against the published Silero graph run with ``sr=8000``.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, noise

from deeptone_async import Deeptone
from deeptone_async.audio import AudioFormat
from deeptone_async.inference import SileroSeqRunner, make_runner
from deeptone_async.narrowband import NARROW_RATE
from deeptone_async.sources.base import IterableSource

soxr = pytest.importorskip("soxr")
ort = pytest.importorskip("onnxruntime")
# the published Silero VAD v6 graph (the bundled Vad's source), found, not imported: importing
# silero_vad imports torch
_SILERO = importlib.util.find_spec("silero_vad")
if _SILERO is None or not _SILERO.submodule_search_locations:
    pytest.skip("the published Silero VAD v6 graph comes from silero-vad 6.x", allow_module_level=True)
PUBLISHED = Path(next(iter(_SILERO.submodule_search_locations))) / "data" / "silero_vad.onnx"


def published_8k(audio: np.ndarray) -> np.ndarray:
    """The published graph at ``sr=8000``, one call per 256-sample step (32 of context before
    each): the speech probability per 64 ms frame (mean of its two steps)."""
    session = ort.InferenceSession(str(PUBLISHED), providers=["CPUExecutionProvider"])
    n = len(audio) // 512 * 512
    x = np.concatenate([np.zeros(32, np.float32), audio[:n].astype(np.float32)])
    state = np.zeros((2, 1, 128), np.float32)
    probs = []
    for lo in range(0, n, 256):
        out, state = session.run(None, {"input": x[None, lo : lo + 288], "state": state, "sr": np.array(8000, np.int64)})
        probs.append(float(out[0, 0]))
    return np.array(probs).reshape(-1, 2).mean(axis=1)


@pytest.fixture(scope="module")
def speech_8k(speech: np.ndarray) -> np.ndarray:
    """The espeak-ng fixture (two sentences, a 1.5 s gap) at 8 kHz, float32."""
    return soxr.resample(speech.astype(np.float32) / 32768.0, SR, NARROW_RATE, "HQ").astype(np.float32)


def upsampled_frames(audio_8k: np.ndarray) -> np.ndarray:
    """What the engine's framer makes of 8 kHz audio: (1, n, 1024) frames at 16 kHz."""
    up = soxr.resample(audio_8k, NARROW_RATE, SR, "HQ").astype(np.float32)
    n = len(up) // 1024
    return up[: n * 1024].reshape(1, n, 1024)


def test_an_8k_stream_runs_the_8k_graph_on_every_other_sample(engine: Deeptone, speech_8k: np.ndarray) -> None:
    runner = make_runner(engine.models.Vad)
    assert isinstance(runner, SileroSeqRunner)
    frames = upsampled_frames(speech_8k)
    narrow_state, wide_state = engine.plan(["vad"])[1].new_stream(8000), engine.plan(["vad"])[1].new_stream()
    # in blocks of 5 frames, the state carried over: equal to the published 8 kHz branch, step by step
    ours = np.concatenate([runner.run(frames[:, i : i + 5], None, [narrow_state.models["vad"]]) for i in range(0, frames.shape[1], 5)], axis=1)
    theirs = published_8k(frames[0].reshape(-1)[::2])
    assert np.abs(ours[0, :, 0] - theirs).max() < 1e-5
    # ... and not what the 16 kHz branch says on the same frames
    wide = runner.run(frames, None, [wide_state.models["vad"]])
    assert np.abs(wide[0, :, 0] - theirs).max() > 0.1


def test_the_8k_branch_on_the_engines_frames_is_close_to_it_on_the_original_samples(
    engine: Deeptone, speech_8k: np.ndarray
) -> None:
    runner = make_runner(engine.models.Vad)
    ours = runner.run(upsampled_frames(speech_8k), None, [engine.plan(["vad"])[1].new_stream(8000).models["vad"]])[0, :, 0]
    original = published_8k(speech_8k)
    n = min(len(ours), len(original))
    diff = np.abs(ours[:n] - original[:n])
    # every other sample of the 16 kHz frames is the 8 kHz input low-passed at about 3.7 kHz
    assert diff.mean() < 0.03
    assert ((ours[:n] >= 0.5) == (original[:n] >= 0.5)).mean() >= 0.95


def test_8k_and_16k_streams_in_one_call_get_what_each_gets_alone(engine: Deeptone, speech_8k: np.ndarray) -> None:
    runner = make_runner(engine.models.Vad)
    plan = engine.plan(["vad"])[1]
    frames = upsampled_frames(speech_8k)[:, :40]
    other = noise(40 * 1024 / SR, 0.05).astype(np.float32).reshape(1, 40, 1024)
    both = np.concatenate([frames, other, frames])
    mixed = runner.run(both, None, [plan.new_stream(r).models["vad"] for r in (8000, 16000, 16000)])
    alone_8k = runner.run(frames, None, [plan.new_stream(8000).models["vad"]])
    alone_16k = runner.run(other, None, [plan.new_stream(16000).models["vad"]])
    np.testing.assert_allclose(mixed[0], alone_8k[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], alone_16k[0], atol=1e-5)
    assert np.abs(mixed[2] - mixed[0]).max() > 0.1  # the same audio through the 16 kHz branch


def test_only_8k_takes_the_8k_branch(engine: Deeptone, speech_8k: np.ndarray) -> None:
    runner = make_runner(engine.models.Vad)
    plan = engine.plan(["vad"])[1]
    frames = upsampled_frames(speech_8k)[:, :40]
    at_16k = runner.run(frames, None, [plan.new_stream().models["vad"]])
    for rate in (11_025, 12_000, 44_100):
        np.testing.assert_array_equal(runner.run(frames, None, [plan.new_stream(rate).models["vad"]]), at_16k)


async def test_an_8k_phone_call_is_found_to_be_speech(engine: Deeptone, speech_8k: np.ndarray, tmp_path: Path) -> None:
    # an 8 kHz WAV, as a call recorder writes it: mu-law, 8 kHz
    path = tmp_path / "call.wav"
    sf.write(path, speech_8k, NARROW_RATE, subtype="ULAW")
    out = await engine.process_file(path, [engine.models.Vad], output_period=64, include_raw_values=True)
    labels = [r["results"]["vad"]["result"] for r in out["time_series"]]
    speech_frames = labels.count("speech")
    assert speech_frames >= 0.6 * len(labels)  # two sentences of speech in about 5 s
    assert "silence" in labels  # and the 1.5 s gap between them
    # frame by frame, the published graph's 8 kHz branch on the engine's frames
    decoded, _ = sf.read(path, dtype="float32")
    want = published_8k(upsampled_frames(decoded)[0].reshape(-1)[::2])
    raw = np.array([r["raw"]["vad"]["speech"] for r in out["time_series"]])
    np.testing.assert_allclose(raw[: len(want)], want, atol=2e-4)
    # the same audio in memory at rate_in=8000, and streamed with an 8 kHz format, says the same
    pcm, _ = sf.read(path, dtype="int16")
    mem = await engine.process_audio_bytes(pcm, [engine.models.Vad], output_period=64, rate_in=8000)
    assert [r["results"]["vad"]["result"] for r in mem["time_series"]] == labels
    chunks = [pcm[i : i + 160].tobytes() for i in range(0, len(pcm), 160)]  # 20 ms packets
    stream = engine.process_stream(IterableSource(chunks, AudioFormat(8000)), [engine.models.Vad], output_period=64)
    streamed = [r["results"]["vad"]["result"] async for r in stream]
    assert streamed == labels


async def test_process_audio_chunk_at_8k_takes_the_8k_branch(engine: Deeptone, speech_8k: np.ndarray) -> None:
    # 32 whole frames with faint noise under the speech, so that no frame is gated as silence
    # and the chunk's raw value is the mean over all of them
    audio = speech_8k[: 32 * 512] + noise(32 * 512 / NARROW_RATE, 0.02, sr=NARROW_RATE).astype(np.float32)
    pcm = (audio * 32767).astype(np.int16)
    got = await engine.process_audio_chunk(pcm, [engine.models.Vad], rate_in=8000, include_raw_values=True)
    frames = upsampled_frames(pcm.astype(np.float32) / 32768.0)
    assert frames.shape[1] == 32
    want = published_8k(frames[0].reshape(-1)[::2])
    assert got["raw"]["vad"]["speech"] == pytest.approx(float(want.mean()), abs=2e-4)


@pytest.mark.parametrize("batching", [True, False])
async def test_the_server_at_sample_rate_8000_takes_the_8k_branch(engine: Deeptone, speech_8k: np.ndarray, batching: bool) -> None:
    json = pytest.importorskip("json")
    websockets = pytest.importorskip("websockets.asyncio.client")
    from deeptone_async.server import ServerSettings, running_server

    pcm = (speech_8k[: 40 * 512] * 32767).astype("<i2")
    async with running_server(engine=engine, settings=ServerSettings(batching=batching)) as srv:
        url = srv.ws_url + "?models=vad&output_period=64&include_raw_values=true&sample_rate=8000"
        async with websockets.connect(url, compression=None) as ws:
            data = pcm.tobytes()
            for lo in range(0, len(data), 320):  # 20 ms packets
                await ws.send(data[lo : lo + 320])
            await ws.send(b"")
            messages = [json.loads(m) async for m in ws]
    raw = np.array([m["results"]["channels"]["0"]["raw"]["vad"]["speech"] for m in messages])
    want = published_8k(upsampled_frames(pcm.astype(np.float32) / 32768.0)[0].reshape(-1)[::2])
    assert len(want) >= 39
    np.testing.assert_allclose(raw[: len(want)], want, atol=2e-4)


def test_pipecats_analyzer_at_8k_takes_the_8k_branch(engine: Deeptone, speech_8k: np.ndarray) -> None:
    pytest.importorskip("pipecat", reason="pipecat-ai is not installed (pip install 'deeptone-async[pipecat]')")
    with warnings.catch_warnings():  # pipecat 1.14 imports audioop, deprecated since Python 3.11
        warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
        import pipecat.audio.utils  # noqa: F401
    from deeptone_async.integrations.pipecat import DeeptoneVADAnalyzer

    analyzer = DeeptoneVADAnalyzer(engine, sample_rate=NARROW_RATE)
    analyzer.set_sample_rate(NARROW_RATE)
    pcm = (speech_8k[: 40 * 512] * 32767).astype("<i2")
    step = analyzer.num_frames_required()
    got = [analyzer.voice_confidence(pcm[lo : lo + step].tobytes()) for lo in range(0, len(pcm), step)]
    # the analyzer resamples (soxr, streaming) and reports the last whole 16 kHz frame's probability
    rs = soxr.ResampleStream(NARROW_RATE, SR, 1, dtype="float32", quality="HQ")
    pieces = [rs.resample_chunk(pcm[lo : lo + step].astype(np.float32) / 32768.0) for lo in range(0, len(pcm), step)]
    up = np.concatenate(pieces)
    want = published_8k(up[: len(up) // 1024 * 1024][::2])
    done = np.cumsum([len(p) for p in pieces]) // 1024  # whole frames after each call
    expected = [float(want[k - 1]) for k in done if k > 0]
    np.testing.assert_allclose(np.array(got)[done > 0], expected, atol=1e-5)
    assert len(expected) >= 38
