"""Train the AudioEvent model (DeepTone's ``audio-event``) and export it into its model folder.

    nice -n 10 python -m training.audio_event                      # -> deeptone_async/models/audio_event/
    nice -n 10 python -m training.audio_event --minutes 5 --pool 200 --out /tmp/ae   # a quick pipeline check
    nice -n 10 python -m training.audio_event --resume --minutes 10 # continue from training/cache/audio_event.pt

Network: the shared causal valid TCN (:class:`training.nets.CausalTCN`, the Speech model's
shape: 128 channels, blocks (3,1) (3,2) (3,4) (3,1), 16 frames of context = 1088 ms receptive
field, DeepTone's is 1082 ms) with one *sigmoid* per class instead of a softmax
(:class:`MultiLabelTCN`): the six scores are independent, several can be high at once.
Loss: binary cross-entropy per class and frame, frames and classes without a target left out.

Data (:mod:`training.event_mixing`): human sounds of ``vocalizations``, ``esc50``, ``noise``
(infant cries) and ``emospeech`` (screams) mixed into speech (the speech corpora and
emospeech's spoken words), music and noise backgrounds of the training split. Half of the
examples are mixed in the feature domain from fresh random plans (a quarter of those
band-limited like a telephone), half are cropped from a pool of waveform mixtures sent
through the augmentation chain (:mod:`training.augment`: rooms, microphone EQ, clipping,
levels, telephone, Opus, MP3), rendered once and cached. The best checkpoint by validation
(group-disjoint val split, fixed mixtures) is exported; ``python -m training.evaluate_audio_event
--choose-thresholds`` then sets the per-class thresholds in ``spec.json``.

The weights depend on non-commercial data (vocalizations CC BY-NC-ND, esc50 CC BY-NC,
emospeech CC BY-NC-SA, part of noise CC BY-NC, ravdess CC BY-NC-SA, emodb research only).
Permissive data only (no laughter corpus is permissive here: bring your own manifest, labels
as in ``event_mixing.role``: e.g. ``laugh``, ``cry``, ``cough``, ``sneeze``)::

    nice -n 10 python -m training.audio_event --corpora librispeech commonvoice vctk \\
        --manifest /path/to/permissive_events/manifest.csv --manifest /path/to/permissive_music/manifest.csv \\
        --out my_audio_event
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .data import CACHE, REPO, load_corpora, split
from .evaluate import roc_auc
from .event_mixing import CLASSES, CORPORA, EventSampler, Pools, chained_pool, draw_plan, render_rows, targets
from .export import check_folder, check_torch_vs_ort, export_onnx
from .nets import CausalTCN, n_params
from .sampler import precompute_rows

RECIPE = dict(channels=128, blocks=[(3, 1), (3, 2), (3, 4), (3, 1)], n=16, batch=64, lr=4e-3, minutes=40.0,
              pool=4000, pool_frames=48, p_pool=0.5, p_band=0.25)
BACKGROUND = ("speech", "music", "noise")  # decision priority when no human sound is above its threshold
FOLDER = REPO / "deeptone_async" / "models" / "audio_event"
SPEC = {"name": "AudioEvent", "key": "audio-event", "kind": "logmel", "labels": list(CLASSES),
        "onnx": "model.onnx", "unknown_threshold": None, "voice": False, "speech_label": None,
        "card": "card.md",
        "description": "Human sounds (laughter, crying/screaming, coughing/sneezing), speech, music, noise; "
                       "independent scores, 1.09 s receptive field"}


class MultiLabelTCN(CausalTCN):
    """:class:`CausalTCN` with an independent sigmoid per class (output ``probs`` in [0, 1])."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


def val_batches(val: Pools, rows: dict[int, np.ndarray], ctx: int, n: int, count: int = 24,
                seed: int = 1234) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed validation mixtures of the val split (feature domain, no gain or band limit)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        fs, ys = [], []
        for _ in range(64):
            p = draw_plan(rng, val, ctx + n, ctx, augment=False)
            fs.append(render_rows(p, rows, rng))
            ys.append(targets(p)[ctx:])
        out.append((np.stack(fs), np.stack(ys)))
    return out


class _Batches(IterableDataset):
    """Endless training batches (drawn in a DataLoader worker: sampling overlaps training)."""

    def __init__(self, sampler: EventSampler, size: int) -> None:
        self.sampler, self.size = sampler, size

    def __iter__(self):
        while True:
            f, y = self.sampler.batch(self.size)
            yield torch.from_numpy(f), torch.from_numpy(y)


def cached_rows(clips: list) -> dict[int, np.ndarray]:
    """log-mel rows (float16) of every clip, keyed by ``id(clip)``; cached in
    ``training/cache/audioevent-rows-<key>.npz`` (minutes to compute on busy cores)."""
    h = hashlib.sha1()
    for c in clips:
        h.update(f"{c.corpus}/{c.file}/{len(c.audio)};".encode())
    path = CACHE / f"audioevent-rows-{h.hexdigest()[:10]}.npz"
    if path.exists():
        z = np.load(path)
        offs, flat = z["offsets"], z["rows"]
        return {id(c): flat[offs[i] : offs[i + 1]] for i, c in enumerate(clips)}
    rows = precompute_rows(clips)
    arrs = [rows[id(c)].astype(np.float16) for c in clips]
    offs = np.concatenate([[0], np.cumsum([len(r) for r in arrs])]).astype(np.int64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, offsets=offs, rows=np.concatenate(arrs))
    return {id(c): r for c, r in zip(clips, arrs)}


def masked_bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m = (y >= 0).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y.clamp(min=0), reduction="none")
    return (loss * m).sum() / m.sum().clamp(min=1)


def validate(model: MultiLabelTCN, vb: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, list[float]]:
    """(validation loss, score, per-class frame ROC-AUC); score = mean AUC of the three human
    sound classes plus mean AUC of speech / music / noise, halved."""
    model.eval()
    losses, ps, ys = [], [], []
    with torch.no_grad():
        for f, y in vb:
            lg = model.logits(torch.from_numpy(f))
            losses.append(float(masked_bce(lg, torch.from_numpy(y))))
            ps.append(torch.sigmoid(lg).reshape(-1, len(CLASSES)).numpy())
            ys.append(y.reshape(-1, len(CLASSES)))
    p, y = np.concatenate(ps), np.concatenate(ys)
    aucs = [roc_auc(p[y[:, k] >= 0, k], y[y[:, k] >= 0, k] > 0.5) for k in range(len(CLASSES))]
    score = 0.5 * (float(np.nanmean(aucs[:3])) + float(np.nanmean(aucs[3:])))
    return float(np.mean(losses)), score, aucs


def write_model(model: MultiLabelTCN, folder: Path) -> dict:
    """Export ``model`` into ``folder`` with its spec.json (thresholds kept from an earlier
    spec there, else 0.5 until chosen) and return the export checks."""
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model, folder / "model.onnx")
    diff = check_torch_vs_ort(model, folder / "model.onnx")
    spec = dict(SPEC, receptive_field_ms=64 * (model.context_frames + 1), context_frames=model.context_frames)
    old = folder / "spec.json"
    thresholds = dict.fromkeys(CLASSES, 0.5)
    if old.exists():
        thresholds.update(json.loads(old.read_text()).get("multi_label", {}).get("thresholds", {}))
    spec["multi_label"] = {"thresholds": thresholds, "background_labels": list(BACKGROUND)}
    old.write_text(json.dumps(spec, indent=2) + "\n")
    checks = check_folder(folder)
    checks["torch_vs_ort_max_abs_diff"] = diff
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", nargs="*", default=None, help="corpus folders under the data root")
    ap.add_argument("--manifest", action="append", default=[], help="extra manifest.csv (repeatable)")
    ap.add_argument("--minutes", type=float, default=RECIPE["minutes"])
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--pool", type=int, default=RECIPE["pool"], help="chained waveform examples (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes that render the chained pool")
    ap.add_argument("--loader-workers", type=int, default=1, help="processes that draw training batches")
    ap.add_argument("--out", type=Path, default=FOLDER)
    ap.add_argument("--resume", action="store_true", help="continue from training/cache/audio_event.pt")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    t_start = time.time()
    corpora = list(CORPORA) if a.corpora is None else a.corpora
    clips = load_corpora(corpora, a.manifest)
    train, val = Pools.of(split(clips, "train")), Pools.of(split(clips, "val"))
    print(f"train {train.counts()}\nval {val.counts()}", flush=True)
    used = [c for p in (train, val) for d in (p.events, p.bgs) for v in d.values() for c in v]
    rows = cached_rows(used)
    print(f"log-mel rows of {len(used)} clips in {time.time() - t_start:.0f}s", flush=True)
    ctx = sum((k - 1) * d for k, d in RECIPE["blocks"])
    n = RECIPE["n"]
    pool = chained_pool(train, a.pool, RECIPE["pool_frames"], ctx, a.seed, a.workers) if a.pool else None
    sampler = EventSampler(train, rows, ctx, n, a.seed, pool, RECIPE["p_pool"], RECIPE["p_band"])
    f0, _ = sampler.batch(256)
    flat = f0.reshape(-1, f0.shape[-1])
    model = MultiLabelTCN(len(CLASSES), RECIPE["channels"], RECIPE["blocks"], flat.mean(0), flat.std(0) + 1e-3)
    ckpt = CACHE / "audio_event.pt"
    prev: list[dict] = []
    if a.resume:
        model.load_state_dict(torch.load(ckpt))
        info = ckpt.with_suffix(".json")
        if info.exists():
            old = json.loads(info.read_text())
            prev = old.pop("previous_runs", []) + [{k: old[k] for k in ("train_steps", "train_seconds", "lr",
                                                                         "best_val_score") if k in old}]
        print(f"resumed from {ckpt}", flush=True)
    assert model.context_frames == ctx
    print(f"params {n_params(model)} context_frames {ctx}", flush=True)
    vb = val_batches(val, rows, ctx, n)
    batches = iter(DataLoader(_Batches(sampler, RECIPE["batch"]), batch_size=None, num_workers=a.loader_workers,
                              prefetch_factor=4 if a.loader_workers else None))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-3)
    budget, t0, step = a.minutes * 60, time.time(), 0
    best, best_state, best_aucs = -1.0, None, None
    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        lr = a.lr * min(1.0, (step + 1) / (20 if a.resume else 100)) * 0.5 * (1 + np.cos(np.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        f, y = next(batches)
        model.train()
        loss = masked_bce(model.logits(f), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            vloss, score, aucs = validate(model, vb)
            tag = ""
            if score > best:
                best, best_state, best_aucs, tag = score, copy.deepcopy(model.state_dict()), aucs, " *"
                CACHE.mkdir(parents=True, exist_ok=True)
                torch.save(best_state, ckpt)
            print(f"step {step} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.4f} val loss {vloss:.4f} "
                  f"score {score:.4f} auc {' '.join(f'{x:.3f}' for x in aucs)}{tag}", flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    torch.save(model.state_dict(), ckpt)
    checks = write_model(model, a.out)
    checks.update(params=n_params(model), train_steps=step, train_seconds=round(time.time() - t0),
                  corpora=corpora, manifests=a.manifest, best_val_score=best,
                  best_val_frame_auc=dict(zip(CLASSES, best_aucs or [])), lr=a.lr, seed=a.seed,
                  recipe={k: v for k, v in RECIPE.items() if k != "minutes"}, pool=a.pool,
                  train_clips=train.counts(), val_clips=val.counts())
    if prev:
        checks["previous_runs"] = prev
    for p in (a.out / "train_info.json", ckpt.with_suffix(".json")):
        p.write_text(json.dumps(checks, indent=1) + "\n")
    print(json.dumps(checks, indent=1), flush=True)


if __name__ == "__main__":
    main()
