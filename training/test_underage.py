"""UnderageSpeaker's classes and crops: ``python -m pytest training/test_underage.py``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")

from .data import Clip, annotate, smo_class, underage_class  # noqa: E402
from .sampler import IGNORE, Sampler, TaskCfg  # noqa: E402


def clip(corpus: str, age: str = "", band: str = "", label: str = "speech", gender: str = "female",
         seconds: float = 3.0, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)
    c = Clip(corpus=corpus, file=f"{corpus}{seed}.wav", label=label, cls=smo_class(label, corpus), gender=gender,
             language="en", speaker=str(seed), split="train", license="", audio=x, age=age, age_band=band)
    annotate(c)
    return c


def test_classes_follow_the_documented_line() -> None:
    assert underage_class(clip("speechocean", "8", "child")) == "child"
    assert underage_class(clip("speechocean", "30", "adult")) == "adult"
    assert underage_class(clip("speechocean", "15", "teen")) == ""  # 13-17: left out of training
    assert underage_class(clip("librispeech")) == "adult"
    assert underage_class(clip("commonvoice", "thirties")) == "adult"
    assert underage_class(clip("commonvoice", "teens")) == ""
    assert underage_class(clip("commonvoice", "")) == ""
    assert underage_class(clip("baved", "16")) == "" and underage_class(clip("baved", "23")) == "adult"
    assert underage_class(clip("emospeech")) == ""  # no ages
    assert underage_class(clip("noise", label="cry")) == ""


def test_nonspeech_corpora_are_other_whatever_the_label() -> None:
    assert smo_class("laughing", "esc50") == "other"
    assert smo_class("cough", "vocalizations") == "other"
    assert smo_class("crying_baby", "esc50") == "other"
    assert smo_class("angry", "emospeech") == "speech"


def test_crops_are_balanced_and_adults_half_from_the_child_corpus() -> None:
    clips = ([clip("speechocean", "9", "child", seed=i) for i in range(4)]
             + [clip("speechocean", "31", "adult", seed=10 + i) for i in range(2)]
             + [clip("librispeech", seed=20 + i) for i in range(8)]
             + [clip("speechocean", "15", "teen", seed=30)])
    s = Sampler(clips, TaskCfg("underage", 8, 16, hangover=2, augment=False, channel=False), seed=1)
    assert s.by_gender["child"] and all(c.age_band == "child" for c in s.by_gender["child"])
    assert all(c.age_band != "teen" for c in s.by_gender["adult"])
    w = s.w_gender["adult"]
    inside = np.array([c.corpus == "speechocean" for c in s.by_gender["adult"]])
    assert w[inside].sum() == pytest.approx(0.5)  # all fixture clips are women: the women's 0.3 needs men too
    f, y = s.batch(64)
    assert f.shape == (64, 4 * 24, 64) and y.shape == (64, 16)
    lab = y[y != IGNORE]
    assert set(np.unique(lab)) <= {0, 1} and 0.3 < np.mean(lab == 0) < 0.7
