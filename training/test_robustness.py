"""The robustness command: ``python -m pytest training/test_robustness.py``.

Conditions are deterministic and keep labels true; scoring runs end to end through the engine on
a few synthetic clips (no corpora needed). Skipped without torch (the training code imports it)
and, for reverb, without pyroomacoustics.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")

from training import augment as A  # noqa: E402
from training import robustness as R  # noqa: E402
from training.augment import codecs  # noqa: E402
from training.data import Clip, annotate  # noqa: E402
from training.test_augment import speechlike  # noqa: E402


def clip(cls: str, seed: int, gender: str = "male", label: str | None = None) -> Clip:
    if cls == "speech":
        x = speechlike(3.0, seed, f0=110 if gender == "male" else 210)
    else:
        t = np.arange(48000) / 16000
        x = 0.1 * (np.sin(2 * np.pi * 440 * t) if cls == "music" else np.random.default_rng(seed).standard_normal(48000))
    c = Clip(corpus="fake", file=f"{cls}{seed}.wav", label=label or cls, cls=cls, gender=gender if cls == "speech" else "",
             language="en", speaker=str(seed), split="val", license="",
             audio=(np.clip(x, -1, 1) * 32767).astype(np.int16))
    annotate(c)
    return c


BGS = A.Backgrounds(noise=[clip("other", 50).audio], music=[clip("music", 51).audio])
CONDS = [c for c in R.CONDITIONS if c != "codec" or codecs.codec_available("opus") is None]


def test_degrade_is_deterministic_and_keeps_labels_true() -> None:
    if codecs.codec_available("mulaw") is not None:
        pytest.skip(f"mu-law unavailable: {codecs.codec_available('mulaw')}")
    sp, other = clip("speech", 1), clip("other", 2)
    for cond in [c for c in CONDS if c != "reverb"]:
        a, b = R.degrade(cond, sp, BGS, A.policy_for("speech")), R.degrade(cond, sp, BGS, A.policy_for("speech"))
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.audio, b.audio)
        assert len(a.at16k) == len(sp.audio) and a.audio.dtype == np.float32
        assert a.rate == (8000 if cond == "telephone" else 16000)
    assert R.degrade("music_10dB", other, BGS, A.policy_for("speech")) is None  # music would make it music
    assert R.degrade("music_10dB", other, BGS, A.policy_for("vad")) is not None  # still no speech
    assert R.degrade("noise_0dB", sp, BGS, A.policy_for("speech")).added == "other"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        R.degrade("underwater", sp, BGS, A.policy_for("speech"))


def test_smo_truth_labels_pauses_with_the_background() -> None:
    sp = clip("speech", 3)
    clean = R.smo_truth(sp, R.degrade("clean", sp, BGS, A.policy_for("speech")), 7)  # type: ignore[arg-type]
    music = R.smo_truth(sp, R.degrade("music_10dB", sp, BGS, A.policy_for("speech")), 7)  # type: ignore[arg-type]
    assert set(np.unique(clean)) <= {-1, 0, 2} and (clean == 0).any()
    assert (music == 1).any() and (music[clean == 0] == 0).all() and (clean[(music == 0) & (clean != 0)] == -1).all()


@pytest.mark.parametrize("model", ["speech", "vad", "gender", "arousal"])
def test_evaluate_through_the_engine(model: str) -> None:
    clips = [clip("speech", 4, "male"), clip("speech", 5, "female")]
    if R.KIND[model] in ("smo", "vad"):
        clips += [clip("music", 6), clip("other", 7)]
    ys = {id(c): i % 2 for i, c in enumerate(clips)}
    conds = ["clean", "noise_10dB", "music_0dB"]
    res = R.evaluate(model, clips, ys, BGS, conds, log=lambda s: None)
    assert list(res) == conds
    for r in res.values():
        h = R.headline(model, r)
        assert h and all(0.0 <= v <= 1.0 or np.isnan(v) for v in h.values())
    if model == "speech":
        assert res["clean"]["n_clips"] == 4 and res["music_0dB"]["n_clips"] == 3  # not under the `other` clip
    md = R.to_markdown(model, {"conditions": res, "command": "x", "corpora": [], "manifests": [], "split": "val",
                               "clips": len(clips), "max_clips": 0})
    assert md.count("\n| ") == len(conds) + 1 and "change from clean" in md


def test_summary_collects_every_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    for model, acc in (("speech", 0.95), ("gender", 0.97)):
        (tmp_path / model).mkdir()
        head = {"clean": {"m": acc}, "telephone": {"m": acc - 0.1}}
        (tmp_path / model / "robustness.json").write_text(json.dumps(
            {"model": model, "command": f"cmd {model}", "clips": 3, "seconds": 1.0, "headline": head}))
    md = R.summary(tmp_path)
    assert "## Speech" in md and "## Gender" in md and "0.8500 (-10.0)" in md


def test_evaluate_a_model_folder_as_the_bundled_one() -> None:
    from deeptone_async.registry import MODELS_DIR

    clips = [clip("speech", 4, "male"), clip("speech", 5, "female")]
    a = R.evaluate("gender", clips, {}, BGS, ["clean"], log=lambda s: None)
    b = R.evaluate("gender", clips, {}, BGS, ["clean"], log=lambda s: None, folder=MODELS_DIR / "gender")
    assert R.headline("gender", a["clean"]) == R.headline("gender", b["clean"])
    assert R.engine_for("gender", MODELS_DIR / "gender").models.Gender.onnx == MODELS_DIR / "gender" / "model.onnx"
