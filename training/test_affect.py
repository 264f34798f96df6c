"""The affect training's recipe check, calibration and options (``training.affect``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")

import torch  # noqa: E402

from .affect import (  # noqa: E402
    AffectNet,
    PriorBias,
    apply_bias,
    clip_confusion,
    fit_prior_bias,
    init_from,
    speaker_folds,
    uar_of,
)
from .affect_pretrain import same_speakers  # noqa: E402
from .data import Clip  # noqa: E402


def _clip(corpus: str, speaker: str) -> Clip:
    return Clip(corpus, f"{speaker}.opus", "angry", "speech", "female", "en", speaker, "train", "-",
                np.zeros(1, np.int16))


def test_speaker_folds_keep_speakers_whole_and_spread_each_corpus() -> None:
    clips = [_clip("a", f"{i:02d}") for i in range(20) for _ in range(3)] + \
        [_clip("b", f"{i:02d}") for i in range(8) for _ in range(2)]
    folds = speaker_folds(clips, 4, seed=0)
    assert set(folds) == {(c.corpus, c.speaker) for c in clips}  # one fold per speaker
    for corpus, n in (("a", 20), ("b", 8)):
        sizes = np.bincount([f for (c, _), f in folds.items() if c == corpus], minlength=4)
        assert sizes.tolist() == [n // 4] * 4
    assert speaker_folds(clips, 4, seed=0) == folds
    assert speaker_folds(clips, 4, seed=1) != folds


def _biased_clips(rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """3 classes; the model under-rates class 2: its clips look like class 1 plus a little."""
    clips = []
    for y in range(3):
        for _ in range(40):
            p = np.full((10, 3), 0.1)
            p[:, 0 if y == 0 else 1] += 0.5
            if y == 2:
                p[:, 2] += 0.3 + 0.1 * rng.random()
            clips.append((y, p / p.sum(-1, keepdims=True)))
    return clips


def test_prior_bias_recovers_an_under_predicted_class() -> None:
    clips = _biased_clips(np.random.default_rng(0))
    before = uar_of(clip_confusion(clips, 3))
    bias = fit_prior_bias(clips, 3)
    after = uar_of(clip_confusion(clips, 3, bias))
    assert before == pytest.approx(2 / 3)  # class 2 is always called 1
    assert after == 1.0
    assert bias[0] == 0.0 and bias[2] > bias[1]


def test_prior_bias_is_zero_when_nothing_is_gained() -> None:
    clips = [(y, np.eye(3)[[y] * 5] * 0.8 + 0.2 / 3) for y in range(3) for _ in range(5)]
    assert fit_prior_bias(clips, 3).tolist() == [0.0, 0.0, 0.0]


def test_prior_bias_module_reweights_like_the_fit() -> None:
    torch.manual_seed(0)
    net = AffectNet(4, channels=8).eval()
    bias = [0.0, -0.5, 0.3, 1.0]
    wrapped = PriorBias(net, bias).eval()
    x = torch.randn(2, 4 * (net.context_frames + 5), 64)
    with torch.no_grad():
        p, q = net(x).numpy(), wrapped(x).numpy()
    assert q.shape == p.shape and wrapped.context_frames == net.context_frames
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(q, apply_bias(p, np.array(bias)), atol=1e-6)


def test_mean_normalisation_widens_the_context_and_stays_causal_and_valid() -> None:
    torch.manual_seed(0)
    plain, cmn = AffectNet(3, channels=8).eval(), AffectNet(3, channels=8, cmn_frames=2).eval()
    assert cmn.context_frames == plain.context_frames + 2
    rows = torch.randn(1, 4 * (cmn.context_frames + 5), 64)
    out = cmn.logits(rows)
    assert out.shape == (1, 5, 3)
    # output frame j sees exactly rows 4j .. 4(j + context + 1) - 1
    for j in range(5):
        alone = cmn.logits(rows[:, 4 * j : 4 * (j + cmn.context_frames + 1)])
        torch.testing.assert_close(alone[:, 0], out[:, j])
    # a constant offset on every band (a louder channel) is removed before the network
    torch.testing.assert_close(cmn.logits(rows + 3.0), out, atol=1e-4, rtol=0)


def test_speaker_adversarial_head_reverses_the_gradient_into_the_shared_layers() -> None:
    rows = torch.randn(2, 4 * 40, 64)
    target = torch.tensor([[1] * 8, [2] * 8])  # 40 frames - 32 of context
    grads = []
    for reverse in (False, True):
        torch.manual_seed(0)
        net = AffectNet(3, channels=8, n_aux=4, reverse_aux=reverse).train()
        torch.manual_seed(1)  # the same dropout masks in both passes
        _, aux = net.logits_both(rows)
        torch.nn.functional.cross_entropy(aux.reshape(-1, 4), target.reshape(-1)).backward()
        grads.append((net.patch.weight.grad.clone(), net.aux[0].weight.grad.clone()))
    (shared, head), (shared_rev, head_rev) = grads
    torch.testing.assert_close(shared_rev, -shared)  # the trunk is pushed away from the speaker
    torch.testing.assert_close(head_rev, head)  # the head itself still learns the speaker
    assert shared.abs().sum() > 0


def test_init_from_takes_the_pretrained_layers_and_leaves_the_new_head(tmp_path) -> None:
    torch.manual_seed(0)
    speakers = AffectNet(50, channels=8, mean=np.full(64, 2.0), std=np.full(64, 3.0))  # pretrained on 50 speakers
    with torch.no_grad():
        for p in speakers.parameters():
            p.add_(torch.randn_like(p))  # stand-in for training: every tensor moves
    torch.save(speakers.state_dict(), tmp_path / "pre.pt")
    torch.manual_seed(1)
    emotions = AffectNet(4, channels=8)
    fresh_last = emotions.head[3].weight.detach().clone()
    init_from(emotions, tmp_path / "pre.pt")
    for name, v in emotions.state_dict().items():
        if name.startswith("head.3."):  # the class layer: 4 emotions, not 50 speakers
            continue
        torch.testing.assert_close(v, speakers.state_dict()[name], msg=name)
    torch.testing.assert_close(emotions.head[3].weight, fresh_last)
    torch.testing.assert_close(emotions.mean, speakers.mean)  # inputs scaled as in pretraining
    with pytest.raises(SystemExit, match="does not fit this network"):
        init_from(AffectNet(4, channels=16), tmp_path / "pre.pt")


def test_a_resumed_pretraining_keeps_the_speaker_layer_only_for_the_same_speakers() -> None:
    old = {"recipe": {"corpora": ["librispeech", "vctk"], "min_clips": 1}, "n_speakers": 300}  # splits: train
    assert same_speakers(old, ["librispeech", "vctk"], ["train"], 1, 300)
    assert not same_speakers(old, ["librispeech", "vctk"], ["train", "val"], 1, 340)
    assert not same_speakers(old, ["librispeech"], ["train"], 1, 250)
    with pytest.raises(SystemExit, match="cannot tell"):  # same selection, other count: the data changed
        same_speakers(old, ["librispeech", "vctk"], ["train"], 1, 301)
    with pytest.raises(SystemExit, match="cannot tell"):  # other selection, same count: indices may not match
        same_speakers(old, ["librispeech", "vctk"], ["train"], 2, 300)


def _voice_clip(split: str, seed: int) -> Clip:
    """2 s of a pitched buzz in bursts (speech-like energy pattern) at -20 dBFS, as int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(32000) / 16000
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * (np.sin(2 * np.pi * 3 * t) > -0.3)
    x = 0.1 * x / np.abs(x).max() + 1e-3 * rng.standard_normal(len(t))
    return Clip("syn", f"{split}{seed}.opus", "angry", "speech", "female", "en", f"s{seed}", split, "-",
                np.round(x * 32767).astype(np.int16))


def test_chain_versions_augment_training_clips_only_and_are_cached(tmp_path, monkeypatch) -> None:
    from . import affect_data

    monkeypatch.setattr(affect_data, "CACHE", tmp_path)
    clips = [_voice_clip("train", 0), _voice_clip("val", 1)]
    vs = affect_data.build_chain_versions(clips, 3, [], seed=0, tag="syn")
    assert len(vs) == 3 and all(len(row) == 2 for row in vs)
    (f0, m0), (g0, n0) = vs[0]
    assert f0.shape == (4 * 31, 64) and m0.shape == (31,) and m0.sum() > 10  # 31 whole 64 ms frames, speech found
    for v in (1, 2):
        (g, n) = vs[v][1]
        assert g is g0 and n is n0  # a validation clip stays clean in every version
        f, m = vs[v][0]
        assert f.shape[1] == 64 and len(f) == 4 * len(m) and not np.array_equal(f[: len(f0)], f0[: len(f)])
    assert not np.array_equal(vs[1][0][0], vs[2][0][0])  # two different draws
    assert len(list(tmp_path.glob("affect-chain-syn-*.npz"))) == 1
    again = affect_data.build_chain_versions(clips, 3, [], seed=0, tag="syn")
    for v in (1, 2):
        np.testing.assert_array_equal(again[v][0][0], vs[v][0][0])
        np.testing.assert_array_equal(again[v][0][1], vs[v][0][1])
    fewer = affect_data.build_chain_versions(clips, 2, [], seed=0, tag="syn")  # served by the 3-version file
    assert len(fewer) == 2 and len(list(tmp_path.glob("affect-chain-syn-*.npz"))) == 1
    np.testing.assert_array_equal(fewer[1][0][0], vs[1][0][0])


def test_new_corpora_labels_map_as_the_cards_say() -> None:
    from .affect_data import MODELS, mapping_for

    arousal, emotions = mapping_for("arousal", None), mapping_for("emotions", None)
    assert [arousal[k] for k in ("angry", "happy", "fearful", "calm")] == ["high", "high", "high", "neutral"]
    assert [arousal[k] for k in ("high", "neutral", "low")] == ["high", "neutral", "low"]  # baved's levels
    assert "scream" not in arousal and "scream" not in emotions  # label / channel confound: left out
    assert [emotions.get(k) for k in ("angry", "happy", "calm", "fearful")] == ["irritated", "happy", "neutral", None]
    assert "baved" in MODELS["arousal"]["corpora"] and "baved" not in MODELS["emotions"]["corpora"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy ONNX exporter, used by training.export
def test_init_from_onnx_reproduces_each_network_of_an_exported_ensemble(tmp_path) -> None:
    from .affect_net import Ensemble, freeze_batchnorm, init_from_onnx
    from .export import export_onnx

    torch.manual_seed(0)
    members = [AffectNet(3, channels=8, mean=np.full(64, -6.0), std=np.full(64, 2.0)) for _ in range(2)]
    for net in members:  # trained stand-ins: weights and BatchNorm statistics away from their defaults
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm1d):
                    m.running_mean.copy_(torch.randn_like(m.running_mean))
                    m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    ens = Ensemble(members).eval()
    export_onnx(ens, tmp_path / "model.onnx")
    x = torch.randn(2, 4 * (ens.context_frames + 6), 64) * 3 - 6
    for k in (0, 1):
        fresh = AffectNet(3, channels=8)
        init_from_onnx(fresh, tmp_path / "model.onnx", member=k)
        fresh.train()
        freeze_batchnorm(fresh)
        fresh.drop.p = fresh.head[2].p = 0.0
        with torch.no_grad():
            torch.testing.assert_close(fresh(x), members[k](x), atol=1e-5, rtol=1e-4)
    with pytest.raises(SystemExit, match="does not fit"):
        init_from_onnx(AffectNet(3, channels=16), tmp_path / "model.onnx")


def test_a_chain_trained_model_gets_the_issue14_card(tmp_path) -> None:
    import json
    import shutil

    from .affect_card import write_card
    from .data import REPO

    bundled = REPO / "deeptone_async" / "models" / "arousal"
    shutil.copy(bundled / "spec.json", tmp_path / "spec.json")
    shutil.copy(bundled / "eval.json", tmp_path / "eval_val_ravdess_emodb.json")
    shutil.copy(bundled / "eval.json", tmp_path / "eval.json")
    info = json.loads((bundled / "train_info.json").read_text())
    info.update(augment="chain", corpora=["ravdess", "emodb", "baved", "emospeech"], versions=2, p_clean=0.3)
    (tmp_path / "train_info.json").write_text(json.dumps(info))
    card = write_card("arousal", tmp_path).read_text()
    assert "--augment chain --corpora ravdess emodb baved emospeech --versions 2" in card and "--p-clean 0.3" in card
    for corpus in ("`baved`", "`emospeech`", "scream"):
        assert corpus in card
    assert "| baved | - | not run |" in card  # no cross-corpus result: said so, not invented
    assert "| all | 321 | **77.1%** |" in card and "previous model, same clips" in card
    assert "--augment legacy" not in card
