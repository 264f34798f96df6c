"""Exports parse back with the tools people read them with and match the segments."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import webvtt
from praatio import textgrid as praat_textgrid

from deeptone_async import Deeptone, ParameterError, exports
from deeptone_async.segments import Segment

SEGS = [
    Segment(34, 2526, "speech", 0.98, "vad"),
    Segment(4258, 6942, "speech", 0.97, "vad"),
    Segment(0, 2500, "female", 0.9, "gender"),
    Segment(4300, 6900, "male", 0.95, "gender"),
]


def test_rttm_reads_back_as_the_segments() -> None:
    text = exports.rttm(SEGS[:2], "my talk.wav")
    cols = ["type", "file", "chnl", "tbeg", "tdur", "ortho", "stype", "name", "conf", "slat"]
    rows = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=cols)
    assert list(rows["type"]) == ["SPEAKER"] * 2 and set(rows["file"]) == {"my_talk"}  # no spaces in RTTM fields
    assert list(rows["name"]) == ["speech", "speech"]
    assert list(rows["tbeg"]) == pytest.approx([0.034, 4.258])
    assert list(rows["tbeg"] + rows["tdur"]) == pytest.approx([2.526, 6.942])


def test_rttm_names_carry_the_model_when_there_are_several_and_channels_get_their_own_file_id() -> None:
    text = exports.rttm([*SEGS, Segment(0, 1000, "speech", 0.9, "vad", "1")], "talk")
    names = {line.split()[7] for line in text.splitlines()}
    assert names == {"vad:speech", "gender:female", "gender:male"}
    assert {line.split()[1] for line in text.splitlines()} == {"talk_ch0", "talk_ch1"}


def test_textgrid_has_a_tier_per_model_with_the_segments(tmp_path: Path) -> None:
    path = exports.write(SEGS, tmp_path / "talk.TextGrid", duration_ms=7216)
    grid = praat_textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    assert grid.tierNames == ("vad", "gender") and grid.maxTimestamp == pytest.approx(7.216)
    vad = [(e.start, e.end, e.label) for e in grid.getTier("vad").entries]
    assert vad == [(0.034, 2.526, "speech"), (4.258, 6.942, "speech")]
    assert [e.label for e in grid.getTier("gender").entries] == ["female", "male"]


def test_srt_and_webvtt_give_one_cue_per_segment_in_time_order(tmp_path: Path) -> None:
    for fmt in ("srt", "vtt"):
        path = exports.write(SEGS[:2], tmp_path / f"talk.{fmt}")
        doc = webvtt.from_srt(str(path)) if fmt == "srt" else webvtt.read(str(path))
        cues = [(c.start, c.end, c.text) for c in doc]
        assert cues == [("00:00:00.034", "00:00:02.526", "speech"), ("00:00:04.258", "00:00:06.942", "speech")], fmt
    vtt = webvtt.from_string(exports.webvtt(SEGS))
    assert [c.text for c in vtt] == ["gender:female", "vad:speech", "vad:speech", "gender:male"]


def test_audacity_labels_match_the_project_format() -> None:
    assert exports.audacity(SEGS[:1]) == "0.034000\t2.526000\tvad: speech\n"


def test_an_unknown_format_or_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="format must be one of"):
        exports.export(SEGS, "eaf")
    with pytest.raises(ParameterError, match="cannot tell the format"):
        exports.write(SEGS, tmp_path / "x.doc")


async def test_a_files_segments_round_trip_through_every_format(engine: Deeptone, speech_wav: Path, tmp_path: Path) -> None:
    out = await engine.process_file(speech_wav, ["vad", "gender"], include_transitions=True)
    segs = exports.result_segments(out, ["vad"])
    assert len(segs) == 2
    grid = praat_textgrid.openTextgrid(str(exports.write(segs, tmp_path / "s.TextGrid")), includeEmptyIntervals=False)
    assert [(round(e.start * 1000), round(e.end * 1000)) for e in grid.getTier("vad").entries] == [
        (s.start_ms, s.end_ms) for s in segs
    ]
    both = exports.result_segments(out)
    assert {s.model for s in both} == {"vad", "gender"}
