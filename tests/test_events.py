"""Stream stages: smoothed results and speech / label events with hysteresis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from deeptone_async import Deeptone
from deeptone_async.events import (
    LabelChanged,
    SpeechEnded,
    SpeechStarted,
    label_events,
    smooth,
    speech_events,
)
from deeptone_async.segments import Smoothing, segments
from deeptone_async.sources import FileSource


async def stream(labels: Sequence[str | tuple[str, float]], model: str = "vad", period: int = 64) -> AsyncIterator[dict]:
    """Stream results, one per ``period``: a label, or (label, confidence)."""
    for i, item in enumerate(labels):
        label, conf = item if isinstance(item, tuple) else (item, 0.9)
        yield {"timestamp": i * period, "results": {model: {"result": label, "confidence": conf}}}


def kinds(events: list) -> list[tuple[str, int]]:
    return [(ev.type, ev.timestamp_ms) for ev in events]


async def test_events_fire_once_per_onset_and_offset_with_the_latency_of_the_rules() -> None:
    labels = ["silence"] * 5 + ["speech"] * 10 + ["no_speech"] + ["speech"] * 5 + ["silence"] * 10
    evs = [ev async for ev in speech_events(stream(labels), smoothing=Smoothing(pad_ms=0))]
    assert kinds(evs) == [("speech_started", 320), ("speech_ended", 1344)]  # the one-frame gap is bridged
    started, ended = evs
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert started.detected_ms - started.timestamp_ms == 256  # min_duration_ms, rounded up to 64 ms frames
    assert ended.detected_ms - ended.timestamp_ms == 256  # min_gap_ms (200), rounded up
    assert ended.start_ms == 320 and ended.segment.duration_ms == 1024
    assert ended.to_dict()["event"] == "speech_ended"


async def test_probability_hysteresis_keeps_speech_on_while_the_model_hesitates() -> None:
    # after the onset the model wavers: no_speech at 0.6 means speech at 0.4, above the stop threshold
    wavering = [("speech", 0.9)] * 6 + [("no_speech", 0.6), ("speech", 0.55)] * 6 + [("silence", 1.0)] * 6
    rules = Smoothing(pad_ms=0, min_gap_ms=64)  # a 64 ms gap is enough to end speech
    with_h = [ev async for ev in speech_events(stream(wavering), smoothing=rules)]
    assert kinds(with_h) == [("speech_started", 0), ("speech_ended", 18 * 64)]  # through the last wavering frame
    without = [ev async for ev in speech_events(stream(wavering), smoothing=rules, start_threshold=0.5, stop_threshold=0.5)]
    assert kinds(without) == [("speech_started", 0), ("speech_ended", 6 * 64)]  # ended at the first hesitation


async def test_a_blip_shorter_than_min_duration_fires_nothing() -> None:
    labels = ["silence"] * 5 + ["speech"] * 3 + ["silence"] * 10
    assert [ev async for ev in speech_events(stream(labels))] == []


async def test_a_stream_that_ends_inside_speech_still_ends_it() -> None:
    evs = [ev async for ev in speech_events(stream(["speech"] * 10), smoothing=Smoothing(pad_ms=0))]
    assert kinds(evs) == [("speech_started", 0), ("speech_ended", 640)]


async def test_smooth_drops_blips_and_bridges_gaps_without_losing_a_result() -> None:
    labels = ["silence"] * 4 + ["speech"] * 2 + ["silence"] * 4 + ["speech"] * 6 + ["no_speech"] + ["speech"] * 6 + ["silence"] * 4
    out = [r async for r in smooth(stream(labels), smoothing=Smoothing(pad_ms=0))]
    assert [r["timestamp"] for r in out] == [i * 64 for i in range(len(labels))]
    got = [r["results"]["vad"]["result"] for r in out]
    assert got == ["silence"] * 4 + ["no_speech"] * 2 + ["silence"] * 4 + ["speech"] * 13 + ["silence"] * 4
    assert out[4]["results"]["vad"]["confidence"] == 0.1  # 1 - the speech confidence of the dropped blip
    assert out[16]["results"]["vad"] == {"result": "speech", "confidence": 0.1}


async def test_smooth_holds_results_no_longer_than_the_rules_need() -> None:
    labels = ["silence"] * 10 + ["speech"] * 20 + ["silence"] * 10
    seen: list[int] = []

    async def source() -> AsyncIterator[dict]:
        async for item in stream(labels):
            seen.append(item["timestamp"])
            yield item

    delays = []
    async for r in smooth(source(), smoothing=Smoothing()):
        delays.append(seen[-1] - r["timestamp"])
    assert max(delays) <= 30 + 250 + 200 + 64  # pad + min_duration + min_gap, rounded up to a period
    assert min(delays) == 0  # inside open speech a result is final at once


async def test_label_changes_need_min_duration_and_fire_once() -> None:
    labels = ["male"] * 10 + ["female"] * 2 + ["male"] * 5 + ["female"] * 10
    evs = [ev async for ev in label_events(stream(labels, "gender"), "gender", min_duration_ms=256)]
    assert [(ev.label, ev.previous, ev.timestamp_ms, ev.detected_ms) for ev in evs] == [
        ("male", None, 0, 256),
        ("female", "male", 17 * 64, 21 * 64),
    ]
    assert all(isinstance(ev, LabelChanged) for ev in evs)


async def test_label_only_events_on_a_real_stream_match_the_files_segments(engine: Deeptone, speech_wav: Path) -> None:
    out = await engine.process_file(speech_wav, ["vad"], include_transitions=True)
    results = engine.process_stream(FileSource(speech_wav), ["vad"], output_period=64)
    evs = [ev async for ev in speech_events(results, start_threshold=None, stop_threshold=None)]
    ended = [ev.segment for ev in evs if isinstance(ev, SpeechEnded)]
    assert [(s.start_ms, s.end_ms) for s in ended] == [(s.start_ms, s.end_ms) for s in segments(out)]
    assert [ev.type for ev in evs] == ["speech_started", "speech_ended"] * 2


def test_the_blocking_facade_smooths_too(speech_wav: Path) -> None:
    from deeptone_async.sync import Deeptone as SyncDeeptone

    with SyncDeeptone() as engine:
        results = list(engine.process_stream(FileSource(speech_wav), ["vad"], output_period=64, smoothing=True))
        plain = engine.process_file(speech_wav, ["vad"], include_transitions=True)
    smoothed = segments(results, min_duration_ms=0, min_gap_ms=0, pad_ms=0)
    assert [(s.start_ms, s.end_ms) for s in smoothed] == [(s.start_ms, s.end_ms) for s in segments(plain, pad_ms=0)]
