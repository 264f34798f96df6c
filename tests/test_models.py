"""Registering one's own ONNX models: voice models, unknown, context and chunking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SR, noise
from onnx_models import causal_conv_model, constant_model

from deeptone_async import Deeptone, ModelError, ModelSpec


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Deeptone:
    d = tmp_path_factory.mktemp("models")
    engine = Deeptone()
    engine.register_model(
        ModelSpec(
            name="Pitch", key="pitch", kind="logmel", labels=("high", "low"), onnx=constant_model(d / "c.onnx", [0.8, 0.2]),
            receptive_field_ms=64, voice=True, unknown_threshold=0.6,
        )
    )
    engine.register_model(
        ModelSpec(
            name="Unsure", key="unsure", kind="logmel", labels=("x", "y"), onnx=constant_model(d / "u.onnx", [0.55, 0.45]),
            receptive_field_ms=64, voice=True, unknown_threshold=0.6,
        )
    )
    engine.register_model(
        ModelSpec(
            name="Context", key="context", kind="logmel", labels=("p", "q"), onnx=causal_conv_model(d / "k.onnx", 5),
            receptive_field_ms=6 * 64, context_frames=5,
        )
    )
    return engine


def test_registered_models_are_listed(custom: Deeptone) -> None:
    assert {"Vad", "Pitch", "Unsure", "Context"} <= set(custom.get_available_models())
    assert custom.models.Pitch.key == "pitch"
    assert custom.models.Pitch.output_labels == ("high", "low", "unknown", "no_speech", "silence")


def test_duplicate_and_broken_models_are_refused(custom: Deeptone, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="already registered"):
        custom.register_model(ModelSpec(name="Vad", key="vad2", kind="silero", labels=("a", "b"), onnx=tmp_path, receptive_field_ms=64))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="junk.onnx"):
        custom.register_model(ModelSpec(name="Junk", key="junk", kind="logmel", labels=("a", "b"), onnx=junk, receptive_field_ms=64))
    with pytest.raises(ModelError, match="added by the engine"):
        ModelSpec(name="X", key="x", kind="logmel", labels=("a", "silence"), onnx=junk, receptive_field_ms=64, voice=True)


async def test_voice_model_says_no_speech_where_the_detector_hears_none(custom: Deeptone, speech: np.ndarray) -> None:
    audio = np.concatenate([speech[: SR * 2], (noise(2.0, 0.05) * 32767).astype(np.int16), np.zeros(SR, np.int16)])
    out = await custom.process_audio_bytes(audio, ["pitch", "unsure", "vad"], include_raw_values=True, include_summary=True)
    pitch = [r["results"]["pitch"]["result"] for r in out["time_series"]]
    assert pitch[:2] == ["high", "high"] and pitch[2:4] == ["no_speech", "no_speech"] and pitch[4] == "silence"
    unsure = [r["results"]["unsure"]["result"] for r in out["time_series"]]
    assert unsure[:2] == ["unknown", "unknown"]
    assert out["time_series"][0]["raw"]["pitch"] == {"high": 0.8, "low": 0.2}
    # the detector's own result is only reported when asked for
    assert set(out["time_series"][0]["results"]) == {"pitch", "unsure", "vad"}
    only = await custom.process_audio_bytes(audio, ["pitch"])
    assert set(only["time_series"][0]["results"]) == {"pitch"}


async def test_context_model_gives_the_same_results_however_the_stream_is_chunked(custom: Deeptone, speech: np.ndarray) -> None:
    whole = await custom.process_audio_bytes(speech, ["context"], output_period=64, include_raw_values=True)
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.choice(len(speech), size=40, replace=False))
    chunks = np.split(speech, cuts)
    streamed = [r async for r in custom.process_stream(chunks, ["context"], 64, include_raw_values=True)]
    assert len(streamed) == len(whole["time_series"])
    for a, b in zip(streamed, whole["time_series"]):
        assert a["results"] == b["results"]
        for lab in ("p", "q"):
            assert abs(a["raw"]["context"][lab] - b["raw"]["context"][lab]) <= 2e-4
    raws = {r["raw"]["context"]["p"] for r in streamed}
    assert len(raws) > 10  # the model really responds to the audio
