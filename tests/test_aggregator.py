import numpy as np

from deeptone_async.aggregator import FrameLog, decide, summarise, transitions
from deeptone_async.spec import ModelSpec

SPEC = ModelSpec(
    name="Toy", key="toy", kind="logmel", labels=("a", "b"), onnx=__file__, receptive_field_ms=64,  # type: ignore[arg-type]
    unknown_threshold=0.6, voice=True,
)


def test_decision_order_silence_then_no_speech_then_unknown() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.55, 0.45], [0.2, 0.8]], np.float32)
    silent = np.array([True, False, False, False])
    speech = np.array([0.9, 0.1, 0.9, 0.9], np.float32)
    labels, conf = decide(SPEC, probs, silent, speech)
    assert [SPEC.output_labels[i] for i in labels] == ["silence", "no_speech", "unknown", "b"]
    np.testing.assert_allclose(conf, [1.0, 0.9, 0.55, 0.8], rtol=1e-6)


def test_summary_fractions_add_up_and_weight_partial_frame() -> None:
    log = FrameLog()
    idx = {lab: i for i, lab in enumerate(SPEC.output_labels)}
    log.append(np.array([idx["a"], idx["a"], idx["b"]]), np.ones(3, np.float32), np.array([1024, 1024, 512]))
    s = summarise(SPEC, log)
    assert set(s) == {f"{lab}_fraction" for lab in SPEC.output_labels}
    assert abs(sum(s.values()) - 1.0) < 1e-9
    assert s["b_fraction"] == 512 / 2560


def test_transitions_merge_neighbours_and_cover_input() -> None:
    log = FrameLog()
    idx = {lab: i for i, lab in enumerate(SPEC.output_labels)}
    labels = [idx[x] for x in ["a", "a", "silence", "b", "b"]]
    log.append(np.array(labels), np.array([0.8, 0.6, 1, 0.9, 0.7], np.float32), np.array([1024] * 4 + [160]))
    tr = transitions(SPEC, log)
    assert [(t["timestamp_start"], t["timestamp_end"], t["result"]) for t in tr] == [
        (0, 128, "a"),
        (128, 192, "silence"),
        (192, 266, "b"),  # 4 * 64 + 10 ms of the partial frame
    ]
    assert tr[0]["confidence"] == 0.7


def test_empty_input_gives_empty_results() -> None:
    assert transitions(SPEC, FrameLog()) == []
    assert set(summarise(SPEC, FrameLog()).values()) == {0.0}


def test_period_takes_the_label_covering_most_audio_then_the_more_confident() -> None:
    from deeptone_async.aggregator import _periods

    idx = {lab: i for i, lab in enumerate(SPEC.output_labels)}
    labels = np.array([[idx["a"], idx["a"], idx["b"], idx["silence"]],   # a covers most
                       [idx["a"], idx["b"], idx["b"], idx["a"]]])         # tie: b more confident
    conf = np.array([[0.6, 0.8, 0.9, 1.0], [0.7, 0.9, 0.95, 0.6]], np.float32)
    weights = np.full((2, 4), 1024)
    probs = np.array([[[0.6, 0.4]] * 3 + [[0.0, 1.0]], [[0.5, 0.5]] * 4], np.float32)
    silent = np.array([[False, False, False, True], [True] * 4])
    best, mean_conf, raw = _periods(SPEC, labels, conf, weights, probs, silent)
    assert [SPEC.output_labels[b] for b in best] == ["a", "b"]
    np.testing.assert_allclose(mean_conf, [0.7, 0.925], rtol=1e-6)
    np.testing.assert_allclose(raw[0], [0.6, 0.4], rtol=1e-6)  # the silent frame's probabilities are left out
    np.testing.assert_allclose(raw[1], [0.5, 0.5], rtol=1e-6)  # all silent: all frames count


def test_summary_fractions_are_rounded_to_four_decimals_and_still_add_up() -> None:
    # thirds: 1/3 rounds to 0.3333 three times, which would add up to 0.9999
    log = FrameLog()
    idx = {lab: i for i, lab in enumerate(SPEC.output_labels)}
    log.append(np.array([idx["a"], idx["b"], idx["silence"]]), np.ones(3, np.float32), np.array([1024, 1024, 1024]))
    s = summarise(SPEC, log)
    assert all(v == round(v, 4) for v in s.values())
    assert sorted(v for v in s.values() if v) == [0.3333, 0.3333, 0.3334]
    assert round(sum(s.values()), 9) == 1.0
    # seven equal parts: every share within one unit of 1/7
    log = FrameLog()
    log.append(np.arange(7) % len(SPEC.output_labels), np.ones(7, np.float32), np.full(7, 1024))
    s = summarise(SPEC, log)
    assert round(sum(s.values()), 9) == 1.0 and all(v == round(v, 4) for v in s.values())
