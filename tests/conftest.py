"""Shared fixtures: one engine per session, signals generated in code, espeak-ng speech."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deeptone_async import Deeptone

SR = 16_000
REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEEPTONE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def engine() -> Deeptone:
    return Deeptone()


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, amp: float = 0.1, seed: int = 0, sr: int = SR) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def espeak(text: str, path: Path, voice: str = "en+f3") -> Path:
    """Speak ``text`` into a 16 kHz mono 16-bit WAV (skips the test without espeak-ng/sox)."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed for speech fixtures (apt-get install espeak-ng sox)")
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    # -R: repeatable (sox seeds its dither randomly otherwise, so every run had different
    # fixtures and a tolerance could pass or fail by chance)
    subprocess.run(["sox", "-R", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", str(path)], input=wav, check=True)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 5 s of synthetic speech with a 1.5 s silent gap in the middle."""
    d = tmp_path_factory.mktemp("speech")
    a = espeak("The quick brown fox jumps over the lazy dog.", d / "a.wav")
    b = espeak("Voice analytics should find speech in this sentence.", d / "b.wav", voice="en+m3")
    x, _ = sf.read(a, dtype="int16")
    y, _ = sf.read(b, dtype="int16")
    out = d / "speech.wav"
    sf.write(out, np.concatenate([x, np.zeros(int(1.5 * SR), np.int16), y]), SR, subtype="PCM_16")
    return out


@pytest.fixture(scope="session")
def speech(speech_wav: Path) -> np.ndarray:
    data, _ = sf.read(speech_wav, dtype="int16")
    return data


#: ONNX Runtime's convolution kernels round differently for different input lengths (up to
#: about 1.3e-6 on the bundled log-mel models; the Vad is exact), so the same audio analysed
#: in blocks of another size can move a 4-decimal value by one rounding step.
ROUNDING_STEP = 1e-4


def assert_same_results(got: list[dict], want: list[dict], exact: tuple[str, ...] = ("vad",)) -> None:
    """Equal timestamps and labels; confidences and raw values equal for the ``exact`` models
    and within one 4-decimal rounding step for the others."""
    assert [r["timestamp"] for r in got] == [r["timestamp"] for r in want]
    for a, b in zip(got, want):
        assert {k: v["result"] for k, v in a["results"].items()} == {k: v["result"] for k, v in b["results"].items()}, (a, b)
        step = {k: 0.0 if k in exact else ROUNDING_STEP + 1e-9 for k in a["results"]}
        for k in a["results"]:
            assert abs(a["results"][k]["confidence"] - b["results"][k]["confidence"]) <= step[k], (k, a, b)
        assert set(a.get("raw", {})) == set(b.get("raw", {}))
        for k, raw in a.get("raw", {}).items():
            assert raw.keys() == b["raw"][k].keys()
            assert all(abs(raw[lab] - b["raw"][k][lab]) <= step[k] for lab in raw), (k, a, b)
