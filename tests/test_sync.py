"""The blocking API, and DeepTone's own example scripts with only the import changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import REPO, SR

from deeptone_async.sync import Deeptone

COMPAT = REPO / "examples" / "deeptone_compat"


def test_blocking_calls(speech_wav: Path, speech: np.ndarray) -> None:
    with Deeptone(license_key="ignored") as engine:
        out = engine.process_file(str(speech_wav), [engine.models.Vad], include_summary=True)
        assert out["summary"]["vad"]["speech_fraction"] > 0.4
        chunk = engine.process_audio_chunk(speech[:SR], [engine.models.Vad])
        assert chunk["results"]["vad"]["result"] == "speech"

        def gen():
            for i in range(0, len(speech), 1024):
                yield speech[i : i + 1024].tobytes()

        results = engine.process_stream(gen(), [engine.models.Vad], 1024)
        items = list(results)
        assert [r["timestamp"] for r in items] == [i * 1024 for i in range(len(items))]
        assert items == out["time_series"]


def test_closing_the_result_generator_stops_the_input(speech: np.ndarray) -> None:
    closed = []

    def endless():
        try:
            while True:
                yield speech[:4096].tobytes()
        finally:
            closed.append(True)

    with Deeptone() as engine:
        results = engine.process_stream(endless(), ["vad"])
        first = next(results)
        results.close()
    assert first["timestamp"] == 0 and closed == [True]


def _run_example(name: str, wav: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(COMPAT / name), str(wav)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_deeptone_stream_example_runs(speech_wav: Path) -> None:
    out = _run_example("real_time_processing.py", speech_wav)
    assert "Detected sample rate: 16000" in out
    results = [line.split("result: ")[1].split()[0] for line in out.splitlines() if line.startswith("Timestamp:")]
    frames = sf.info(str(speech_wav)).frames
    assert len(results) == -(-frames // SR) and set(results) <= {"female", "male", "unknown", "no_speech", "silence"}
    assert {"female", "male"} & set(results)


def test_deeptone_bytes_example_runs(speech_wav: Path) -> None:
    out = _run_example("audio_bytes_processing.py", speech_wav)
    assert "Time series:" in out and "Transitions:" in out and "Summary: male: " in out
    assert "raw results: male: " in out


def test_deeptone_chunk_example_runs(speech_wav: Path) -> None:
    out = _run_example("audio_chunk_processing.py", speech_wav)
    lines = out.splitlines()
    assert "Chunk results:" in lines and "Raw chunk results:" in lines
    assert "Model: speech, result: 'speech' with " in out
    gender = next(line for line in lines if line.startswith("Model: gender, result: "))
    assert gender.split("'")[1] in {"female", "male", "unknown"}
    raw = next(line for line in lines if line.startswith("Model: speech, raw results: "))
    shares = [float(part.split(" with ")[1].split()[0]) for part in raw.split("raw results: ")[1].split(", ")]
    assert len(shares) == 3 and abs(sum(shares) - 1) < 1e-3


def test_analyse_file_example_runs() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "analyse_file.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "vad: speech" in proc.stdout and "channel 0: {'speech_fraction'" in proc.stdout
