"""Train and export the two affect models, Arousal and Emotions, from acted emotional speech.

    # the bundled models (each ~10-15 min on 2 busy CPU cores); -> deeptone_async/models/<model>/
    nice -n 10 python -m training.affect --model arousal --epochs 60 --channels 64 --dropout 0.2 \
        --weight-decay 1e-2 --level -50 -5 --ensemble 3
    nice -n 10 python -m training.affect --model emotions --epochs 60 --channels 96 --dropout 0.1 \
        --weight-decay 1e-2 --level -50 -5 --ensemble 3
    python -m training.evaluate_affect --model arousal          # eval.json / eval.md (val split)
    python -m training.affect_card arousal                      # card.md from the JSON results

    # cross-corpus runs (train on one corpus, test on the other with training.evaluate_affect)
    python -m training.affect --model arousal --corpora ravdess --out runs/affect/arousal-ravdess

    # your own data: a manifest.csv (file, label, split, gender) whose labels are corpus emotion
    # names (angry, happy, sad, ...), the model's own labels (high / neutral / low), or anything
    # mapped by --mapping my_map.json ({"my label": "high", ...}); --corpora with no names drops
    # the shared corpora (do this for commercial use: ravdess is CC BY-NC-SA, emodb research-only)
    python -m training.affect --model arousal --corpora --manifest my/manifest.csv --out my_arousal

Recipe (the same for every run): each clip is labelled by the mapping below (clips whose emotion
does not map cleanly are left out); its *speech frames* (helper-1's energy truth:
``training.data.active_frames`` on the clean clip plus 2 frames of hangover, and not below the
-60 dBFS volume gate of the final mix) carry the clip's label, every other frame is ignored by
the loss. Augmented copies of every training clip are made once and cached: speed perturbation
(resample-based, pitch and tempo together, x0.9-1.1), background noise or music mixed at
5-30 dB SNR (the shared ``noise``/``music`` corpora), reverberation / telephone band / codec
(``training.augment.channel``) and gain (-25..+6 dB). Features come from
``deeptone_async.features.logmel`` over the whole clip with zero history, exactly as the engine
computes them. Training feeds whole clips (from a random start frame, the rows before it as
context, SILENCE_FLOOR rows before the stream start), clip sampling balanced over (corpus, class)
cells, SpecAugment
frequency masks, label smoothing, dropout, AdamW weight decay, and keeps the epoch with the lowest
validation loss (val split, clean audio).

``--ensemble N`` trains N such models with different seeds and exports one graph that averages
their probabilities.

Model (``AffectNet``): normalise -> patchify conv (one vector per 64 ms frame) -> 4 causal valid
depthwise-separable TCN blocks (helper-1's ``training.nets.Block``; 16 frames of context) -> causal
mean and mean-square pooling over the last 17 frames -> 1x1 head -> softmax. Receptive field
16 + 16 + 1 = 33 frames = 2112 ms (``context_frames`` 32).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptone_async.features import FRAME_SAMPLES, N_MELS, SILENCE_FLOOR, SUBFRAMES, logmel

from . import augment as A
from .data import CACHE, REPO, Clip, active_frames, frame_db_from_hops, hangover, hop_db, load_corpora
from .nets import add_stem, n_params
from .sampler import GATE_DB, IGNORE

AFFECT_CORPORA = ("ravdess", "emodb")
BG_CORPORA = ("noise", "music")

# ---------------------------------------------------------------------------------- mappings
# Corpus emotion -> model label. Grounded in the circumplex model (Russell 1980: anger, joy,
# fear, surprise/astonishment lie in the aroused half; sadness, boredom, tiredness in the
# sleepy half) and Scherer's component process model / Banse & Scherer 1996 (hot anger, elation,
# panic fear: high activation; sadness, boredom: low activation). Disgust is left out of both
# models: its arousal is intermediate and inconsistent between studies and corpora. RAVDESS
# "calm" is the corpus's second baseline (Livingstone & Russo 2018): acted almost like neutral,
# so it is neutral here, although Russell places "calm" in the low-arousal pleasant quadrant.
AROUSAL_MAP = {
    "angry": "high", "anger": "high", "happy": "high", "happiness": "high",
    "fearful": "high", "fear": "high", "surprised": "high",
    "neutral": "neutral", "calm": "neutral",
    "sad": "low", "sadness": "low", "boredom": "low",
}
# Emotions: valence x arousal quadrants. happy = positive, aroused; irritated = anger (negative,
# aroused); tired = sadness and boredom (negative-ish, low arousal); neutral = neutral + calm.
# Left out: fear (negative and aroused, but not "irritated"), surprise (valence undefined),
# disgust (see above; acoustically it is often confused with both anger and boredom).
EMOTIONS_MAP = {
    "happy": "happy", "happiness": "happy",
    "angry": "irritated", "anger": "irritated",
    "neutral": "neutral", "calm": "neutral",
    "sad": "tired", "sadness": "tired", "boredom": "tired",
}

MODELS = {
    "arousal": {"name": "Arousal", "key": "arousal", "labels": ["high", "neutral", "low"], "mapping": AROUSAL_MAP,
                    "description": "Arousal (high / neutral / low) of speech, 2.1 s receptive field; "
                                "trained on acted emotional speech"},
    "emotions": {"name": "Emotions", "key": "emotions", "labels": ["happy", "irritated", "neutral", "tired"],
                     "mapping": EMOTIONS_MAP,
                     "description": "Emotions (happy / irritated / neutral / tired) of speech, 2.1 s receptive "
                                 "field; trained on acted emotional speech"},
}

CHANNELS = 48
BLOCKS = [(3, 1), (3, 2), (3, 4), (3, 1)]  # 16 frames of context
POOL = 17  # + 16 frames of pooling = 32 context frames
CONTEXT = sum((k - 1) * d for k, d in BLOCKS) + POOL - 1
SPEECH_HANGOVER = 2


def mapping_for(model: str, path: Path | None) -> dict[str, str]:
    m = dict(MODELS[model]["mapping"])
    m.update({lab: lab for lab in MODELS[model]["labels"]})  # a manifest may use the labels directly
    if path is not None:
        m.update(json.loads(Path(path).read_text()))
    return {k: v for k, v in m.items() if v is not None}  # null in the JSON: leave that label out


# ---------------------------------------------------------------------------------- the net


class AffectNet(nn.Module):
    def __init__(self, n_labels: int, channels: int = CHANNELS, blocks=BLOCKS, pool: int = POOL,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None, dropout: float = 0.3,
                 hidden: int = 64) -> None:
        super().__init__()
        self.context_frames = sum((k - 1) * d for k, d in blocks) + pool - 1
        add_stem(self, channels, list(blocks), mean, std)
        self.pool = nn.AvgPool1d(pool, stride=1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Conv1d(2 * channels, hidden, 1), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Conv1d(hidden, n_labels, 1))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 64) -> (B, T - context_frames, n_labels)."""
        x = ((features - self.mean) * self.inv_std).transpose(1, 2)
        x = torch.relu(self.bn0(self.patch(x)))
        x = self.drop(self.blocks(x))
        x = torch.cat([self.pool(x), self.pool(x * x)], dim=1)
        return self.head(x).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)


# ---------------------------------------------------------------------------------- data


@dataclass
class Item:
    clip: int  # index into the clip list
    y: int  # class index
    feats: np.ndarray  # (4T, 64) float16
    mask: np.ndarray  # (T,) bool: speech frames that carry the label


def speech_mask(clean: np.ndarray, mixed: np.ndarray | None = None, hang: int = SPEECH_HANGOVER) -> np.ndarray:
    """Frames that carry the clip label: energy-active in the clean audio (+hangover) and not
    gated as silence in the audio the model hears."""
    fdb = frame_db_from_hops(hop_db(clean))
    ref = float(np.percentile(fdb, 95)) if len(fdb) else -100.0
    on = hangover(active_frames(fdb, ref), hang)
    gate = frame_db_from_hops(hop_db(mixed if mixed is not None else clean))
    return on & (gate >= GATE_DB)


def _whole_frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME_SAMPLES
    return x[: n * FRAME_SAMPLES]


def make_item(x: np.ndarray, rng: np.random.Generator | None, bgs: list[Clip],
              speed: float = 0.1, level: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and label mask of one (possibly augmented) version of a clip."""
    if rng is not None:
        f = rng.uniform(1 - speed, 1 + speed)
        x = A.soxr.resample(x, 16000, round(16000 / f), quality="HQ").astype(np.float32)
    x = _whole_frames(x)
    clean = x
    if rng is not None:
        if rng.random() < 0.5:
            if bgs:
                bg = bgs[int(rng.integers(len(bgs)))].float_audio()
                if len(bg) < len(x):
                    bg = np.tile(bg, len(x) // max(len(bg), 1) + 1)
                s = int(rng.integers(0, len(bg) - len(x) + 1))
                bg = bg[s : s + len(x)]
            else:
                bg = rng.standard_normal(len(x)).astype(np.float32)
            act = np.repeat(speech_mask(clean, hang=0), FRAME_SAMPLES)
            x = A.mix_at_snr(x, bg, rng.uniform(5, 30), act[: len(x)])
        x = A.channel(x, rng, p_tel=0.2, p_codec=0.15, p_rev=0.25)
        if level is not None:  # absolute level: the clip's 95th-percentile frame level -> U(level) dBFS
            fdb = frame_db_from_hops(hop_db(x))
            ref = float(np.percentile(fdb, 95)) if len(fdb) else -100.0
            x = A.gain(x, rng.uniform(*level) - ref)
        else:
            x = A.gain(x, rng.uniform(-25, 6))
        clean = A.gain(clean, 0.0)
    feats = logmel(x)
    return feats.astype(np.float16), speech_mask(clean, x)


def load_affect(corpora, manifests, mapping: dict[str, str], labels: list[str]):
    """(labelled clips, all clips): clips whose label maps onto ``labels``, with the class index."""
    clips = load_corpora(corpora, manifests)
    out = []
    for c in clips:
        lab = mapping.get(c.label)
        if lab in labels:
            out.append((c, labels.index(lab)))
    return out, clips


def build_versions(clips: list[Clip], versions: int, bg_corpora, seed: int, tag: str, speed: float = 0.1,
                   level: tuple[float, float] | None = None):
    """``versions`` versions (features, label mask) of every clip, version 0 clean; cached in
    training/cache/ per corpus, so every model and run shares them."""
    key = hashlib.sha1(json.dumps([[c.corpus, c.file, len(c.audio)] for c in clips]
                                  + [versions, list(bg_corpora), seed, 3]
                                  + ([speed] if speed != 0.1 else []) + ([list(level)] if level else [])
                                  ).encode()).hexdigest()[:10]
    path = CACHE / f"affect-{tag}-{key}.npz"
    if path.exists():
        z = np.load(path)
        offs, moffs, F, M = z["offs"], z["moffs"], z["feats"], z["mask"]
        n = len(clips)
        return [[(F[offs[v * n + i] : offs[v * n + i + 1]], M[moffs[v * n + i] : moffs[v * n + i + 1]])
                 for i in range(n)] for v in range(versions)]
    bgs = [c for c in load_corpora(bg_corpora) if c.split == "train"] if versions > 1 and bg_corpora else []
    rng = np.random.default_rng(seed)
    out = []
    t = time.time()
    for v in range(versions):
        out.append([make_item(c.float_audio(), rng if v else None, bgs, speed, level) for c in clips])
        print(f"{tag} version {v}: {len(clips)} clips in {time.time() - t:.0f}s", flush=True)
    flat = [fm for row in out for fm in row]
    offs = np.concatenate([[0], np.cumsum([len(f) for f, _ in flat])])
    moffs = np.concatenate([[0], np.cumsum([len(m) for _, m in flat])])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, offs=offs, moffs=moffs, feats=np.concatenate([f for f, _ in flat]),
             mask=np.concatenate([m for _, m in flat]))
    return out


def build_items(clips: list[tuple[Clip, int]], all_clips: list[Clip], versions: int, bg_corpora,
                seed: int, speed: float = 0.1, level: tuple[float, float] | None = None) -> list[list[Item]]:
    """Items[version][i] for the labelled ``clips`` (a subset of ``all_clips``)."""
    where = {id(c): i for i, c in enumerate(all_clips)}
    corpora = sorted({c.corpus for c in all_clips})
    vers = {}
    for name in corpora:
        group = [c for c in all_clips if c.corpus == name]
        vs = build_versions(group, versions, bg_corpora, seed, name, speed, level)
        for j, c in enumerate(group):
            vers[id(c)] = [vs[v][j] for v in range(versions)]
    return [[Item(where[id(c)], y, *vers[id(c)][v]) for c, y in clips] for v in range(versions)]


def make_batch(items: list[Item], ctx: int, rng: np.random.Generator | None, max_frames: int = 96):
    """Inputs (B, 4*(ctx+T), 64) and targets (B, T): each item from a start frame (random when
    rng is given), with the rows before it as context and SILENCE_FLOOR before the stream."""
    segs = []
    for it in items:
        T = len(it.mask)
        s = 0
        if rng is not None and T > 8:
            s = int(rng.integers(0, max(1, T // 2)))
        e = min(T, s + max_frames)
        lo = s - ctx
        rows = it.feats[SUBFRAMES * max(lo, 0) : SUBFRAMES * e].astype(np.float32)
        if lo < 0:
            rows = np.concatenate([np.full((SUBFRAMES * -lo, N_MELS), SILENCE_FLOOR, np.float32), rows])
        y = np.where(it.mask[s:e], it.y, IGNORE)
        segs.append((rows, y))
    L = max(len(y) for _, y in segs)
    X = np.full((len(segs), SUBFRAMES * (ctx + L), N_MELS), SILENCE_FLOOR, np.float32)
    Y = np.full((len(segs), L), IGNORE, np.int64)
    for b, (rows, y) in enumerate(segs):
        X[b, : len(rows)] = rows
        Y[b, : len(y)] = y
    return torch.from_numpy(X), torch.from_numpy(Y)


def spec_augment(X: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    X = X.clone()
    for b in range(X.shape[0]):
        for _ in range(2):
            w = int(rng.integers(0, 9))
            f0 = int(rng.integers(0, N_MELS - w + 1))
            if w:
                X[b, :, f0 : f0 + w] = X[b, :, f0 : f0 + w].mean()
    return X


def evaluate_items(model: AffectNet, items: list[Item], n_labels: int, bs: int = 64):
    """Class-balanced frame loss (mean over classes of the mean frame cross-entropy), frame UAR
    and clip UAR (argmax of the mean probability over speech frames) on clean items."""
    model.eval()
    lossf = nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="none")
    cls_loss, cls_n = np.zeros(n_labels), np.zeros(n_labels)
    fcm = np.zeros((n_labels, n_labels))
    ccm = np.zeros((n_labels, n_labels))
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
                ccm[it.y, P[b][m].mean(0).argmax()] += 1
    def uar(cm: np.ndarray) -> float:
        seen = cm.sum(1) > 0
        return float(np.mean(cm.diagonal()[seen] / cm.sum(1)[seen]))

    present = cls_n > 0
    return float(np.mean(cls_loss[present] / cls_n[present])), uar(fcm), uar(ccm)


# ---------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--corpora", nargs="*", default=None, help="corpus folders under the data root "
                    f"(default: {' '.join(AFFECT_CORPORA)}; no names = none)")
    ap.add_argument("--manifest", action="append", default=[], help="extra manifest.csv (repeatable)")
    ap.add_argument("--mapping", type=Path, default=None, help="JSON {manifest label: model label or null}, merged over the built-in mapping; null leaves that label out")
    ap.add_argument("--bg-corpora", nargs="*", default=list(BG_CORPORA),
                    help="background corpora for noise mixing (no names = white noise only)")
    ap.add_argument("--versions", type=int, default=6, help="1 clean + N-1 augmented copies per clip")
    ap.add_argument("--speed", type=float, default=0.1, help="speed perturbation: factor in 1 +- SPEED")
    ap.add_argument("--level", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="augmented copies get an absolute level: the clip's 95th-percentile frame level "
                         "drawn from U(LO, HI) dBFS (default: a relative gain of -25..+6 dB)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-2)
    ap.add_argument("--channels", type=int, default=CHANNELS)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--ensemble", type=int, default=1, help="average N models trained with different seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: the bundled one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    m = MODELS[a.model]
    labels = m["labels"]
    K = len(labels)
    corpora = list(AFFECT_CORPORA) if a.corpora is None else a.corpora
    mapping = mapping_for(a.model, a.mapping)
    clips, all_clips = load_affect(corpora, a.manifest, mapping, labels)
    train = [(c, y) for c, y in clips if c.split == "train"]
    val = [(c, y) for c, y in clips if c.split == "val"]
    print(f"{len(train)} train / {len(val)} val clips from {corpora} + {a.manifest}; per class train "
          f"{np.bincount([y for _, y in train], minlength=K).tolist()} val "
          f"{np.bincount([y for _, y in val], minlength=K).tolist()}", flush=True)
    t0 = time.time()
    items = build_items(train + val, all_clips, a.versions, a.bg_corpora, a.seed, a.speed,
                        tuple(a.level) if a.level else None)
    tr_items = [row[: len(train)] for row in items]
    va_items = items[0][len(train) :]
    print(f"features ready in {time.time() - t0:.0f}s", flush=True)

    # normalisation constants from speech frames of the training versions (stored in the graph)
    rows = np.concatenate([it.feats.reshape(-1, SUBFRAMES, N_MELS)[it.mask].reshape(-1, N_MELS)
                           for row in tr_items for it in row[::7]]).astype(np.float32)
    ys = np.array([y for _, y in train])
    counts = np.bincount(ys, minlength=K)
    # every (corpus, class) cell gets the same share, so that no class is told apart by its
    # corpus (e.g. EmoDB is most of "low", RAVDESS most of "neutral")
    cell = [(c.corpus, y) for c, y in train]
    n_cell = {k: cell.count(k) for k in set(cell)}
    w = np.array([1.0 / n_cell[k] for k in cell])
    w /= w.sum()
    model, best, best_epoch, history = train_one(a, K, train, tr_items, va_items, w, rows, a.seed, t0)
    members = [model]
    for seed in range(1, a.ensemble):
        print(f"ensemble member {seed}", flush=True)
        members.append(train_one(a, K, train, tr_items, va_items, w, rows, a.seed + seed, t0)[0])
    if len(members) > 1:
        model = Ensemble(members).eval()
        best = evaluate_items(model, va_items, K)
        print(f"ensemble of {len(members)}: val loss {best[0]:.3f} frame UAR {best[1]:.3f} clip UAR {best[2]:.3f}",
              flush=True)
    folder = a.out or REPO / "deeptone_async" / "models" / a.model
    folder.mkdir(parents=True, exist_ok=True)
    export(model, m, folder)
    from .export import check_folder, check_torch_vs_ort

    diff = check_torch_vs_ort(model, folder / "model.onnx")
    checks = check_folder(folder)
    checks.update(torch_vs_ort_max_abs_diff=diff, params=n_params(model), epochs=a.epochs, best_epoch=best_epoch,
                  best_val_loss=best[0], best_val_frame_uar=best[1], best_val_clip_uar=best[2],
                  train_seconds=round(time.time() - t0), corpora=corpora, manifests=a.manifest,
                  mapping={k: v for k, v in mapping.items() if k not in labels}, versions=a.versions,
                  bg_corpora=a.bg_corpora, channels=a.channels, dropout=a.dropout, lr=a.lr,
                  weight_decay=a.weight_decay, ensemble=a.ensemble, speed=a.speed, level=a.level, n_train_clips=len(train), n_val_clips=len(val),
                  train_class_counts=dict(zip(labels, counts.tolist())), history=history)
    (folder / "train_info.json").write_text(json.dumps(checks, indent=1) + "\n")
    print(json.dumps({k: v for k, v in checks.items() if k != "history"}, indent=1), flush=True)


def train_one(a, K: int, train, tr_items, va_items, w: np.ndarray, rows: np.ndarray, seed: int, t0: float):
    """One model: (model at its best epoch, (val loss, frame UAR, clip UAR), best epoch, history)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AffectNet(K, channels=a.channels, dropout=a.dropout, mean=rows.mean(0), std=rows.std(0) + 1e-3)
    assert model.context_frames == CONTEXT
    print(f"params {n_params(model)}  context_frames {model.context_frames}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    lossf = nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=0.1)
    steps_per_epoch = max(1, len(train) // a.batch)
    total = steps_per_epoch * a.epochs
    best, best_state, best_epoch, step, history = (9e9, 0.0, 0.0), None, -1, 0, []
    for ep in range(a.epochs):
        model.train()
        tl = []
        for _ in range(steps_per_epoch):
            lr = a.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = rng.choice(len(train), size=a.batch, p=w)
            vers = rng.integers(0, a.versions, size=a.batch)
            X, Y = make_batch([tr_items[v][i] for i, v in zip(idx, vers)], model.context_frames, rng)
            X = spec_augment(X, rng)
            lg = model.logits(X)
            loss = lossf(lg.reshape(-1, K), Y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            tl.append(loss.item())
        vloss, vfuar, vcuar = evaluate_items(model, va_items, K) if va_items else (float("nan"), 0.0, 0.0)
        tag = ""
        if not va_items or vloss < best[0]:
            best, best_state, best_epoch, tag = (vloss, vfuar, vcuar), copy.deepcopy(model.state_dict()), ep, " *"
        history.append({"epoch": ep, "train_loss": float(np.mean(tl)), "val_loss": vloss, "val_frame_uar": vfuar,
                        "val_clip_uar": vcuar})
        print(f"epoch {ep} t {time.time() - t0:.0f}s loss {np.mean(tl):.3f} val loss {vloss:.3f} "
              f"frame UAR {vfuar:.3f} clip UAR {vcuar:.3f}{tag}", flush=True)
    model.load_state_dict(best_state)
    model.eval()
    return model, best, best_epoch, history


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


def export(model: AffectNet, m: dict, folder: Path) -> None:
    from .export import export_onnx

    export_onnx(model, folder / "model.onnx")
    spec = {
        "name": m["name"], "key": m["key"], "kind": "logmel", "labels": m["labels"], "onnx": "model.onnx",
        "receptive_field_ms": 64 * (model.context_frames + 1), "context_frames": model.context_frames,
        "unknown_threshold": None, "voice": True, "card": "card.md", "description": m["description"],
    }
    (folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")


if __name__ == "__main__":
    main()
