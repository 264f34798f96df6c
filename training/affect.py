"""Train and export the two affect models, Arousal and Emotions, from acted emotional speech.

    # the bundled models (each ~10-15 min on 2 busy CPU cores); -> deeptone_async/models/<model>/
    nice -n 10 python -m training.affect --model arousal --epochs 60 --channels 64 --dropout 0.2 \
        --weight-decay 1e-2 --level -50 -5 --ensemble 3
    nice -n 10 python -m training.affect --model emotions --epochs 60 --channels 96 --dropout 0.1 \
        --weight-decay 1e-2 --level -50 -5 --ensemble 3
    python -m training.evaluate_affect --model arousal          # eval.json / eval.md (val split)
    python -m training.affect_card arousal                      # card.md from the JSON results

    # check a recipe on the training speakers alone (K-fold, speaker-grouped; nothing exported):
    # pooled out-of-fold clip UAR, per corpus and gender -> OUT/cv.json
    python -m training.affect --model emotions --epochs 60 --channels 96 --dropout 0.1 \
        --weight-decay 1e-2 --level -50 -5 --cv 4 --out runs/affect/emotions-cv
    # --calibrate K: the same check first, then the model, with the class log-weights that
    # maximise the out-of-fold clip UAR baked into the graph (calibration.json beside it)

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

``--cv K`` checks a recipe without looking at the val split: the training speakers are dealt to
K folds (each corpus spread over all of them), one model is trained per fold with that fold held
out, and the held-out clips' predictions are pooled. ``--calibrate K`` runs that check and then
fits ``prior_bias``, one log-weight per class, on the pooled out-of-fold clip probabilities so
that their clip UAR is highest (the model's class balance is otherwise set by the balanced
sampling and the loss, which need not give the best UAR on unseen speakers); the exported graph
multiplies its probabilities by exp(prior_bias) and renormalises. ``--aux W`` adds a
training-only head that predicts each clip's own emotion, so the emotions the mapping leaves
out still train the shared layers.
``--cmn FRAMES`` subtracts from each log-mel row the mean of the last FRAMES frames (a causal
per-band normalisation against speaker and channel; widens the receptive field by FRAMES).
``--adv-speaker W`` trains the auxiliary head on the training speaker through a gradient
reversal (speaker-adversarial training). Both were tried for Emotions and are not used (card).
``--init-from STATE`` starts every network from a state of ``training.affect_pretrain`` (the same
network trained to tell the read-speech corpora's speakers apart); the head's class layer starts afresh.

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

# Auxiliary task (``--aux``): every clip of the emotion corpora, including the emotions the
# mapping leaves out, keeps its own emotion as a second target, so that fear, surprise and
# disgust clips still teach the shared layers about vocal expression. Corpus spellings of the
# same emotion are merged; other labels (a user's manifest) are used as they are.
FINE = {"angry": "anger", "happy": "happiness", "sad": "sadness", "fearful": "fear", "surprised": "surprise"}

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


# ---------------------------------------------------------------------------------- data


@dataclass
class Item:
    clip: int  # index into the clip list
    y: int  # class index (IGNORE: a clip only the auxiliary task uses)
    feats: np.ndarray  # (4T, 64) float16
    mask: np.ndarray  # (T,) bool: speech frames that carry the label
    ya: int = IGNORE  # auxiliary (fine emotion) class index


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
                seed: int, speed: float = 0.1, level: tuple[float, float] | None = None,
                fine: list[str] | None = None) -> list[list[Item]]:
    """Items[version][i] for the labelled ``clips`` (a subset of ``all_clips``); with ``fine``
    (the auxiliary classes) each item also gets its fine emotion index."""
    where = {id(c): i for i, c in enumerate(all_clips)}
    corpora = sorted({c.corpus for c in all_clips})
    vers = {}
    for name in corpora:
        group = [c for c in all_clips if c.corpus == name]
        vs = build_versions(group, versions, bg_corpora, seed, name, speed, level)
        for j, c in enumerate(group):
            vers[id(c)] = [vs[v][j] for v in range(versions)]
    def ya(c: Clip) -> int:
        return fine.index(FINE.get(c.label, c.label)) if fine else IGNORE

    return [[Item(where[id(c)], y, *vers[id(c)][v], ya(c)) for c, y in clips] for v in range(versions)]


def make_batch(items: list[Item], ctx: int, rng: np.random.Generator | None, max_frames: int = 96,
               aux: bool = False):
    """Inputs (B, 4*(ctx+T), 64) and targets (B, T): each item from a start frame (random when
    rng is given), with the rows before it as context and SILENCE_FLOOR before the stream.
    With ``aux``, also the auxiliary targets (B, T)."""
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
        ya = np.where(it.mask[s:e], it.ya, IGNORE)
        segs.append((rows, y, ya))
    L = max(len(y) for _, y, _ in segs)
    X = np.full((len(segs), SUBFRAMES * (ctx + L), N_MELS), SILENCE_FLOOR, np.float32)
    Y = np.full((len(segs), L), IGNORE, np.int64)
    YA = np.full((len(segs), L), IGNORE, np.int64)
    for b, (rows, y, ya) in enumerate(segs):
        X[b, : len(rows)] = rows
        Y[b, : len(y)] = y
        YA[b, : len(ya)] = ya
    if aux:
        return torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(YA)
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
    ap.add_argument("--aux", type=float, default=0.0, metavar="WEIGHT",
                    help="auxiliary task with this loss weight (0: off): a second, training-only head "
                         "predicts every clip's own emotion, the emotions the mapping leaves out included")
    ap.add_argument("--balance-gender", action="store_true",
                    help="sample (corpus, class, gender) cells equally instead of (corpus, class) cells")
    ap.add_argument("--cv", type=int, default=0, metavar="K",
                    help="check a recipe instead of making a model: K-fold speaker-grouped cross-validation "
                         "on the train split (one model per fold, --ensemble ignored, nothing exported; "
                         "results in OUT/cv.json when --out is given)")
    ap.add_argument("--calibrate", type=int, default=0, metavar="K",
                    help="run the --cv K check first and bake its prior_bias (class log-weights that "
                         "maximise the out-of-fold clip UAR) into the exported model; the check's "
                         "results go to calibration.json in the model folder")
    ap.add_argument("--cmn", type=int, default=0, metavar="FRAMES",
                    help="subtract from each log-mel row the mean of its last FRAMES frames (widens the receptive field)")
    ap.add_argument("--adv-speaker", type=float, default=0.0, metavar="WEIGHT",
                    help="speaker-adversarial training: a head learns the training speaker through a gradient "
                         "reversal, so the shared layers unlearn speaker identity (not in the exported graph)")
    ap.add_argument("--init-from", type=Path, default=None, metavar="STATE",
                    help="start every network from this AffectNet state (training.affect_pretrain): all "
                         "layers before the head must fit (same --channels); the head's class layer starts afresh")
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
    fine: list[str] | None = None
    if a.aux:  # the clips the mapping leaves out join training for the auxiliary task only
        clips += [(c, IGNORE) for c in all_clips if mapping.get(c.label) not in labels]
        fine = sorted({FINE.get(c.label, c.label) for c, _ in clips})
        print(f"auxiliary classes ({a.aux:g} x loss): {fine}", flush=True)
    train = [(c, y) for c, y in clips if c.split == "train"]
    val = [(c, y) for c, y in clips if c.split == "val" and y != IGNORE]
    counts = np.bincount([y for _, y in train if y != IGNORE], minlength=K)
    print(f"{int(counts.sum())} train / {len(val)} val clips from {corpora} + {a.manifest}"
          f"{f' (+{len(train) - int(counts.sum())} auxiliary-only train clips)' if a.aux else ''}; per class "
          f"train {counts.tolist()} val {np.bincount([y for _, y in val], minlength=K).tolist()}", flush=True)
    t0 = time.time()
    items = build_items(train + val, all_clips, a.versions, a.bg_corpora, a.seed, a.speed,
                        tuple(a.level) if a.level else None, fine)
    tr_items = [row[: len(train)] for row in items]
    va_items = items[0][len(train) :]
    print(f"features ready in {time.time() - t0:.0f}s", flush=True)
    n_aux = len(fine) if fine else 0
    if a.adv_speaker:  # the auxiliary target becomes the training speaker
        if a.aux:
            raise SystemExit("--adv-speaker and --aux both use the auxiliary head; pick one")
        index = {s: k for k, s in enumerate(sorted({speaker_of(c) for c, _ in train}))}
        for row in tr_items:
            for it, (c, _) in zip(row, train):
                it.ya = index[speaker_of(c)]
        n_aux = len(index)
        print(f"speaker-adversarial head over {n_aux} training speakers ({a.adv_speaker:g} x loss)", flush=True)
    if a.cv:
        res = cross_validate(a, a.cv, labels, train, tr_items, n_aux, t0)
        if a.out is not None:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / "cv.json").write_text(json.dumps(res, indent=1) + "\n")
        return
    calibration = cross_validate(a, a.calibrate, labels, train, tr_items, n_aux, t0) if a.calibrate else None

    model, best, best_epoch, history = fit(a, K, train, tr_items, va_items, a.seed, t0, n_aux)
    members = [model]
    for seed in range(1, a.ensemble):
        print(f"ensemble member {seed}", flush=True)
        members.append(fit(a, K, train, tr_items, va_items, a.seed + seed, t0, n_aux)[0])
    if len(members) > 1:
        model = Ensemble(members).eval()
        best = evaluate_items(model, va_items, K)
        print(f"ensemble of {len(members)}: val loss {best[0]:.3f} frame UAR {best[1]:.3f} clip UAR {best[2]:.3f}",
              flush=True)
    if calibration is not None:
        model = PriorBias(model, calibration["prior_bias"]).eval()
        best = evaluate_items(model, va_items, K)
        print(f"with prior bias {calibration['prior_bias']}: val loss {best[0]:.3f} frame UAR {best[1]:.3f} "
              f"clip UAR {best[2]:.3f}", flush=True)
    folder = a.out or REPO / "deeptone_async" / "models" / a.model
    folder.mkdir(parents=True, exist_ok=True)
    export(model, m, folder)
    if calibration is not None:
        (folder / "calibration.json").write_text(json.dumps(calibration, indent=1) + "\n")
    else:
        (folder / "calibration.json").unlink(missing_ok=True)
    from .export import check_folder, check_torch_vs_ort

    diff = check_torch_vs_ort(model, folder / "model.onnx")
    checks = check_folder(folder)
    params = sum(p.numel() for n, p in model.named_parameters() if "aux." not in n)  # as exported
    checks.update(torch_vs_ort_max_abs_diff=diff, params=params, epochs=a.epochs, best_epoch=best_epoch,
                  best_val_loss=best[0], best_val_frame_uar=best[1], best_val_clip_uar=best[2],
                  train_seconds=round(time.time() - t0), corpora=corpora, manifests=a.manifest,
                  mapping={k: v for k, v in mapping.items() if k not in labels}, versions=a.versions,
                  bg_corpora=a.bg_corpora, channels=a.channels, dropout=a.dropout, lr=a.lr,
                  weight_decay=a.weight_decay, ensemble=a.ensemble, speed=a.speed, level=a.level,
                  **({"balance_gender": True} if a.balance_gender else {}),
                  **({"init_from": str(a.init_from), "pretrain": pretrain_info(a.init_from)} if a.init_from else {}),
                  **({"aux": a.aux, "aux_classes": fine, "n_aux_only_train_clips": len(train) - int(counts.sum())}
                     if a.aux else {}),
                  n_train_clips=int(counts.sum()), n_val_clips=len(val),
                  **({"calibrate": a.calibrate, "prior_bias": calibration["prior_bias"]} if calibration else {}),
                  train_class_counts=dict(zip(labels, counts.tolist())), history=history)
    (folder / "train_info.json").write_text(json.dumps(checks, indent=1) + "\n")
    print(json.dumps({k: v for k, v in checks.items() if k != "history"}, indent=1), flush=True)


def speech_rows(items: list[list[Item]]) -> np.ndarray:
    """Log-mel rows of the speech frames of every 7th item of each version, (n, 64) float32:
    what the normalisation constants stored in the graph are computed from."""
    return np.concatenate([it.feats.reshape(-1, SUBFRAMES, N_MELS)[it.mask].reshape(-1, N_MELS)
                           for row in items for it in row[::7]]).astype(np.float32)


def fit(a, K: int, train, tr_items, va_items, seed: int, t0: float, n_aux: int = 0):
    """One model trained on ``train`` (with its item versions ``tr_items``), its epoch chosen on
    ``va_items``: (model, (val loss, frame UAR, clip UAR), best epoch, history)."""
    rows = speech_rows(tr_items)
    # every (corpus, class) cell gets the same share, so that no class is told apart by its
    # corpus (e.g. EmoDB is most of "low", RAVDESS most of "neutral"); auxiliary-only clips
    # form one cell per (corpus, fine emotion); --balance-gender splits every cell by gender
    cell = [(c.corpus, y if y != IGNORE else "aux:" + c.label) + ((c.gender,) if a.balance_gender else ())
            for c, y in train]
    n_cell = {k: cell.count(k) for k in set(cell)}
    w = np.array([1.0 / n_cell[k] for k in cell])
    w /= w.sum()
    return train_one(a, K, train, tr_items, va_items, w, rows, seed, t0, n_aux)


def cross_validate(a, folds_k: int, labels: list[str], train, tr_items, n_aux: int, t0: float) -> dict:
    """K-fold cross-validation over the training speakers (``--cv K`` / ``--calibrate K``):
    each corpus's speakers are shuffled and dealt round-robin to the folds, one model per fold.
    From the out-of-fold clips: the pooled clip confusion matrix and UARs (overall, per corpus,
    per gender), and the class bias that maximises the out-of-fold clip UAR (``prior_bias``)."""
    K = len(labels)
    fold_of = speaker_folds([c for c, _ in train], folds_k, a.seed)
    oof: list[tuple[Clip, int, int, np.ndarray]] = []  # (clip, truth, fold, frame probabilities)
    folds = []
    for k in range(folds_k):
        inside = [fold_of[(c.corpus, c.speaker)] == k for c, _ in train]
        tr = [i for i, f in enumerate(inside) if not f]
        va = [i for i, f in enumerate(inside) if f and train[i][1] != IGNORE]
        held = sorted({speaker_of(c) for (c, _), f in zip(train, inside) if f})
        print(f"fold {k}: held-out speakers {held}", flush=True)
        model = fit(a, K, [train[i] for i in tr], [[row[i] for i in tr] for row in tr_items],
                    [tr_items[0][i] for i in va], a.seed + 100 * k, t0, n_aux)[0]
        probs = frame_probs(model, [tr_items[0][i] for i in va])
        oof += [(train[i][0], train[i][1], k, p) for i, p in zip(va, probs)]
        fold_uar = uar_of(clip_confusion([(y, p) for _, y, f, p in oof if f == k], K))
        folds.append({"held_out": held, "clip_uar": fold_uar})
        print(f"fold {k}: clip UAR {fold_uar:.3f}", flush=True)
    groups: dict[str, list[tuple[int, np.ndarray]]] = {"all": []}
    for c, y, _, p in oof:
        for g in ("all", f"corpus={c.corpus}", f"gender={c.gender}"):
            groups.setdefault(g, []).append((y, p))
    bias = fit_prior_bias([(y, p) for _, y, _, p in oof], K)
    res = {"folds": folds,
           "pooled_clip_uar": {g: uar_of(clip_confusion(v, K)) for g, v in groups.items()},
           "mean_fold_clip_uar": float(np.mean([f["clip_uar"] for f in folds])),
           "std_fold_clip_uar": float(np.std([f["clip_uar"] for f in folds])),
           "confusion": clip_confusion(groups["all"], K).astype(int).tolist(), "labels": labels,
           "prior_bias": bias.tolist(),
           "pooled_clip_uar_with_prior_bias": {g: uar_of(clip_confusion(v, K, bias)) for g, v in groups.items()},
           "confusion_with_prior_bias": clip_confusion(groups["all"], K, bias).astype(int).tolist(),
           "recipe": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}}
    print(json.dumps({k: v for k, v in res.items() if k != "recipe"}, indent=1), flush=True)
    return res


def speaker_of(c: Clip) -> str:
    """A speaker's name across corpora (``"corpus:speaker"``): corpora number their speakers alike."""
    return f"{c.corpus}:{c.speaker}"


def speaker_folds(clips: list[Clip], k: int, seed: int) -> dict[tuple[str, str], int]:
    """(corpus, speaker) -> fold in 0..k-1: each corpus's speakers shuffled and dealt round-robin,
    continuing across corpora, so the folds get nearly equal shares of every corpus."""
    rng = np.random.default_rng(seed)
    fold_of: dict[tuple[str, str], int] = {}
    n = 0
    for corpus in sorted({c.corpus for c in clips}):
        for s in rng.permutation(sorted({c.speaker for c in clips if c.corpus == corpus})):
            fold_of[(corpus, str(s))] = n % k
            n += 1
    return fold_of


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


def masked_ce(lossf: nn.Module, lg: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the frames with a target; zero (not NaN) when a batch has none."""
    if not bool((Y != IGNORE).any()):
        return lg.sum() * 0.0
    return lossf(lg.reshape(-1, lg.shape[-1]), Y.reshape(-1))


def train_one(a, K: int, train, tr_items, va_items, w: np.ndarray, rows: np.ndarray, seed: int, t0: float,
              n_aux: int = 0):
    """One model: (model at its best epoch, (val loss, frame UAR, clip UAR), best epoch, history)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if a.cmn:  # normalisation constants of the rows as the network sees them
        rows = remove_causal_mean(torch.from_numpy(rows)[None], a.cmn * SUBFRAMES)[0].numpy()
    model = AffectNet(K, channels=a.channels, dropout=a.dropout, mean=rows.mean(0), std=rows.std(0) + 1e-3,
                      n_aux=n_aux, cmn_frames=a.cmn, reverse_aux=bool(a.adv_speaker))
    assert model.context_frames == CONTEXT + a.cmn
    if getattr(a, "init_from", None) is not None:
        init_from(model, a.init_from)
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
            batch = [tr_items[v][i] for i, v in zip(idx, vers)]
            if n_aux:
                X, Y, YA = make_batch(batch, model.context_frames, rng, aux=True)
                lg, la = model.logits_both(spec_augment(X, rng))
                loss = masked_ce(lossf, lg, Y) + (a.adv_speaker or a.aux) * masked_ce(lossf, la, YA)
            else:
                X, Y = make_batch(batch, model.context_frames, rng)
                loss = masked_ce(lossf, model.logits(spec_augment(X, rng)), Y)
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
