"""Scores of the affect models in training: class-balanced loss, frame and clip UAR, the
clip confusion matrix, and the class prior bias fitted on out-of-fold predictions (``--calibrate``).

A clip's decision is the argmax of its mean frame probability over its speech frames; UAR is the
unweighted average recall (the mean of the per-class recalls).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .affect_data import Item, make_batch
from .sampler import IGNORE


def evaluate_items(model: nn.Module, items: list[Item], n_labels: int, bs: int = 64):
    """Class-balanced frame loss (mean over classes of the mean frame cross-entropy), frame UAR
    and clip UAR (argmax of the mean probability over speech frames) on clean items."""
    model.eval()
    lossf = nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="none")
    cls_loss, cls_n = np.zeros(n_labels), np.zeros(n_labels)
    fcm = np.zeros((n_labels, n_labels))
    clips: list[tuple[int, np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(items), bs):
            chunk = items[i : i + bs]
            X, Y = make_batch(chunk, model.context_frames, None, max_frames=10_000)
            lg = model.logits(X)
            fl = lossf(lg.reshape(-1, n_labels), Y.reshape(-1)).numpy()
            fy = Y.reshape(-1).numpy()
            on = fy != IGNORE
            np.add.at(cls_loss, fy[on], fl[on])
            np.add.at(cls_n, fy[on], 1)
            P = torch.softmax(lg, -1).numpy()
            Yn = Y.numpy()
            for b, it in enumerate(chunk):
                m = Yn[b] != IGNORE
                if not m.any():
                    continue
                np.add.at(fcm, (Yn[b][m], P[b][m].argmax(-1)), 1)
                clips.append((it.y, P[b][m]))
    present = cls_n > 0
    return float(np.mean(cls_loss[present] / cls_n[present])), uar_of(fcm), uar_of(clip_confusion(clips, n_labels))


def uar_of(cm: np.ndarray) -> float:
    seen = cm.sum(1) > 0
    return float(np.mean(cm.diagonal()[seen] / cm.sum(1)[seen]))



def frame_probs(model: nn.Module, items: list[Item], bs: int = 64) -> list[np.ndarray]:
    """Each clean item's class probabilities on its labelled (speech) frames, (n, K)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(items), bs):
            X, Y = make_batch(items[i : i + bs], model.context_frames, None, max_frames=10_000)
            P = model(X).numpy()
            out += [P[b][Y[b].numpy() != IGNORE] for b in range(len(P))]
    return out


def apply_bias(p: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Frame probabilities reweighted by exp(bias) and renormalised (what the exported graph does)."""
    q = p * np.exp(bias)
    return q / q.sum(-1, keepdims=True)


def clip_confusion(clips: list[tuple[int, np.ndarray]], K: int, bias: np.ndarray | None = None) -> np.ndarray:
    """Clip confusion matrix: a clip's decision is the argmax of its mean frame probability."""
    cm = np.zeros((K, K))
    for y, p in clips:
        if len(p):
            cm[y, (p if bias is None else apply_bias(p, bias)).mean(0).argmax()] += 1
    return cm


def fit_prior_bias(clips: list[tuple[int, np.ndarray]], K: int, span: float = 2.0, step: float = 0.05) -> np.ndarray:
    """Log-weights per class (the first fixed at 0) that maximise the clip UAR of ``clips`` (out-of-fold
    predictions): coordinate ascent on a grid, ties broken towards smaller weights."""
    bias = np.zeros(K)
    grid = np.round(np.arange(-span, span + step / 2, step), 4)
    best = uar_of(clip_confusion(clips, K, bias))
    for _ in range(4):
        changed = False
        for k in range(1, K):
            for v in sorted(grid, key=abs):
                b = bias.copy()
                b[k] = v
                u = uar_of(clip_confusion(clips, K, b))
                if u > best + 1e-9:
                    best, bias, changed = u, b, True
        if not changed:
            break
    return bias


