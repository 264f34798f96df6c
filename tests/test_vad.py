"""The bundled Vad (Silero VAD v6 rebuilt for whole blocks) against the published Silero graph."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, noise, tone

from deeptone_async import Deeptone, ModelError, ModelSpec
from deeptone_async.inference import SileroSeqRunner, make_runner

# the published Silero VAD v6 graph (the bundled Vad's source), found, not imported: importing
# silero_vad imports torch
_SILERO = importlib.util.find_spec("silero_vad")
if _SILERO is None or not _SILERO.submodule_search_locations:
    pytest.skip("the published Silero VAD v6 graph comes from silero-vad 6.x", allow_module_level=True)
PUBLISHED = Path(next(iter(_SILERO.submodule_search_locations))) / "data" / "silero_vad.onnx"


@pytest.fixture(scope="module")
def both() -> Deeptone:
    engine = Deeptone()
    engine.register_model(
        ModelSpec(name="VadPublished", key="vad-published", kind="silero", labels=("speech", "no_speech"), onnx=PUBLISHED,
                  receptive_field_ms=64, speech_label="speech")
    )
    return engine


def test_bundled_vad_runs_the_sequence_graph() -> None:
    runner = make_runner(Deeptone().models.Vad)
    assert isinstance(runner, SileroSeqRunner)
    state = runner.new_state()
    assert runner.run(np.zeros((1, 0, 1024), np.float32), None, [state]).shape == (1, 0, 2)
    # three streams in one call, each with its own state: the two silent ones agree and are not speech
    frames = np.zeros((3, 4, 1024), np.float32)
    frames[0] = (noise(4 * 1024 / SR, 0.1)).reshape(4, 1024)
    probs = runner.run(frames, None, [runner.new_state() for _ in range(3)])
    assert probs.shape == (3, 4, 2) and np.allclose(probs.sum(axis=2), 1.0)
    np.testing.assert_allclose(probs[1], probs[2])
    assert (probs[1:, :, 0] < 0.5).all()


@pytest.fixture
def mixed(speech: np.ndarray) -> np.ndarray:
    """Speech, then noise, a tone and silence, then speech: Vad's answer changes along the way."""
    other = np.concatenate([noise(1.5, 0.05), tone(1.0), np.zeros(SR // 2)])
    return np.concatenate([speech, (other * 32767).astype(np.int16), speech])


def test_bundled_vad_equals_the_published_graph_frame_by_frame(both: Deeptone, mixed: np.ndarray) -> None:
    # the runners' own probabilities (not the rounded raw values): blocks of different sizes,
    # state carried from block to block
    n = len(mixed) // 1024
    frames = (mixed[: n * 1024] / 32768.0).astype(np.float32).reshape(1, n, 1024)
    published, bundled = make_runner(both.models.VadPublished), make_runner(both.models.Vad)
    sp, sb = published.new_state(), bundled.new_state()
    theirs = np.concatenate([published.run(frames[:, i : i + 7], None, [sp]) for i in range(0, n, 7)], axis=1)
    ours = np.concatenate([bundled.run(frames[:, i : i + 5], None, [sb]) for i in range(0, n, 5)], axis=1)
    assert ours.shape == theirs.shape == (1, n, 2)
    assert np.abs(ours - theirs).max() < 1e-5
    assert ours[0, :, 0].max() > 0.9 and ours[0, :, 0].min() < 0.1  # both speech and non-speech were seen


async def test_the_engine_gives_the_same_answers_with_either_graph(both: Deeptone, mixed: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    chunks = np.split(mixed, np.sort(rng.choice(len(mixed), size=25, replace=False)))
    got = [r async for r in both.process_stream(chunks, ["vad", "vad-published"], 64, include_raw_values=True)]
    ours = np.array([r["raw"]["vad"]["speech"] for r in got if "raw" in r and "vad" in r["raw"]])
    theirs = np.array([r["raw"]["vad-published"]["speech"] for r in got if "raw" in r and "vad" in r["raw"]])
    assert len(ours) > 50
    # raw values are rounded to 4 decimals, so a float-rounding difference between the graphs
    # (which depends on the CPU's kernels) can show as one step of 1e-4, never more
    assert np.abs(ours - theirs).max() <= 1e-4 + 1e-9
    assert [r["results"]["vad"]["result"] for r in got] == [r["results"]["vad-published"]["result"] for r in got]


def test_a_graph_of_the_wrong_kind_is_refused() -> None:
    spec = ModelSpec(name="Wrong", key="wrong", kind="silero_seq", labels=("speech", "no_speech"), onnx=PUBLISHED,
                     receptive_field_ms=64, speech_label="speech")
    with pytest.raises(ModelError, match="windows, state"):
        make_runner(spec)
