"""Stream graphs (issue 21): carried convolution states give the context path's results.

A bundled model's ``model_stream.onnx`` is written from its ``model.onnx`` by
``python -m training.stream_graph``; these tests fail when it is stale (the model was
re-exported and the command not rerun) or when the carried states drift from what
recomputing the context gives.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_results

from deeptone_async import Deeptone
from deeptone_async.conv_state import ConvStateRunner, StreamGraph
from deeptone_async.features import N_MELS, SILENCE_FLOOR, SUBFRAMES
from deeptone_async.inference import LogMelRunner, load_session, make_runner
from deeptone_async.registry import bundled_specs
from deeptone_async.spec import ModelSpec

STREAMED = [s for s in bundled_specs() if s.onnx_stream is not None]


def _rows(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    return (rng.standard_normal((batch, SUBFRAMES * frames, N_MELS)) * 3 + SILENCE_FLOOR / 2).astype(np.float32)


def test_the_bundled_log_mel_models_have_stream_graphs() -> None:
    assert {s.key for s in STREAMED} >= {"speech", "gender", "underage-speaker", "audio-event", "speaker-map", "arousal", "emotions"}


@pytest.mark.parametrize("spec", STREAMED, ids=[s.key for s in STREAMED])
def test_the_stream_graph_in_random_pieces_equals_model_onnx_on_the_whole_input(spec: ModelSpec) -> None:
    runner = make_runner(spec)
    assert isinstance(runner, ConvStateRunner), (
        f"{spec.onnx_stream} is stale: rerun python -m training.stream_graph --folder {spec.onnx.parent}"
    )
    rng = np.random.default_rng(1)
    n = 200
    rows = _rows(rng, 2, n)
    whole = load_session(spec.onnx)
    hist = np.full((2, SUBFRAMES * spec.context_frames, N_MELS), SILENCE_FLOOR, np.float32)
    (want,) = whole.run(None, {whole.get_inputs()[0].name: np.concatenate([hist, rows], axis=1)})
    states = [runner.new_state(), runner.new_state()]  # two streams batched in each call
    got, pos = [], 0
    while pos < n:
        k = min(int(rng.integers(1, 33)), n - pos)
        frames = np.zeros((2, k, 1024), np.float32)
        got.append(runner.run(frames, rows[:, SUBFRAMES * pos : SUBFRAMES * (pos + k)], states))
        pos += k
    np.testing.assert_allclose(np.concatenate(got, axis=1), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("spec", STREAMED[:2], ids=[s.key for s in STREAMED[:2]])
def test_streams_batched_together_keep_their_own_states(spec: ModelSpec) -> None:
    """One stream alone and the same stream batched with another give the same rows."""
    runner = make_runner(spec)
    rng = np.random.default_rng(2)
    a, b = _rows(rng, 1, 60), _rows(rng, 1, 60)
    alone, paired = [runner.new_state()], [runner.new_state(), runner.new_state()]
    for lo in range(0, 60, 20):
        sl = slice(SUBFRAMES * lo, SUBFRAMES * (lo + 20))
        one = runner.run(np.zeros((1, 20, 1024), np.float32), a[:, sl], alone)
        two = runner.run(np.zeros((2, 20, 1024), np.float32), np.concatenate([a[:, sl], b[:, sl]]), paired)
        np.testing.assert_allclose(two[:1], one, atol=1e-5, rtol=0)
        assert not np.allclose(two[1], one[0], atol=1e-3)


def test_a_stale_stream_graph_is_not_used(tmp_path: Path) -> None:
    spec = next(s for s in STREAMED if s.key == "gender")
    folder = tmp_path / "gender"
    shutil.copytree(spec.onnx.parent, folder)
    other = next(s for s in STREAMED if s.key == "underage-speaker")  # a "retrained" model.onnx
    shutil.copyfile(other.onnx, folder / "model.onnx")
    stale = ModelSpec.from_folder(folder)
    assert stale.onnx_stream == folder / "model_stream.onnx"
    with pytest.warns(UserWarning, match="training.stream_graph"):
        runner = make_runner(stale)
    assert isinstance(runner, LogMelRunner)


def test_initial_states_are_the_silence_history() -> None:
    """A stream graph's start equals having seen ``context_frames`` frames of silence rows."""
    spec = next(s for s in STREAMED if s.key == "gender")
    assert spec.onnx_stream is not None
    graph = StreamGraph(load_session(spec.onnx_stream), spec.context_frames)
    zero = tuple(np.zeros_like(a) for a in graph.initial)
    silence = np.full((1, SUBFRAMES * 2 * spec.context_frames, N_MELS), SILENCE_FLOOR, np.float32)
    _, (after,) = graph.run(silence, [zero])
    for x, y in zip(graph.initial, after):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    assert any(np.abs(a).max() > 0 for a in graph.initial)


def test_onnx_stream_is_only_for_log_mel_models() -> None:
    vad = next(s for s in bundled_specs() if s.kind == "silero_seq")
    with pytest.raises(Exception, match="onnx_stream"):
        dataclasses.replace(vad, onnx_stream=vad.onnx)


async def test_an_engine_on_stream_graphs_gives_the_context_paths_results(engine: Deeptone, speech: np.ndarray) -> None:
    """What a user sees: a live stream (20 ms chunks, period 1024 ms) analysed with every
    bundled model gives the results an engine without stream graphs gives (labels equal,
    values within one 4-decimal rounding step)."""
    ctx = Deeptone(load_bundled=False)
    for s in bundled_specs():
        ctx.register_model(dataclasses.replace(s, onnx_stream=None))
    models = [s.key for s in bundled_specs()]
    data = speech.astype("<i2").tobytes()
    chunks = [data[i : i + 640] for i in range(0, len(data), 640)]
    kw = {"output_period": 1024, "include_raw_values": True}
    got = [r async for r in engine.process_stream(chunks, models, **kw)]
    want = [r async for r in ctx.process_stream(chunks, models, **kw)]
    assert len(got) > 3
    assert_same_results(got, want)
