"""Card pieces that do not need a trained model: ``python -m pytest training/test_cards.py``."""

from __future__ import annotations

from .cards import tried_entry, tried_text


def _ev(acc: float) -> dict:
    return {"command": "python -m training.evaluate --model gender", "clips": {"accuracy": acc, "balanced_accuracy": acc},
            "clips_by_corpus": {"librispeech": {"balanced_accuracy": acc}}}


def _rob(clean: float, tel: float) -> dict:
    return {"command": "python -m training.robustness --model gender",
            "headline": {"clean": {"clip accuracy": clean}, "telephone": {"clip accuracy": tel}}}


def test_tried_section_shows_candidate_next_to_shipped() -> None:
    info = {"train_seconds": 600, "train_steps": 1000, "lr": 0.001, "corpora": ["librispeech"], "p_chain": 0.6,
            "chain_copies": 1, "resumed_from": "deeptone_async/models/gender/model.onnx", "previous_runs": [{}]}
    e = tried_entry(info, _ev(0.96), _rob(0.96, 0.94), _ev(0.97), _rob(0.97, 0.91), "Chain retraining.")
    text = tried_text([e])
    assert "**Chain retraining.** 1000 steps / 10.0 min" in text
    assert "accuracy 0.9600 (shipped 0.9700)" in text and "librispeech 0.960 (0.970)" in text
    assert "| 0.9600 / 0.9700 | 0.9400 / 0.9100 |" in text
    assert tried_text([]) == ""
