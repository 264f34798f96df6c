"""The LiveKit agents VAD, through LiveKit's own ``VADStream`` API (livekit-agents from PyPI).

Frames are ``livekit.rtc.AudioFrame``s of 10 ms at 48 kHz, as a LiveKit room delivers them;
the tests check the events an agent acts on: when speech starts and ends, the audio it
gets with them, the per-window probabilities and LiveKit's VAD metrics.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import REPO, SR, espeak

from deeptone_async import Deeptone
from deeptone_async.errors import ParameterError, UnknownModelError

pytest.importorskip("livekit.agents", reason="livekit-agents is not installed (pip install 'deeptone-async[livekit]')")

from livekit import rtc  # noqa: E402
from livekit.agents import vad  # noqa: E402
from livekit.agents.metrics import VADMetrics  # noqa: E402

from deeptone_async.integrations.livekit import DeeptoneVAD  # noqa: E402

LEAD_S, TAIL_S = 1.0, 1.5
ROOM_RATE = 48_000


@pytest.fixture(scope="module")
def utterance(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, float, float]:
    """16 kHz int16: silence, a male voice's sentence, silence; and the speech's start and end (s)."""
    wav = espeak("Could you turn the lights off in the kitchen, please?", tmp_path_factory.mktemp("lk") / "u.wav", voice="en+m3")
    x, _ = sf.read(wav, dtype="int16")
    nz = np.flatnonzero(np.abs(x) > 300)
    audio = np.concatenate([np.zeros(int(LEAD_S * SR), np.int16), x, np.zeros(int(TAIL_S * SR), np.int16)])
    return audio, LEAD_S + nz[0] / SR, LEAD_S + nz[-1] / SR


def _room_frames(audio: np.ndarray, channels: int = 1) -> list[rtc.AudioFrame]:
    """10 ms frames at 48 kHz, as a LiveKit room delivers them."""
    up = soxr.resample(audio, SR, ROOM_RATE)
    if channels > 1:
        up = np.repeat(up[:, None], channels, axis=1)
    n = ROOM_RATE // 100
    return [
        rtc.AudioFrame(up[i : i + n].tobytes(), ROOM_RATE, channels, len(up[i : i + n]))
        for i in range(0, len(up), n)
    ]


async def _events(detector: DeeptoneVAD, frames: list[rtc.AudioFrame], flush_after: int | None = None) -> list[vad.VADEvent]:
    stream = detector.stream()
    for i, frame in enumerate(frames):
        stream.push_frame(frame)
        if flush_after is not None and i == flush_after:
            stream.flush()
    stream.end_input()
    events = [ev async for ev in stream]
    await stream.aclose()
    return events


def _duration(frames: list[rtc.AudioFrame]) -> float:
    return sum(f.samples_per_channel / f.sample_rate for f in frames)


async def test_start_and_end_of_speech_with_the_speech_audio(engine: Deeptone, utterance: tuple) -> None:
    audio, start, end = utterance
    detector = DeeptoneVAD(engine)
    metrics: list[VADMetrics] = []
    detector.on("metrics_collected", metrics.append)
    events = await _events(detector, _room_frames(audio, channels=2))

    speech = [e for e in events if e.type != vad.VADEventType.INFERENCE_DONE]
    assert [e.type for e in speech] == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH], speech
    began, ended = speech
    # reported min_duration_ms (250) after the onset, and min_gap_ms (200) after the end
    assert start + 0.2 <= began.timestamp <= start + 0.25 + 0.2, (start, began.timestamp)
    assert end + 0.2 <= ended.timestamp <= end + 0.2 + 0.3, (end, ended.timestamp)
    assert began.speaking and not ended.speaking
    assert began.samples_index == round(began.timestamp * SR)
    # the end event carries the utterance's audio, padding included
    assert abs(_duration(ended.frames) - (end - start)) < 0.25, (_duration(ended.frames), end - start)
    assert abs(ended.speech_duration - _duration(ended.frames)) < 1e-6
    seg = np.frombuffer(ended.frames[0].data, np.int16)
    assert ended.frames[0].sample_rate == SR and np.abs(seg).max() > 3000  # the words, not silence

    # one inference per 64 ms of audio, probabilities high inside the words and 0 outside
    inferences = [e for e in events if e.type == vad.VADEventType.INFERENCE_DONE]
    assert len(inferences) == int(np.ceil(len(audio) / 1024))
    p = np.array([e.probability for e in inferences])
    t = np.array([e.timestamp for e in inferences])
    assert p[t <= LEAD_S].max() < 0.1 and p[(t > start + 0.3) & (t < end - 0.1)].mean() > 0.8
    assert abs(sum(_duration(e.frames) for e in inferences) - len(audio) / SR) < 0.01
    # LiveKit's own metrics monitor counted the inferences
    assert metrics and sum(m.inference_count for m in metrics) >= len(inferences) - 16


async def test_long_speech_keeps_only_the_buffered_audio(engine: Deeptone, utterance: tuple) -> None:
    audio, start, end = utterance
    events = await _events(DeeptoneVAD(engine, max_buffered_speech_s=1.0), _room_frames(audio))
    ended = next(e for e in events if e.type == vad.VADEventType.END_OF_SPEECH)
    assert ended.speech_duration > 2.0  # the segment's length is still reported
    assert 1.0 <= _duration(ended.frames) <= 1.05  # with its last second of audio


async def test_flush_starts_a_fresh_segment(engine: Deeptone, utterance: tuple) -> None:
    audio, start, _ = utterance
    frames = _room_frames(audio)
    events = await _events(DeeptoneVAD(engine), frames + frames, flush_after=len(frames) - 1)
    kinds = [e.type for e in events if e.type != vad.VADEventType.INFERENCE_DONE]
    assert kinds == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH] * 2
    starts = [e.timestamp for e in events if e.type == vad.VADEventType.START_OF_SPEECH]
    assert abs(starts[0] - starts[1]) < 0.07  # timestamps restart after the flush


async def test_no_speech_in_silence_or_a_tone(engine: Deeptone) -> None:
    t = np.arange(3 * SR) / SR
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    events = await _events(DeeptoneVAD(engine), _room_frames(np.concatenate([np.zeros(SR, np.int16), tone])))
    assert all(e.type == vad.VADEventType.INFERENCE_DONE for e in events)
    assert not any(e.speaking for e in events)


def test_bad_arguments_fail_at_construction(engine: Deeptone) -> None:
    with pytest.raises(UnknownModelError):
        DeeptoneVAD(engine, model="accent")
    with pytest.raises(ParameterError, match="stop_threshold"):
        DeeptoneVAD(engine, start_threshold=0.3, stop_threshold=0.6)


def test_the_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "livekit_vad.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("start of speech") >= 3 and "end of speech" in out.stdout, out.stdout


@pytest.mark.parametrize("extra", ["livekit", "pipecat"])
def test_without_the_extra_the_import_error_names_it(extra: str) -> None:
    code = (
        f"import sys; sys.modules[{extra!r}] = None\n"
        "import deeptone_async.integrations\n"  # the package itself imports no framework
        f"import deeptone_async.integrations.{extra}\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"pip install 'deeptone-async[{extra}]'" in out.stderr.splitlines()[-1], out.stderr[-1000:]
