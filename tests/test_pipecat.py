"""The pipecat plug-ins, in real pipecat pipelines (pipecat's own ``run_test`` harness).

Speech is espeak-ng audio with silence around it, sent as pipecat's 20 ms
``InputAudioRawFrame``s; the tests check what a bot sees downstream: when the user started
and stopped speaking, the analytics' results and events, and the audio passing unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import SR, espeak

from deeptone_async import Deeptone
from deeptone_async.errors import UnknownModelError
from deeptone_async.events import LabelChanged, SpeechEnded, SpeechStarted

pytest.importorskip("pipecat", reason="pipecat-ai is not installed (pip install 'deeptone-async[pipecat]')")
with warnings.catch_warnings():  # pipecat 1.14 imports audioop, deprecated since Python 3.11
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import pipecat.audio.utils  # noqa: E402, F401

from pipecat.audio.vad.vad_analyzer import VADParams  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.vad_processor import VADProcessor  # noqa: E402
from pipecat.tests.utils import run_test  # noqa: E402

from deeptone_async.integrations.pipecat import (  # noqa: E402
    DeeptoneAnalytics,
    DeeptoneEventFrame,
    DeeptoneResultFrame,
    DeeptoneVADAnalyzer,
)

LEAD_S, TAIL_S = 1.0, 2.0


@pytest.fixture(scope="module")
def utterance(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, float, float]:
    """16 kHz int16: 1 s of silence, a female voice's sentence, 2 s of silence; with the
    speech's start and end in seconds."""
    wav = espeak("Hello, I would like to book a table for two this evening.", tmp_path_factory.mktemp("pc") / "u.wav")
    x, _ = sf.read(wav, dtype="int16")
    nz = np.flatnonzero(np.abs(x) > 300)
    start, end = LEAD_S + nz[0] / SR, LEAD_S + nz[-1] / SR
    audio = np.concatenate([np.zeros(int(LEAD_S * SR), np.int16), x, np.zeros(int(TAIL_S * SR), np.int16)])
    return audio, start, end


def _frames(audio: np.ndarray, rate: int, ms: int = 20) -> list[InputAudioRawFrame]:
    n = rate * ms // 1000
    return [InputAudioRawFrame(audio=audio[i : i + n].tobytes(), sample_rate=rate, num_channels=1) for i in range(0, len(audio), n)]


def _when(frames: list, kind: type, rate: int) -> float:
    """Seconds of audio that had passed downstream before the first frame of ``kind``."""
    samples = 0
    for f in frames:
        if isinstance(f, kind):
            return samples / rate
        if isinstance(f, InputAudioRawFrame):
            samples += f.num_frames
    raise AssertionError(f"no {kind.__name__} in {[type(f).__name__ for f in frames]}")


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_vad_analyzer_starts_and_stops_the_user_turn(engine: Deeptone, utterance: tuple, rate: int) -> None:
    audio, start, end = utterance
    if rate != SR:
        audio = soxr.resample(audio, SR, rate)
    params = VADParams(confidence=0.7, start_secs=0.2, stop_secs=0.5, min_volume=0.0)
    vad = VADProcessor(vad_analyzer=DeeptoneVADAnalyzer(engine, sample_rate=rate, params=params))
    down, _ = await run_test(vad, frames_to_send=_frames(audio, rate))

    started = [f for f in down if isinstance(f, VADUserStartedSpeakingFrame)]
    stopped = [f for f in down if isinstance(f, VADUserStoppedSpeakingFrame)]
    assert len(started) >= 1 and len(stopped) == len(started)
    # the turn starts once start_secs of speech was heard, and stops stop_secs after the
    # last word (a 64 ms frame of slack each way, and one more for the model's context);
    # telephone-band speech (8 kHz) convinces the model two 64 ms frames later
    late = 0.2 if rate == SR else 0.35
    t_start, t_stop = _when(down, VADUserStartedSpeakingFrame, rate), _when(down, VADUserStoppedSpeakingFrame, rate)
    assert start + 0.2 - 0.13 <= t_start <= start + 0.2 + late, (start, t_start)
    last_stop = _last_stop(down, rate)
    assert end + 0.5 - 0.13 <= last_stop <= end + 0.5 + 0.3, (end, last_stop)
    assert t_stop <= last_stop
    # the audio itself passes through, unchanged
    assert b"".join(f.audio for f in down if isinstance(f, InputAudioRawFrame)) == audio.tobytes()


def _last_stop(frames: list, rate: int) -> float:
    samples, last = 0, None
    for f in frames:
        if isinstance(f, VADUserStoppedSpeakingFrame):
            last = samples / rate
        if isinstance(f, InputAudioRawFrame):
            samples += f.num_frames
    assert last is not None
    return last


async def test_vad_analyzer_stays_quiet_on_silence_and_tone(engine: Deeptone) -> None:
    t = np.arange(3 * SR) / SR
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    audio = np.concatenate([np.zeros(SR, np.int16), tone])
    vad = VADProcessor(vad_analyzer=DeeptoneVADAnalyzer(engine, params=VADParams(min_volume=0.0)))
    down, _ = await run_test(vad, frames_to_send=_frames(audio, SR))
    assert not [f for f in down if isinstance(f, VADUserStartedSpeakingFrame)]


async def test_speech_rt_can_be_the_detector(engine: Deeptone, utterance: tuple) -> None:
    audio, start, _ = utterance
    vad = VADProcessor(vad_analyzer=DeeptoneVADAnalyzer(engine, model="speech-rt", params=VADParams(min_volume=0.0)))
    down, _ = await run_test(vad, frames_to_send=_frames(audio, SR))
    assert start <= _when(down, VADUserStartedSpeakingFrame, SR) <= start + 0.6


async def test_analytics_adds_results_and_events_to_the_pipeline(engine: Deeptone, utterance: tuple) -> None:
    audio, start, end = utterance
    # 48 kHz stereo, as a WebRTC transport delivers it: resampled and mixed inside
    stereo = np.repeat(soxr.resample(audio, SR, 48000)[:, None], 2, axis=1)
    sent = [InputAudioRawFrame(audio=stereo[i : i + 960].tobytes(), sample_rate=48000, num_channels=2)
            for i in range(0, len(stereo), 960)]
    analytics = DeeptoneAnalytics(engine, models=["gender"], output_period=256)
    down, _ = await run_test(analytics, frames_to_send=sent)

    # every audio frame passes through unchanged and in order
    assert [f.audio for f in down if isinstance(f, InputAudioRawFrame)] == [f.audio for f in sent]
    results = [f.result for f in down if isinstance(f, DeeptoneResultFrame)]
    seconds = len(audio) / SR
    assert [r["timestamp"] for r in results] == list(range(0, 256 * len(results), 256))
    assert len(results) == int(np.ceil(seconds * 1000 / 256))  # the last partial period after EndFrame
    assert set(results[0]["results"]) == {"vad", "gender"}
    events = [f.event for f in down if isinstance(f, DeeptoneEventFrame)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("SpeechStarted") == kinds.count("SpeechEnded") >= 1, kinds
    first = next(e for e in events if isinstance(e, SpeechStarted))
    last = [e for e in events if isinstance(e, SpeechEnded)][-1]
    assert abs(first.timestamp_ms / 1000 - start) < 0.2 and abs(last.timestamp_ms / 1000 - end) < 0.3, (first, last, start, end)
    genders = [e for e in events if isinstance(e, LabelChanged) and e.model == "gender"]
    assert any(e.label == "female" for e in genders) and not any(e.label == "male" for e in genders), genders


async def test_analytics_drops_and_counts_audio_it_cannot_queue(engine: Deeptone, utterance: tuple) -> None:
    audio, _, _ = utterance
    # a 5 s frame arrives at once into a queue of 128 ms: the bot's audio is not held up,
    # the analysis gets what fits and the rest is counted as dropped
    analytics = DeeptoneAnalytics(engine, models=["vad"], output_period=64, max_queue_s=0.128)
    frame = InputAudioRawFrame(audio=audio[: 5 * SR].tobytes(), sample_rate=SR, num_channels=1)
    down, _ = await run_test(analytics, frames_to_send=[frame])
    assert [f for f in down if isinstance(f, InputAudioRawFrame)] == [frame]
    results = [f.result for f in down if isinstance(f, DeeptoneResultFrame)]
    # 2 x 64 ms in the queue, one more when the analysis was already waiting for audio, and
    # the last 128 samples at EndFrame when the queue had room again
    assert 2 <= len(results) <= 4
    assert 5 * SR - len(results) * 1024 <= analytics.dropped_samples <= 5 * SR - 2 * 1024


def test_unknown_model_fails_at_construction(engine: Deeptone) -> None:
    with pytest.raises(UnknownModelError):
        DeeptoneAnalytics(engine, models=["vad", "accent"])
    with pytest.raises(UnknownModelError):
        DeeptoneVADAnalyzer(engine, model="accent")


def test_the_example_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "pipecat_bot.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "user started speaking" in out.stdout and "gender: female" in out.stdout and "gender: male" in out.stdout, out.stdout
