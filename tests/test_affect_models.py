"""The bundled affect models (Arousal, Emotions): contract, silence on non-speech, labels on speech."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
from conftest import DATA, REPO, SR, espeak, noise

from deeptone_async import Deeptone
from deeptone_async.features import N_MELS, SILENCE_FLOOR, SUBFRAMES

MODELS = {
    "arousal": ("Arousal", ["high", "neutral", "low"]),
    "emotions": ("Emotions", ["happy", "irritated", "neutral", "tired"]),
}
FOLDERS = REPO / "deeptone_async" / "models"
NOT_AFFECT = {"no_speech", "silence"}


def chord(seconds: float, seed: int = 0) -> np.ndarray:
    """Music-like: a sequence of plucked triads with harmonics, decaying notes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * SR)) / SR
    out = []
    for _ in range(int(seconds / 0.5)):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        note = np.zeros_like(t)
        for ratio in (1.0, 1.26, 1.5):  # major triad
            for h in range(1, 6):  # harmonics
                note += np.sin(2 * np.pi * root * ratio * h * t) / h
        out.append(note * np.exp(-4 * t))
    x = np.concatenate(out)
    return (0.25 * x / np.abs(x).max()).astype(np.float32)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("folder", sorted(MODELS))
def test_spec_and_onnx_contract(folder: str) -> None:
    name, labels = MODELS[folder]
    spec = json.loads((FOLDERS / folder / "spec.json").read_text())
    assert spec["name"] == name and spec["key"] == folder and spec["labels"] == labels
    assert spec["voice"] is True and spec["unknown_threshold"] is None and spec["kind"] == "logmel"
    assert spec["context_frames"] == 32 and spec["receptive_field_ms"] == 2112
    onnx = FOLDERS / folder / "model.onnx"
    assert onnx.stat().st_size <= 5_000_000
    assert (FOLDERS / folder / "card.md").is_file()
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ctx, n = spec["context_frames"], 40
    x = (rng.standard_normal((1, SUBFRAMES * (ctx + n), N_MELS)) * 3 - 8).astype(np.float32)
    whole = sess.run(["probs"], {"features": x})[0]
    assert whole.shape == (1, n, len(labels))
    np.testing.assert_allclose(whole.sum(-1), 1.0, atol=1e-5)
    # causal and valid: frame j depends only on rows 4*j .. 4*(j+ctx+1)-1
    part = sess.run(["probs"], {"features": x[:, : SUBFRAMES * (ctx + 10)]})[0]
    np.testing.assert_allclose(part, whole[:, :10], atol=1e-5)
    hist = np.full((1, SUBFRAMES * ctx, N_MELS), SILENCE_FLOOR, np.float32)
    one = sess.run(["probs"], {"features": np.concatenate([hist, x[:, : SUBFRAMES]], axis=1)})[0]
    assert one.shape == (1, 1, len(labels))


def test_engine_lists_the_affect_models(engine: Deeptone) -> None:
    assert engine.models.Arousal.output_labels == ("high", "neutral", "low", "no_speech", "silence")
    assert engine.models.Emotions.output_labels == ("happy", "irritated", "neutral", "tired", "no_speech", "silence")


def pluck(path: Path) -> np.ndarray:
    """A plucked-string arpeggio made by sox (skips without sox)."""
    if not shutil.which("sox"):
        pytest.skip("sox is needed for the plucked-string signal")
    notes = " : ".join(f"synth 0.5 pluck {n}" for n in ("C4", "E4", "G4", "C5"))
    cmd = ["sox", "-R", "-n", "-r", str(SR), "-c", "1", "-b", "16", str(path), *notes.split(), "repeat", "2"]
    subprocess.run(cmd, check=True, capture_output=True)
    x, _ = sf.read(path, dtype="float32")
    return x


@pytest.mark.parametrize("kind", ["white_noise", "quiet_noise", "chord", "pluck"])
async def test_affect_models_do_not_fire_on_non_speech(engine: Deeptone, kind: str, tmp_path: Path) -> None:
    if kind == "white_noise":
        audio = noise(6.0, 0.1, seed=3)
    elif kind == "quiet_noise":
        audio = noise(6.0, 0.01, seed=4)
    elif kind == "chord":
        audio = chord(6.0)
    else:
        audio = pluck(tmp_path / "pluck.wav")
    out = await engine.process_audio_bytes(_int16(audio), ["arousal", "emotions"], include_summary=True)
    for key in ("arousal", "emotions"):
        seen = {r["results"][key]["result"] for r in out["time_series"]}
        assert seen <= NOT_AFFECT, (kind, key, seen)
        summary = out["summary"][key]
        # at most one 64 ms frame in 6 s: the Vad (Silero v6) hears speech (p 0.65) in one
        # frame of the synthetic chord, where v5 heard none
        assert summary["no_speech_fraction"] + summary["silence_fraction"] >= 0.985


async def test_affect_models_label_speech(engine: Deeptone, tmp_path: Path) -> None:
    wav = espeak("I can't believe we finally won the championship after all these years of trying!", tmp_path / "a.wav")
    out = await engine.process_file(wav, [engine.models.Arousal, engine.models.Emotions], include_summary=True)
    for key, (_, labels) in (("arousal", MODELS["arousal"]), ("emotions", MODELS["emotions"])):
        summary = out["summary"][key]
        assert sum(summary.values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(summary[f"{lab}_fraction"] for lab in labels) > 0.3, summary
        seen = {r["results"][key]["result"] for r in out["time_series"]}
        assert seen <= set(labels) | NOT_AFFECT


def test_mapping_covers_the_corpora() -> None:
    """Every emotion in the shared corpora is either mapped or deliberately left out."""
    mapping = pytest.importorskip("training.affect")
    left_out = {"arousal": {"disgust"}, "emotions": {"disgust", "fear", "fearful", "surprised"}}
    manifests = [DATA / c / "manifest.csv" for c in ("ravdess", "emodb")]
    if not all(m.is_file() for m in manifests):
        pytest.skip("needs the shared corpora (DEEPTONE_DATA or ../shared/data)")
    labels = set()
    for m in manifests:
        with open(m, newline="", encoding="utf-8") as f:
            labels |= {r["label"] for r in csv.DictReader(f)}
    for model, table in (("arousal", mapping.AROUSAL_MAP), ("emotions", mapping.EMOTIONS_MAP)):
        assert labels - set(table) == left_out[model]
        assert set(table.values()) == set(MODELS[model][1])


def _recipe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("arousal_recipe", REPO / "examples" / "arousal_recipe.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arousal_recipe_shares() -> None:
    share = _recipe().speech_share
    assert share({"no_speech_fraction": 1.0, "silence_fraction": 0.0, "high_fraction": 0.0}, "high") is None
    assert share({"no_speech_fraction": 0.25, "silence_fraction": 0.75}, "high") is None
    f = {"high_fraction": 0.2, "neutral_fraction": 0.1, "low_fraction": 0.2, "no_speech_fraction": 0.4,
         "silence_fraction": 0.1}
    assert sum(share(f, k) for k in ("high", "neutral", "low")) == pytest.approx(1.0)
    assert share(f, "high") == pytest.approx(0.4)


def test_arousal_recipe_runs_on_the_sample() -> None:
    import sys

    out = subprocess.run([sys.executable, str(REPO / "examples" / "arousal_recipe.py")], capture_output=True,
                         text=True, check=True, cwd=REPO, timeout=120).stdout
    assert "high arousal:" in out and "low arousal:" in out, out
