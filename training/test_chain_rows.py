"""Chain-augmented rows in the logmel trainers' sampler: ``python -m pytest training/test_chain_rows.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deeptone_async.features import HOP_SAMPLES, N_MELS

from . import chain_rows as CR
from .augment import ChainConfig
from .data import annotate
from .sampler import IGNORE, Sampler, TaskCfg
from .test_augment import fake_clip

# no codecs, no pyroomacoustics: the test runs wherever the package does
CFG = ChainConfig(room_model="diffuse", p_channel=0.0, p_background=1.0)


def _clips() -> list:
    clips = [fake_clip("speech", "train", f"s{i}", seed=i) for i in range(6)]
    for i, c in enumerate(clips):
        c.gender = ("male", "female")[i % 2]
    clips += [fake_clip("other", "train", seed=20), fake_clip("music", "train", seed=21)]
    for c in clips:
        annotate(c)
    return clips


def test_rows_are_cached_aligned_and_seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CR, "CACHE", tmp_path)
    clips = _clips()
    speech = [c for c in clips if c.cls == "speech"]
    a = CR.chain_rows(speech, "gender", copies=2, workers=1, config=CFG, backgrounds=clips, log=lambda s: None)
    assert len(list(tmp_path.glob("chainrows-gender-*.npz"))) == 1
    b = CR.chain_rows(speech, "gender", copies=2, workers=1, config=CFG, backgrounds=clips, log=lambda s: None)
    for c in speech:
        assert len(a[id(c)]) == 2
        for (ra, added), (rb, _) in zip(a[id(c)], b[id(c)]):
            assert ra.shape == (len(c.audio) // HOP_SAMPLES, N_MELS) and np.array_equal(ra, rb)
            assert added in ("", "speech", "music", "other")
    assert not np.array_equal(a[id(speech[0])][0][0], a[id(speech[0])][1][0])  # two different draws


def test_sampler_crops_chain_rows_with_clean_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CR, "CACHE", tmp_path)
    clips = _clips()
    speech = [c for c in clips if c.cls == "speech"]
    rows = CR.chain_rows(speech, "gender", workers=1, config=CFG, backgrounds=clips, log=lambda s: None)
    cfg = TaskCfg("gender", 8, 8, hangover=2, fast_frac=1.0, p_chain=1.0)
    s = Sampler(clips, cfg, seed=0, chain_rows=rows)
    f, y = s.batch(16)
    assert f.shape == (16, 4 * 16, N_MELS) and np.isfinite(f).all()
    assert set(np.unique(y)) <= {IGNORE, 0, 1} and (y != IGNORE).any()
    # no chain rows: the sampler draws exactly what it drew before (old recipes reproduce)
    plain = dataclasses.replace(cfg, p_chain=0.0)
    f1, y1 = Sampler(clips, plain, seed=3, chain_rows=rows).batch(4)
    f2, y2 = Sampler(clips, plain, seed=3).batch(4)
    assert np.array_equal(f1, f2) and np.array_equal(y1, y2)
