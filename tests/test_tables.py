"""Results as tidy tables: columns, dtypes, values, several files; the summary as rows."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import numpy as np
import pyarrow as pa
import pytest

from deeptone_async import Deeptone, ParameterError, tables
from deeptone_async.segments import Segment


@pytest.fixture(scope="module")
def analysed(speech_wav: Path) -> dict:
    engine = Deeptone()
    return anyio.run(functools.partial(engine.process_file, speech_wav, ["vad", "speech"], output_period=512, include_summary=True,
                                     include_raw_values=True))


def test_to_pandas_is_tidy_with_the_documented_dtypes(analysed: dict) -> None:
    df = analysed.to_pandas(file="speech.wav")
    assert list(df.columns[:6]) == ["file", "channel", "timestamp_ms", "model", "result", "confidence"]
    assert {c for c in df.columns[6:]} == {"raw_speech", "raw_no_speech", "raw_music", "raw_other"}
    assert {c: str(t) for c, t in df.dtypes.items() if not c.startswith("raw_")} == {
        "file": "category", "channel": "int64", "timestamp_ms": "int64", "model": "category",
        "result": "category", "confidence": "float64",
    }
    series = analysed["time_series"]
    assert len(df) == 2 * len(series)
    row = df[(df.model == "vad") & (df.timestamp_ms == 512)].iloc[0]
    assert row.result == series[1]["results"]["vad"]["result"] and row.confidence == series[1]["results"]["vad"]["confidence"]
    assert row.raw_speech == series[1]["raw"]["vad"]["speech"] and np.isnan(row.raw_music)  # the Vad has no music


def test_several_files_in_one_table_and_the_arrow_twin(analysed: dict) -> None:
    df = tables.to_pandas({"a.wav": analysed, "b.wav": analysed})
    assert list(df.file.cat.categories) == ["a.wav", "b.wav"] and len(df) == 2 * len(analysed.to_pandas())
    table = analysed.to_arrow(file="x.wav")
    assert table.num_rows == len(analysed.to_pandas())
    assert table.schema.field("model").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("timestamp_ms").type == pa.int64()
    assert table.column("confidence").to_pylist() == list(analysed.to_pandas().confidence)


def test_the_summary_as_rows_adds_up_to_one_per_model(analysed: dict) -> None:
    summary = analysed.summary_table(file="speech.wav")
    assert list(summary.columns) == ["file", "channel", "model", "label", "fraction"]
    assert summary.groupby("model", observed=True).fraction.sum().round(4).to_dict() == {"speech": 1.0, "vad": 1.0}
    speech = summary[(summary.model == "vad") & (summary.label == "speech")].fraction.item()
    assert speech == analysed["summary"]["vad"]["speech_fraction"]


def test_a_result_without_a_summary_says_how_to_get_one() -> None:
    with pytest.raises(ParameterError, match="include_summary=True"):
        tables.summary_table({"channels": {"0": {"time_series": []}}})


def test_segments_as_rows() -> None:
    df = tables.segments_table({"a.wav": [Segment(0, 500, "speech", 0.9)], "b.wav": [Segment(100, 300, "speech", 0.8)]})
    assert list(df.duration_ms) == [500, 200] and list(df.file) == ["a.wav", "b.wav"]
    assert str(df.start_ms.dtype) == "int64"
