"""Train and export the two affect models, Arousal and Emotions: the training loop and the CLI.

    # issue 14 recipes (the shared augmentation chain; baved and emospeech added); see each card
    nice -n 10 python -m training.affect --model arousal --augment chain --epochs 30 --channels 64 \
        --dropout 0.2 --weight-decay 1e-2 --ensemble 2 --threads 1 --workers 2
    python -m training.evaluate_affect --model arousal          # eval.json / eval.md (val split)
    python -m training.affect_card arousal                      # card.md from the JSON results

    # the first bundled recipes (private effect set, RAVDESS + EmoDB)
    nice -n 10 python -m training.affect --model arousal --augment legacy --corpora ravdess emodb \
        --epochs 60 --channels 64 --dropout 0.2 --weight-decay 1e-2 --level -50 -5 --ensemble 3

    # check a recipe on the training speakers alone (K-fold, speaker-grouped; nothing exported):
    # pooled out-of-fold clip UAR, per corpus and gender -> OUT/cv.json
    python -m training.affect --model emotions ... --cv 4 --out runs/affect/emotions-cv
    # --calibrate K: the same check first, then the model, with the class log-weights that
    # maximise the out-of-fold clip UAR baked into the graph (calibration.json beside it)

    # cross-corpus runs (train without a corpus, test on it with training.evaluate_affect)
    python -m training.affect --model arousal --corpora ravdess emodb emospeech --out runs/affect/arousal-no-baved

    # your own data: a manifest.csv (file, label, split, gender) whose labels are corpus emotion
    # names (angry, happy, sad, ...), the model's own labels (high / neutral / low), or anything
    # mapped by --mapping my_map.json ({"my label": "high", ...}); --corpora with no names drops
    # the shared corpora (do this for commercial use: ravdess is CC BY-NC-SA, emodb research-only)
    python -m training.affect --model arousal --corpora --manifest my/manifest.csv --out my_arousal

The parts: ``training.affect_data`` (corpora, label maps, augmented versions, batches),
``training.affect_net`` (the network, ensemble, prior bias, export), ``training.affect_metrics``
(loss, UAR, confusion, prior-bias fit); the augmentation chain is the shared ``training.augment``,
the ONNX export and its checks the shared ``training.export``.

Recipe: each clip is labelled by its model's mapping (clips whose emotion does not map cleanly
are left out); its *speech frames* (``training.data.active_frames`` on the clean clip plus 2
frames of hangover, and not below the -60 dBFS volume gate of what the model hears) carry the
clip's label, every other frame is ignored by the loss. ``--versions`` versions of every training
clip are made once and cached (version 0 clean; ``--augment``, see ``training.affect_data``).
Features come from ``deeptone_async.features.logmel`` over the whole clip with zero history,
exactly as the engine computes them. Training feeds whole clips (from a random start frame, the
rows before it as context, SILENCE_FLOOR rows before the stream start), clip sampling balanced
over (corpus, class) cells, SpecAugment frequency masks, label smoothing, dropout, AdamW weight
decay, and keeps the epoch with the lowest validation loss (val split, clean audio).

``--ensemble N`` trains N such models with different seeds and exports one graph that averages
their probabilities.

``--cv K`` checks a recipe without looking at the val split: the training speakers are dealt to
K folds (each corpus spread over all of them), one model is trained per fold with that fold held
out, and the held-out clips' predictions are pooled. ``--calibrate K`` runs that check and then
fits ``prior_bias``, one log-weight per class, on the pooled out-of-fold clip probabilities so
that their clip UAR is highest; the exported graph multiplies its probabilities by exp(prior_bias)
and renormalises. ``--aux W`` adds a training-only head that predicts each clip's own emotion, so
the emotions the mapping leaves out still train the shared layers. ``--cmn FRAMES`` subtracts from
each log-mel row the mean of the last FRAMES frames. ``--adv-speaker W`` trains the auxiliary head
on the training speaker through a gradient reversal. ``--init-from STATE`` starts every network
from a state of ``training.affect_pretrain``; the head's class layer starts afresh.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptone_async.features import N_MELS, SUBFRAMES

from .affect_data import (
    AFFECT_CORPORA,
    AROUSAL_MAP,
    AUGMENTS,
    BG_CORPORA,
    CHAIN_BG_CORPORA,
    EMOTIONS_MAP,
    FINE,
    MODELS,
    Item,
    build_items,
    corpora_for,
    load_affect,
    make_batch,
    mapping_for,
    speaker_folds,
    speaker_of,
    spec_augment,
    speech_mask,
)
from .affect_metrics import apply_bias, clip_confusion, evaluate_items, fit_prior_bias, frame_probs, uar_of
from .affect_net import (
    BLOCKS,
    CHANNELS,
    CONTEXT,
    POOL,
    AffectNet,
    Ensemble,
    PriorBias,
    export,
    freeze_batchnorm,
    init_from,
    init_from_onnx,
    pretrain_info,
    remove_causal_mean,
)
from .data import REPO, Clip
from .nets import n_params
from .sampler import IGNORE

__all__ = [  # the names other modules (robustness, evaluate_affect, affect_card, tests) import from here
    "AFFECT_CORPORA", "AROUSAL_MAP", "BG_CORPORA", "EMOTIONS_MAP", "BLOCKS", "CHANNELS", "MODELS", "POOL", "AffectNet", "PriorBias", "apply_bias",
    "build_items", "clip_confusion", "corpora_for", "fit_prior_bias", "init_from", "load_affect", "mapping_for",
    "speaker_folds", "speaker_of", "speech_mask", "speech_rows", "train_one", "uar_of",
]

# ---------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--corpora", nargs="*", default=None, help="corpus folders under the data root "
                    "(default: the model's, MODELS[model]['corpora']; no names = none)")
    ap.add_argument("--manifest", action="append", default=[], help="extra manifest.csv (repeatable)")
    ap.add_argument("--mapping", type=Path, default=None, help="JSON {manifest label: model label or null}, merged over the built-in mapping; null leaves that label out")
    ap.add_argument("--augment", choices=AUGMENTS, default="chain",
                    help="chain: speed perturbation + the shared training.augment chain (issue 14); legacy: the "
                         "first bundled models' private effect set")
    ap.add_argument("--bg-corpora", nargs="*", default=None,
                    help=f"background corpora (default: {' '.join(CHAIN_BG_CORPORA)} for the chain, "
                         f"{' '.join(BG_CORPORA)} for legacy; no names = no background (legacy: white noise))")
    ap.add_argument("--workers", type=int, default=1, help="processes that build the chain versions (once)")
    ap.add_argument("--versions", type=int, default=6, help="1 clean + N-1 augmented copies per clip")
    ap.add_argument("--p-clean", type=float, default=None, metavar="P",
                    help="draw the clean version of a training clip with probability P, an augmented one otherwise "
                         "(default: every version alike)")
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
                         "layers before the head must fit (same --channels); the head's class layer starts afresh. "
                         "An exported model.onnx (e.g. the bundled one): network k starts from its network k "
                         "(BatchNorm folded and frozen), the class layer too when it fits")
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: the bundled one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    m = MODELS[a.model]
    labels = m["labels"]
    K = len(labels)
    corpora = corpora_for(a.model) if a.corpora is None else a.corpora
    if a.bg_corpora is None:
        a.bg_corpora = list(CHAIN_BG_CORPORA if a.augment == "chain" else BG_CORPORA)
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
    init_model = None  # what train_info.json said of an exported model we start from
    if a.init_from is not None and a.init_from.suffix == ".onnx":
        meta = a.init_from.parent / "train_info.json"
        init_model = ({k: v for k, v in json.loads(meta.read_text()).items() if k != "history"}
                      if meta.exists() else {"train_info": "none beside it"})
    t0 = time.time()
    items = build_items(train + val, all_clips, a.versions, a.bg_corpora, a.seed, a.speed,
                        tuple(a.level) if a.level else None, fine, a.augment, a.workers)
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
                  augment=a.augment, p_clean=a.p_clean, bg_corpora=a.bg_corpora, channels=a.channels, dropout=a.dropout, lr=a.lr,
                  weight_decay=a.weight_decay, ensemble=a.ensemble, speed=a.speed, level=a.level,
                  **({"balance_gender": True} if a.balance_gender else {}),
                  **({"init_from": str(a.init_from), "pretrain": pretrain_info(a.init_from)}
                     if a.init_from and a.init_from.suffix != ".onnx" else {}),
                  **({"init_from": str(a.init_from), "init_model": init_model} if init_model else {}),
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
    onnx_start = getattr(a, "init_from", None) is not None and Path(a.init_from).suffix == ".onnx"
    if onnx_start:  # e.g. the bundled model: network (seed - a.seed) of its ensemble
        init_from_onnx(model, a.init_from, seed - a.seed)
    elif getattr(a, "init_from", None) is not None:
        init_from(model, a.init_from)
    print(f"params {n_params(model)}  context_frames {model.context_frames}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    lossf = nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=0.1)
    steps_per_epoch = max(1, len(train) // a.batch)
    total = steps_per_epoch * a.epochs
    best, best_state, best_epoch, step, history = (9e9, 0.0, 0.0), None, -1, 0, []
    for ep in range(a.epochs):
        model.train()
        if onnx_start:
            freeze_batchnorm(model)
        tl = []
        for _ in range(steps_per_epoch):
            lr = a.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = rng.choice(len(train), size=a.batch, p=w)
            vers = rng.integers(0, a.versions, size=a.batch)
            if getattr(a, "p_clean", None) is not None and a.versions > 1:  # clean version with this probability
                vers = np.where(rng.random(a.batch) < a.p_clean, 0, rng.integers(1, a.versions, size=a.batch))
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



if __name__ == "__main__":
    main()
