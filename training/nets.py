"""The causal, *valid* temporal convolution network shared by the three models.

Input ``features`` (batch, 4 * T, 64) log-mel rows -> normalise with constants stored in the
graph -> patchify conv (kernel 4, stride 4 over rows: one vector per 64 ms frame) -> blocks of
[depthwise dilated conv (no padding) -> BatchNorm -> ReLU -> pointwise conv -> BatchNorm ->
ReLU] with a cropped residual -> pointwise head -> softmax. Every conv is unpadded, so output
frame j sees exactly frames j .. j + context_frames of the input, where
``context_frames = sum((k - 1) * d)`` over the blocks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deeptone_async.features import N_MELS, SUBFRAMES


class Block(nn.Module):
    def __init__(self, ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.trim = (kernel - 1) * dilation
        self.dw = nn.Conv1d(ch, ch, kernel, dilation=dilation, groups=ch, bias=False)
        self.bn1 = nn.BatchNorm1d(ch)
        self.pw = nn.Conv1d(ch, ch, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(ch)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.dw(x)))
        y = self.act(self.bn2(self.pw(y)))
        return (x[:, :, self.trim :] if self.trim else x) + y


class Stem2d(nn.Module):
    """Local time-frequency filters before the patchify conv: two 3x3 convolutions over (log-mel
    rows, mel bands), valid in time (4 rows = one frame of context), each halving the bands
    (stride 2, padded in frequency only) -> (batch, channels * 16, rows - 4)."""

    CONTEXT_ROWS = 4

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, channels, 3, stride=(1, 2), padding=(0, 1), bias=False)
        self.b1 = nn.BatchNorm2d(channels)
        self.c2 = nn.Conv2d(channels, channels, 3, stride=(1, 2), padding=(0, 1), bias=False)
        self.b2 = nn.BatchNorm2d(channels)
        self.out_features = channels * N_MELS // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, rows, 64) normalised log-mel -> (B, channels * 16, rows - 4)."""
        y = torch.relu(self.b1(self.c1(x.unsqueeze(1))))
        y = torch.relu(self.b2(self.c2(y)))  # (B, C, rows - 4, 16)
        return y.permute(0, 1, 3, 2).flatten(1, 2)


def add_stem(module: nn.Module, channels: int, blocks: list[tuple[int, int]],
             mean: np.ndarray | None, std: np.ndarray | None, in_features: int = N_MELS) -> None:
    """Give ``module`` the shared stem: per-mel normalisation (``mean``, ``inv_std`` buffers in
    the graph), the kernel-4 stride-4 patchify conv (``patch``, ``bn0``) and the residual
    causal ``blocks``. Used by every network here, so their state-dict keys agree."""
    m = np.zeros(N_MELS, np.float32) if mean is None else mean.astype(np.float32)
    s = np.ones(N_MELS, np.float32) if std is None else std.astype(np.float32)
    module.register_buffer("mean", torch.from_numpy(m).view(1, 1, N_MELS))
    module.register_buffer("inv_std", torch.from_numpy(1.0 / s).view(1, 1, N_MELS))
    module.patch = nn.Conv1d(in_features, channels, SUBFRAMES, stride=SUBFRAMES, bias=False)
    module.bn0 = nn.BatchNorm1d(channels)
    module.blocks = nn.Sequential(*[Block(channels, k, d) for k, d in blocks])


class CausalTCN(nn.Module):
    def __init__(self, n_labels: int, channels: int, blocks: list[tuple[int, int]],
                 mean: np.ndarray | None = None, std: np.ndarray | None = None, head_hidden: int = 0,
                 stem2d: int = 0) -> None:
        super().__init__()
        self.blocks_cfg = blocks
        self.context_frames = sum((k - 1) * d for k, d in blocks)
        self.stem2d = Stem2d(stem2d) if stem2d else None
        if self.stem2d is not None:
            self.context_frames += Stem2d.CONTEXT_ROWS // SUBFRAMES
        add_stem(self, channels, blocks, mean, std, self.stem2d.out_features if self.stem2d else N_MELS)
        layers: list[nn.Module] = []
        if head_hidden:
            layers += [nn.Conv1d(channels, head_hidden, 1), nn.ReLU(), nn.Conv1d(head_hidden, n_labels, 1)]
        else:
            layers += [nn.Conv1d(channels, n_labels, 1)]
        self.head = nn.Sequential(*layers)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 64) -> (B, T - context_frames, n_labels) logits."""
        x = (features - self.mean) * self.inv_std
        x = self.stem2d(x) if self.stem2d is not None else x.transpose(1, 2)
        x = torch.relu(self.bn0(self.patch(x)))
        x = self.blocks(x)
        return self.head(x).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_width(state: dict[str, torch.Tensor]) -> int:
    """The channel count of a stem+blocks state dict (the patchify conv's outputs)."""
    return int(state["patch.weight"].shape[0])


def state_stem2d(state: dict[str, torch.Tensor]) -> int:
    """The channel count of a state dict's 2-D stem (0: it has none)."""
    w = state.get("stem2d.c1.weight")
    return 0 if w is None else int(w.shape[0])


def widen_state(state: dict[str, torch.Tensor], channels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Widen a trained stem+blocks+head state dict to ``channels`` without changing its function.

    Net2WiderNet (Chen, Goodfellow and Shlens, 2016): each new channel copies a randomly chosen
    old one (conv outputs, depthwise kernels and BatchNorm parameters and statistics are copied);
    every layer that reads the channels splits the old weight between the copies with random
    shares that sum to one, so the outputs are unchanged while the copies receive different
    gradients and can drift apart in training. Only the single-conv head is supported.
    """
    old = state_width(state)
    if channels < old:
        raise ValueError(f"cannot narrow {old} channels to {channels}")
    g = torch.Generator().manual_seed(seed)
    src = torch.cat([torch.arange(old), torch.randint(0, old, (channels - old,), generator=g)])
    share = torch.rand(channels, generator=g) * 0.4 + 0.3  # random split of each duplicated input
    total = torch.zeros(old).index_add_(0, src, share)
    share = share / total[src]  # shares of one old channel sum to 1
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        name = k.rsplit(".", 1)
        if k == "patch.weight" or k.endswith("dw.weight"):  # channels on the output axis
            out[k] = v[src].clone()
        elif len(name) == 2 and (name[0] == "bn0" or name[0].endswith(("bn1", "bn2"))) and v.dim() == 1:
            out[k] = v[src].clone()
        elif k.endswith("pw.weight"):  # (out, in, 1): copy rows, split columns
            out[k] = (v[src][:, src] * share.view(1, -1, 1)).clone()
        elif k.startswith("head.") and k.endswith("weight"):  # (labels, in, 1)
            if v.shape[1] != old:
                raise ValueError("only a single-conv head can be widened")
            out[k] = (v[:, src] * share.view(1, -1, 1)).clone()
        else:
            out[k] = v.clone()
    return out


class ProbAverage(nn.Module):
    """An ensemble exported as one graph: the mean of its members' probabilities.

    The members must see the same context (``context_frames``), so the graph keeps the
    engine's streaming contract (causal, valid, ``context_frames`` rows carried).
    """

    def __init__(self, members: list[CausalTCN]) -> None:
        super().__init__()
        ctx = {m.context_frames for m in members}
        if len(ctx) != 1:
            raise ValueError(f"ensemble members disagree on context_frames: {sorted(ctx)}")
        self.members = nn.ModuleList(members)
        self.context_frames = ctx.pop()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(features) for m in self.members]).mean(0)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Log of the mean probability (normalised: softmax gives ``forward`` back), so that the
        ensemble trains as one network under a cross-entropy loss."""
        return torch.log(self.forward(features).clamp_min(1e-12))
