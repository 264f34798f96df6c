"""The affect network (``AffectNet``), its ensemble and prior-bias wrappers, and export.

Model (``AffectNet``): normalise -> patchify conv (one vector per 64 ms frame) -> 4 causal valid
depthwise-separable TCN blocks (``training.nets.Block``; 16 frames of context) -> causal mean and
mean-square pooling over the last 17 frames -> 1x1 head -> softmax. Receptive field
16 + 16 + 1 = 33 frames = 2112 ms (``context_frames`` 32). Export and its checks (ONNX, streaming
== whole, size, speed) are the shared ``training.export``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptone_async.features import SUBFRAMES

from .nets import add_stem

CHANNELS = 48
BLOCKS = [(3, 1), (3, 2), (3, 4), (3, 1)]  # 16 frames of context
POOL = 17  # + 16 frames of pooling = 32 context frames
CONTEXT = sum((k - 1) * d for k, d in BLOCKS) + POOL - 1


def remove_causal_mean(features: torch.Tensor, rows: int) -> torch.Tensor:
    """(B, R, 64) log-mel rows -> (B, R - rows, 64): each row minus the mean of itself and the
    ``rows`` rows before it (``--cmn``)."""
    avg = nn.functional.avg_pool1d(features.transpose(1, 2), rows + 1, stride=1).transpose(1, 2)
    return features[:, rows:] - avg


class _GradReverse(torch.autograd.Function):
    """Identity forward, negated gradient backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return -grad


class AffectNet(nn.Module):
    def __init__(self, n_labels: int, channels: int = CHANNELS, blocks=BLOCKS, pool: int = POOL,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None, dropout: float = 0.3,
                 hidden: int = 64, n_aux: int = 0, cmn_frames: int = 0, reverse_aux: bool = False) -> None:
        super().__init__()
        # --cmn: each log-mel row minus the mean of the rows of the cmn_frames frames before it
        # and itself (a causal per-band mean normalisation); widens the receptive field by as much
        self.cmn_rows = cmn_frames * SUBFRAMES
        self.context_frames = sum((k - 1) * d for k, d in blocks) + pool - 1 + cmn_frames
        add_stem(self, channels, list(blocks), mean, std)
        self.pool = nn.AvgPool1d(pool, stride=1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Conv1d(2 * channels, hidden, 1), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Conv1d(hidden, n_labels, 1))
        # training-only head for the auxiliary fine-emotion task; not part of the exported graph
        # reverse_aux: the auxiliary head learns the speaker while the shared layers are pushed
        # (gradient reversal) to make that hard: speaker-adversarial training (--adv-speaker)
        self.reverse_aux = reverse_aux
        self.aux = (nn.Sequential(nn.Conv1d(2 * channels, hidden, 1), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Conv1d(hidden, n_aux, 1)) if n_aux else None)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        if self.cmn_rows:
            features = remove_causal_mean(features, self.cmn_rows)
        x = ((features - self.mean) * self.inv_std).transpose(1, 2)
        x = torch.relu(self.bn0(self.patch(x)))
        x = self.drop(self.blocks(x))
        return torch.cat([self.pool(x), self.pool(x * x)], dim=1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 64) -> (B, T - context_frames, n_labels)."""
        return self.head(self.pooled(features)).transpose(1, 2)

    def logits_both(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Main and auxiliary logits from one pass (training with ``n_aux``)."""
        assert self.aux is not None
        x = self.pooled(features)
        a = _GradReverse.apply(x) if self.reverse_aux else x
        return self.head(x).transpose(1, 2), self.aux(a).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)



def pretrain_info(path: Path) -> dict:
    """What ``training.affect_pretrain`` recorded beside the state at ``path`` (its loss history left
    out), or {} when it wrote nothing there."""
    meta = path.with_suffix(".json")
    if not meta.exists():
        return {}
    return {k: v for k, v in json.loads(meta.read_text()).items() if k != "history"}


def init_from(model: nn.Module, path: Path) -> None:
    """Start ``model`` from the AffectNet state at ``path`` (``training.affect_pretrain``): every
    tensor before the head, the normalisation constants included (so the pretrained layers see
    their inputs as they learnt them), must be there with the same shape, or SystemExit; the head's
    tensors are taken where they fit, the rest (the layer over other classes) stays fresh."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    missing = [k for k, v in own.items() if not k.startswith(("head.", "aux."))
               and (k not in state or state[k].shape != v.shape)]
    if missing:
        raise SystemExit(f"{path} does not fit this network ({len(missing)} tensors missing or of "
                         f"another shape, e.g. {missing[0]}; check --channels)")
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    print(f"initialised {len(take)} of {len(own)} tensors from {path}", flush=True)



class Ensemble(nn.Module):
    """Mean of the members' probabilities (same context), exported as one graph."""

    def __init__(self, members: list[AffectNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.context_frames = members[0].context_frames

    def logits(self, features: torch.Tensor) -> torch.Tensor:  # log of the mean probability
        return torch.log(self.forward(features) + 1e-8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(features) for m in self.members]).mean(0)


class PriorBias(nn.Module):
    """A model's frame probabilities reweighted by exp(bias) per class and renormalised: moves
    the decision boundaries by class log-weights fitted on out-of-fold predictions (``--calibrate``)."""

    def __init__(self, model: nn.Module, bias: list[float]) -> None:
        super().__init__()
        self.model = model
        self.context_frames = model.context_frames
        self.register_buffer("weight", torch.exp(torch.tensor(bias, dtype=torch.float32)).view(1, 1, -1))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return torch.log(self.forward(features) + 1e-8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        q = self.model(features) * self.weight
        return q / q.sum(-1, keepdim=True)


def export(model: nn.Module, m: dict, folder: Path) -> None:
    """Write ``folder/model.onnx`` (``training.export.export_onnx``) and its ``spec.json``."""
    from .export import export_onnx

    export_onnx(model, folder / "model.onnx")
    spec = {
        "name": m["name"], "key": m["key"], "kind": "logmel", "labels": m["labels"], "onnx": "model.onnx",
        "receptive_field_ms": 64 * (model.context_frames + 1), "context_frames": model.context_frames,
        "unknown_threshold": None, "voice": True, "card": "card.md", "description": m["description"],
    }
    (folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")



#: convolutions per AffectNet in an exported graph: patch, 4 x (dw, pw), head.0, head.3
CONVS_PER_NET = 2 + 2 * len(BLOCKS) + 1


def init_from_onnx(model: AffectNet, path: Path, member: int = 0) -> None:
    """Start ``model`` from network ``member`` (modulo their number) of an exported affect graph
    (a single AffectNet or an :class:`Ensemble` of them, without prior bias), e.g. the bundled
    model it is to replace. The export folded each BatchNorm into the conv before it
    (``training.export``), so here every BatchNorm is the identity and must stay in eval mode
    while training (``train_one`` does so when ``--init-from`` is an ``.onnx`` file). The class
    layer is taken too when it has the same shape, else it starts afresh.

    Raises:
        SystemExit: the graph's convolutions do not fit ``model`` (other width, another network).
    """
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    n_nets = len(convs) // CONVS_PER_NET
    if not n_nets or n_nets * CONVS_PER_NET != len(convs):
        raise SystemExit(f"{path}: {len(convs)} convolutions is not a number of affect networks")
    k = member % n_nets
    cs = convs[k * CONVS_PER_NET : (k + 1) * CONVS_PER_NET]
    prefix = "members.0." if n_nets > 1 or "members.0.mean" in init else ""
    mean = init.get(f"members.{k}.mean", init.get(f"{prefix}mean"))
    inv = init.get(f"members.{k}.inv_std", init.get(f"{prefix}inv_std"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = ["patch"] + [f"blocks.{i}.{c}" for i in range(len(model.blocks)) for c in ("dw", "pw")]
    bns = ["bn0"] + [f"blocks.{i}.{b}" for i in range(len(model.blocks)) for b in ("bn1", "bn2")]
    for node, name in zip(cs, [*names, "head.0", "head.3"]):
        w = torch.from_numpy(init[node.input[1]].copy())
        b = torch.from_numpy(init[node.input[2]].copy()) if len(node.input) > 2 else None
        if name == "head.3" and w.shape != state["head.3.weight"].shape:
            continue  # another set of classes: the class layer starts afresh
        if w.shape != state[f"{name}.weight"].shape:
            raise SystemExit(f"{path} does not fit this network ({name}: {tuple(w.shape)} against "
                             f"{tuple(state[name + '.weight'].shape)}; check --channels)")
        state[f"{name}.weight"] = w
        if name.startswith("head."):
            state[f"{name}.bias"] = b if b is not None else torch.zeros_like(state[f"{name}.bias"])
            continue
        bn = bns[names.index(name)]  # folded into this conv: the BatchNorm becomes the identity
        eps = model.get_submodule(bn).eps
        state[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
        state[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1.0 - eps)
        state[f"{bn}.weight"] = torch.ones_like(state[f"{bn}.weight"])
        state[f"{bn}.bias"] = b if b is not None else torch.zeros_like(state[f"{bn}.bias"])
    state["mean"] = torch.from_numpy(np.array(mean)).view_as(state["mean"])
    state["inv_std"] = torch.from_numpy(np.array(inv)).view_as(state["inv_std"])
    model.load_state_dict(state)
    print(f"initialised from network {k} of {n_nets} in {path} (BatchNorm folded, frozen)", flush=True)


def freeze_batchnorm(model: nn.Module) -> None:
    """Every BatchNorm of ``model`` in eval mode (after ``model.train()``)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eval()
