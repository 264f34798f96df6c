"""Contract tests for the bundled logmel models: ``python -m pytest training/test_models.py``.

For every model folder that has been exported: the spec loads through the engine's
``ModelSpec``, the ONNX is <= 5 MB with the right input/output names and shapes, a long
sequence equals the same sequence run in random pieces with the context carried. Speed is
measured by benchmarks (``benchmarks/bench_engine.py rtf``), not here. Skipped without torch
(the training extra).
"""

from __future__ import annotations

import numpy as np
import pytest

from deeptone_async.spec import ModelSpec

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")

from .evaluate import MODELS_DIR  # noqa: E402
from .export import check_streaming, session  # noqa: E402

FOLDERS = [p for p in ("speech", "speech_rt", "gender", "underage_speaker") if (MODELS_DIR / p / "model.onnx").exists()]


@pytest.mark.parametrize("name", FOLDERS)
def test_spec_and_shapes(name: str) -> None:
    spec = ModelSpec.from_folder(MODELS_DIR / name)
    assert spec.kind == "logmel"
    assert spec.receptive_field_ms == 64 * (spec.context_frames + 1)
    assert spec.onnx.stat().st_size <= 5 * 1024 * 1024
    s = session(spec.onnx)
    assert [i.name for i in s.get_inputs()] == ["features"]
    assert [o.name for o in s.get_outputs()] == ["probs"]
    for b, n in ((1, 1), (4, 37)):
        x = np.full((b, 4 * (spec.context_frames + n), 64), -8.0, np.float32)
        p = s.run(["probs"], {"features": x})[0]
        assert p.shape == (b, n, len(spec.labels))
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", FOLDERS)
def test_streaming_equals_whole(name: str) -> None:
    spec = ModelSpec.from_folder(MODELS_DIR / name)
    assert check_streaming(spec.onnx, spec.context_frames) < 1e-5


def test_widening_keeps_the_function_and_breaks_symmetry() -> None:
    import torch

    from .nets import CausalTCN, widen_state

    torch.manual_seed(0)
    blocks = [(3, 1), (3, 2), (1, 1)]
    narrow = CausalTCN(3, 16, blocks)
    for mod in narrow.modules():  # non-trivial BatchNorm statistics
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    narrow.eval()
    wide = CausalTCN(3, 40, blocks)
    wide.load_state_dict(widen_state(narrow.state_dict(), 40, seed=3))
    wide.eval()
    x = torch.randn(2, 4 * 30, 64) * 3 - 8
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), atol=1e-5, rtol=1e-4)
    # each new channel copies an old one (same patch filter), but the next layer reads the
    # two with different weights, so training can tell them apart
    patch = wide.patch.weight.detach()
    pw = wide.blocks[0].pw.weight.detach()[:, :, 0]
    for j in range(16, 40):
        (src,) = [i for i in range(16) if torch.equal(patch[i], patch[j])]
        assert not torch.allclose(pw[:, j], pw[:, src])
    with pytest.raises(ValueError):
        widen_state(wide.state_dict(), 16)


def test_ensemble_is_the_mean_of_its_members_and_needs_one_context() -> None:
    import torch

    from .nets import CausalTCN, ProbAverage

    torch.manual_seed(1)
    a, b = CausalTCN(3, 8, [(3, 1), (3, 2)]).eval(), CausalTCN(3, 12, [(3, 1), (3, 2)]).eval()
    ens = ProbAverage([a, b]).eval()
    assert ens.context_frames == 6
    x = torch.randn(2, 4 * 20, 64)
    with torch.no_grad():
        torch.testing.assert_close(ens(x), (a(x) + b(x)) / 2)
    with pytest.raises(ValueError):
        ProbAverage([a, CausalTCN(3, 8, [(3, 1)])])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.onnx's legacy exporter, used on purpose
def test_stem2d_sees_exactly_its_receptive_field_and_streams(tmp_path) -> None:
    import torch

    from .export import export_onnx
    from .nets import CausalTCN

    torch.manual_seed(2)
    net = CausalTCN(3, 8, [(1, 1), (1, 1)], stem2d=4).eval()
    assert net.context_frames == 1  # the 2-D stem's 4 rows of time context = one frame
    x = torch.randn(1, 4 * 12, 64)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, 11, 3)
        # output frame j depends on rows 4j .. 4j + 7 only
        x2 = x.clone()
        x2[:, 4 * 5 + 8 :] += 5.0  # change rows after output frame 5's window
        x2[:, : 4 * 5] -= 5.0  # and rows before it
        torch.testing.assert_close(net(x2)[:, 5], y[:, 5])
        assert not torch.allclose(net(x2)[:, 6], y[:, 6])
    export_onnx(net, tmp_path / "model.onnx")
    assert check_streaming(tmp_path / "model.onnx", net.context_frames) < 1e-5


def test_ensemble_members_load_with_or_without_the_2d_stem(tmp_path) -> None:
    import torch

    from .ensemble import load_member
    from .nets import CausalTCN
    from .train import net_config

    for stem in (16, 0):  # speech_rt's default has a stem; older checkpoints have none
        cfg = net_config("speech_rt", channels=24, stem2d=stem)
        net = CausalTCN(len(cfg["labels"]), cfg["channels"], cfg["blocks"], stem2d=cfg.get("stem2d", 0))
        torch.save(net.state_dict(), tmp_path / f"m{stem}.pt")
        loaded, info = load_member("speech_rt", tmp_path / f"m{stem}.pt")
        assert info == {"checkpoint": f"m{stem}.pt"}
        assert loaded.context_frames == 1  # 128 ms either way
        x = torch.randn(1, 4 * 10, 64)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), net.eval()(x))



@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_exported_ensemble_reads_back_into_members_that_reproduce_it(tmp_path) -> None:
    import torch

    from .export import check_torch_vs_ort, ensemble_from_onnx, export_onnx, onnx_members
    from .nets import CausalTCN, ProbAverage

    torch.manual_seed(3)
    blocks = [(3, 1), (2, 2)]
    nets = [CausalTCN(3, w, blocks, mean=np.full(64, -7.0), std=np.full(64, 2.0)) for w in (8, 12)]
    for n in nets:  # trained-looking BatchNorm statistics, folded by the export
        for mod in n.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    ens = ProbAverage([n.eval() for n in nets]).eval()
    export_onnx(ens, tmp_path / "model.onnx")
    assert onnx_members(tmp_path / "model.onnx") == [8, 12]
    back = [CausalTCN(3, w, blocks) for w in (8, 12)]
    ensemble_from_onnx(tmp_path / "model.onnx", back)
    again = ProbAverage(back).eval()
    assert check_torch_vs_ort(again, tmp_path / "model.onnx") < 1e-4
    x = torch.randn(2, 4 * 12, 64) * 3 - 8
    with torch.no_grad():  # log-mean-probability logits: softmax gives the ensemble's output back
        torch.testing.assert_close(torch.softmax(again.logits(x), -1), again(x), atol=1e-6, rtol=1e-5)
    assert onnx_members(MODELS_DIR / "gender" / "model.onnx") == []  # a single network


@pytest.mark.skipif(not (MODELS_DIR / "speech_rt" / "model.onnx").exists(), reason="SpeechRT not exported")
def test_a_graph_with_the_2d_stem_reads_back_from_onnx() -> None:
    from .export import check_torch_vs_ort, state_from_onnx
    from .nets import CausalTCN
    from .train import net_config

    path = MODELS_DIR / "speech_rt" / "model.onnx"
    m = net_config("speech_rt")
    net = CausalTCN(len(m["labels"]), m["channels"], m["blocks"], stem2d=m["stem2d"])
    net.load_state_dict(state_from_onnx(path, net))
    assert check_torch_vs_ort(net.eval(), path) < 1e-4
