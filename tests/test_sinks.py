from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deeptone_async import Deeptone, SinkError
from deeptone_async.sinks import (
    AudacityLabelSink,
    CallbackSink,
    CsvSink,
    JsonlSink,
    StdoutSink,
    audacity_labels,
    drain,
    tee,
)
from deeptone_async.testing import RecordingSink, check_sink


async def test_every_sink_passes_the_protocol_check(tmp_path: Path) -> None:
    for sink in [JsonlSink(tmp_path / "a.jsonl"), CsvSink(tmp_path / "a.csv"), AudacityLabelSink(tmp_path / "a.txt"),
                 CallbackSink(lambda r: None), StdoutSink(), RecordingSink()]:
        await check_sink(sink)


async def test_chained_sinks_see_every_result(engine: Deeptone, speech: np.ndarray, tmp_path: Path) -> None:
    seen: list[int] = []

    async def on_result(r: dict) -> None:
        seen.append(r["timestamp"])

    rec = RecordingSink()
    stream = engine.process_stream([speech], ["vad"], include_raw_values=True)
    n = await drain(
        stream, JsonlSink(tmp_path / "out.jsonl"), CsvSink(tmp_path / "out.csv"), CallbackSink(on_result), rec,
        AudacityLabelSink(tmp_path / "labels.txt"),
    )
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert n == len(lines) == len(seen) == len(rec.results) and rec.closed
    assert [json.loads(x) for x in lines] == rec.results
    with (tmp_path / "out.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["timestamp"]) for r in rows] == seen
    assert rows[0]["model"] == "vad" and json.loads(rows[0]["raw"]).keys() == {"speech", "no_speech"}
    labels = [line.split("\t") for line in (tmp_path / "labels.txt").read_text().splitlines()]
    assert float(labels[0][0]) == 0.0 and all(lab[2].startswith("vad: ") for lab in labels)
    assert float(labels[-1][1]) == pytest.approx(len(seen) * 1.024)


async def test_tee_passes_results_on(engine: Deeptone, speech: np.ndarray) -> None:
    rec = RecordingSink()
    got = [r async for r in tee(engine.process_stream([speech], ["vad"]), rec)]
    assert got == rec.results and rec.closed


async def test_a_failing_sink_surfaces_and_all_sinks_are_closed(engine: Deeptone, speech: np.ndarray) -> None:
    def boom(r: dict) -> None:
        if r["timestamp"] >= 2048:
            raise OSError("disk full")

    before, after = RecordingSink(), RecordingSink()
    with pytest.raises(SinkError, match="CallbackSink failed: disk full") as info:
        await drain(engine.process_stream([speech], ["vad"]), before, CallbackSink(boom), after)
    assert isinstance(info.value.__cause__, OSError)
    assert [r["timestamp"] for r in before.results] == [0, 1024, 2048]
    assert [r["timestamp"] for r in after.results] == [0, 1024]
    assert before.closed and after.closed


def test_audacity_labels_from_transitions() -> None:
    text = audacity_labels({"vad": [{"timestamp_start": 0, "timestamp_end": 320, "result": "silence", "confidence": 1.0},
                                    {"timestamp_start": 320, "timestamp_end": 1001, "result": "speech", "confidence": 0.9}]})
    assert text == "0.000000\t0.320000\tvad: silence\n0.320000\t1.001000\tvad: speech\n"


async def test_stdout_sink_prints_readable_lines(capsys: pytest.CaptureFixture[str]) -> None:
    await StdoutSink().send({"timestamp": 1024, "results": {"vad": {"result": "speech", "confidence": 0.98765}}})
    assert capsys.readouterr().out == "   1.024 s  vad: speech (0.99)\n"
