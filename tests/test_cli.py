from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from deeptone_async.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_file_json(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, out, _ = run(capsys, "file", str(speech_wav), "--models", "vad", "--summary", "--transitions", "--raw")
    doc = json.loads(out)
    assert code == 0 and set(doc["channels"]["0"]) == {"time_series", "summary", "transitions"}
    assert "raw" in doc["channels"]["0"]["time_series"][0]


def test_file_formats(capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path) -> None:
    _, out, _ = run(capsys, "file", str(speech_wav), str(speech_wav), "-m", "vad", "--format", "jsonl", "--summary")
    lines = [json.loads(x) for x in out.splitlines()]
    assert {x["file"] for x in lines} == {str(speech_wav)}
    assert sum("summary" in x for x in lines) == 2 and all(x["channel"] == "0" for x in lines)
    _, out, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["model"] == "vad" and rows[1]["timestamp"] == "1024"
    target = tmp_path / "labels.txt"
    code, _, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "audacity", "--output", str(target))
    first = target.read_text().splitlines()[0].split("\t")
    assert code == 0 and float(first[0]) == 0.0 and first[2].startswith("vad: ")


def test_missing_file_exits_with_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "file", str(tmp_path / "missing.wav"))
    assert code == 1 and out == "" and "missing.wav" in err


def test_bad_period_exits_with_an_error(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, _, err = run(capsys, "file", str(speech_wav), "--output-period", "100")
    assert code == 1 and "multiple of 64" in err


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0 and "Vad (key 'vad')" in out and "speech, no_speech, silence" in out and "receptive field" in out


def test_demo_runs_on_the_bundled_sample(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0 and "summary:" in out and "vad: speech" in out
