"""The robustness section of the model cards: ``python -m pytest training/test_robustness_card.py``."""

from __future__ import annotations

import json
from pathlib import Path

from .robustness_card import PRIMARY, misses, robustness_section


def _res(clean: float, tel: float, noise10: float) -> dict:
    heads = {"clean": {"clip accuracy": clean, "clip balanced accuracy": clean},
             "telephone": {"clip accuracy": tel, "clip balanced accuracy": tel},
             "noise_10dB": {"clip accuracy": noise10, "clip balanced accuracy": noise10}}
    return {"command": "python -m training.robustness --model gender", "corpora": ["librispeech"], "manifests": [],
            "split": "val", "max_clips": 0, "clips": 10, "seconds": 1.0, "volume_threshold": 0.001,
            "headline": heads, "conditions": {c: {"n_clips": 10} for c in heads}}


def test_misses_name_the_gap() -> None:
    m = misses("gender", _res(0.99, 0.95, 0.97))
    assert any(s.startswith("telephone clip accuracy 0.9500 is 4.0 points") and "missed by 1.0" in s for s in m)
    assert any(s.startswith("telephone clip accuracy 0.9500 < 0.96") for s in m)
    assert not any("noise_10dB" in s for s in m)
    assert misses("gender", _res(0.99, 0.97, 0.96)) == []


def test_section_has_every_condition_and_the_command(tmp_path: Path) -> None:
    (tmp_path / "robustness.json").write_text(json.dumps(_res(0.99, 0.95, 0.97)))
    text = robustness_section("gender", tmp_path)
    assert "`python -m training.robustness --model gender`" in text
    for cond, change in (("clean", "-"), ("telephone", "-4.0, -4.0"), ("noise_10dB", "-2.0, -2.0")):
        assert any(line.startswith(f"| {cond} | 10 |") and line.endswith(f"| {change} |") for line in text.splitlines())
    assert "**Missed**" in text


def test_every_model_has_a_committed_section() -> None:
    for model in PRIMARY:
        assert "Not measured" not in robustness_section(model), model


def test_a_drop_of_exactly_the_limit_is_met() -> None:
    assert not [m for m in misses("gender", _res(0.975, 0.945, 0.97)) if "points under clean" in m]
