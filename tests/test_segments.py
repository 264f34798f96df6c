"""Segments from transitions: merged gaps, minimum duration, padding; the same on streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeptone_async import Deeptone, ParameterError
from deeptone_async.segments import DEFAULT_SMOOTHING, Segment, Smoothing, segments
from deeptone_async.sources import FileSource


def result(*runs: tuple[int, int, str], model: str = "vad", channels: int = 1) -> dict:
    """A process_file-shaped result whose transitions are ``runs`` (start, end, label)."""
    tr = [{"timestamp_start": a, "timestamp_end": b, "result": lab, "confidence": 0.9} for a, b, lab in runs]
    return {"channels": {str(c): {"transitions": {model: tr}} for c in range(channels)}}


def spans(segs: list[Segment]) -> list[tuple[int, int, str]]:
    return [(s.start_ms, s.end_ms, s.label) for s in segs]


def test_the_defaults_are_the_measured_ones() -> None:
    # silero-vad's 250 / 100 / 30 ms but a 200 ms gap (benchmarks/RESULTS.md, "Segments")
    assert (DEFAULT_SMOOTHING.min_duration_ms, DEFAULT_SMOOTHING.min_gap_ms, DEFAULT_SMOOTHING.pad_ms) == (250, 200, 30)


def test_a_gap_shorter_than_min_gap_is_bridged_and_a_longer_one_splits() -> None:
    r = result((0, 1000, "speech"), (1000, 1064, "no_speech"), (1064, 2000, "speech"), (2000, 2128, "silence"),
               (2128, 3000, "speech"), (3000, 4000, "silence"))
    assert spans(segments(r, pad_ms=0, min_gap_ms=100)) == [(0, 2000, "speech"), (2128, 3000, "speech")]
    assert spans(segments(r, pad_ms=0)) == [(0, 3000, "speech")]  # the default 200 ms bridges 128
    assert spans(segments(r, pad_ms=0, min_gap_ms=0)) == [(0, 1000, "speech"), (1064, 2000, "speech"), (2128, 3000, "speech")]


def test_segments_shorter_than_min_duration_are_dropped_counting_bridged_gaps() -> None:
    r = result((0, 500, "silence"), (500, 692, "speech"), (692, 1500, "silence"),
               (1500, 1628, "speech"), (1628, 1692, "no_speech"), (1692, 1820, "speech"), (1820, 3000, "silence"))
    # 192 ms alone is dropped; 128 + 64 (bridged) + 128 = 320 ms is kept
    assert spans(segments(r, pad_ms=0)) == [(1500, 1820, "speech")]
    assert spans(segments(r, pad_ms=0, min_duration_ms=0)) == [(500, 692, "speech"), (1500, 1820, "speech")]


def test_padding_stays_inside_the_input_and_never_overlaps_the_previous_segment() -> None:
    r = result((0, 400, "speech"), (400, 600, "silence"), (600, 1000, "speech"), (1000, 1010, "silence"))
    assert spans(segments(r, pad_ms=30)) == [(0, 430, "speech"), (570, 1010, "speech")]
    assert spans(segments(r, pad_ms=150)) == [(0, 550, "speech"), (550, 1010, "speech")]


def test_labels_pick_what_makes_a_segment_and_the_longest_one_names_it() -> None:
    r = result((0, 1000, "male"), (1000, 1100, "female"), (1100, 2000, "male"), (2000, 3000, "no_speech"), model="gender")
    assert spans(segments(r, "gender", pad_ms=0)) == [(0, 2000, "male")]  # no_speech, silence, unknown never count
    assert spans(segments(r, "gender", labels="female", pad_ms=0, min_duration_ms=0)) == [(1000, 1100, "female")]
    seg = segments(r, "gender")[0]
    assert seg.model == "gender" and seg.channel == "0" and seg.confidence == 0.9 and seg.duration_ms == 2030


def test_every_channel_in_order_or_one() -> None:
    r = result((0, 1000, "speech"), channels=2)
    assert [s.channel for s in segments(r)] == ["0", "1"]
    assert [s.channel for s in segments(r, channel=1)] == ["1"]


def test_a_time_series_is_used_when_there_are_no_transitions() -> None:
    series = [{"timestamp": t, "results": {"vad": {"result": "speech" if 1024 <= t < 3072 else "silence", "confidence": 1.0}}}
              for t in range(0, 5120, 1024)]
    assert spans(segments({"channels": {"0": {"time_series": series}}}, pad_ms=0)) == [(1024, 3072, "speech")]
    assert spans(segments(series, pad_ms=0)) == [(1024, 3072, "speech")]  # stream results collected in a list


def test_bad_arguments_say_what_was_expected() -> None:
    r = result((0, 1000, "speech"))
    with pytest.raises(ParameterError, match="no model 'gender'.*'vad'"):
        segments(r, "gender")
    with pytest.raises(ParameterError, match="no channel 3"):
        segments(r, channel=3)
    with pytest.raises(ParameterError, match="min_gap_ms must be a non-negative int"):
        segments(r, min_gap_ms=-1)
    with pytest.raises(ParameterError, match="one result"):
        segments([{"timestamp": 0, "results": {"vad": {"result": "speech", "confidence": 1.0}}}])
    with pytest.raises(ParameterError, match="labels"):
        Smoothing(labels=())


async def test_speech_file_gives_one_segment_per_sentence(engine: Deeptone, speech_wav: Path) -> None:
    out = await engine.process_file(speech_wav, ["vad"], include_transitions=True)
    raw = sum(t["result"] == "speech" for t in out["transitions"]["vad"])
    segs = segments(out)
    assert len(segs) == 2 < raw + 1  # two sentences around the 1.5 s pause
    a, b = segs
    assert 1200 <= b.start_ms - a.end_ms <= 1800  # the pause (less the padding and the sentences' tails)
    assert a.start_ms < 300 and b.end_ms > 6000 and min(a.confidence, b.confidence) > 0.9


async def test_a_smoothed_stream_gives_the_files_segments(engine: Deeptone, speech_wav: Path) -> None:
    out = await engine.process_file(speech_wav, ["vad"], include_transitions=True)
    stream = engine.process_stream(FileSource(speech_wav), ["vad"], output_period=64, smoothing=True)
    results = [r async for r in stream]
    plain = [r async for r in engine.process_stream(FileSource(speech_wav), ["vad"], output_period=64)]
    assert [r["timestamp"] for r in results] == [r["timestamp"] for r in plain]  # every result, once, in order
    assert stream.stats.results == len(plain)
    # the smoothed labels are the file's segments (less padding, which is under half a period)
    smoothed = segments(results, min_duration_ms=0, min_gap_ms=0, pad_ms=0)
    assert [(s.start_ms, s.end_ms) for s in smoothed] == [(s.start_ms, s.end_ms) for s in segments(out, pad_ms=0)]


async def test_smoothing_that_names_a_model_the_stream_does_not_run_fails_at_the_call(engine: Deeptone, speech_wav: Path) -> None:
    with pytest.raises(ParameterError, match="'gender'"):
        engine.process_stream(FileSource(speech_wav), ["vad"], smoothing={"gender": Smoothing()})
