"""Train one model and export it into its model folder.

    nice -n 10 python -m training.train --model speech     [--minutes 10]
    nice -n 10 python -m training.train --model speech_rt  [--minutes 15]
    nice -n 10 python -m training.train --model gender     [--minutes 14]
    nice -n 10 python -m training.train --model underage_speaker --threads 1 --workers 1   [--minutes 25]

Data: ``--corpora`` (names under the data root, ``$DEEPTONE_DATA``, default
``<repo>/../shared/data``) and/or ``--manifest PATH`` (repeatable; your own manifest.csv with
the same columns: file, label, split, and gender for the gender model). Training uses the
``train`` split; the ``val`` split of the same data picks the best checkpoint.

Commercial users: the default corpora include non-commercial data (ravdess CC BY-NC-SA, part
of noise and music CC BY-NC) and research-only data (emodb). To train on permissive data only:

    python -m training.train --model gender --corpora librispeech commonvoice vctk
    python -m training.train --model speech --corpora librispeech commonvoice vctk \
        --manifest /path/to/your/permissive_music/manifest.csv --manifest /path/to/noise/manifest.csv

(``--out DIR`` writes the model elsewhere than the bundled folder.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .chain_rows import chain_rows
from .data import (
    CACHE,
    GENDER_CORPORA,
    REPO,
    SMO_CORPORA,
    UNDERAGE,
    UNDERAGE_CORPORA,
    load_corpora,
    smo_usable,
    split,
)
from .export import (
    check_folder,
    check_torch_vs_ort,
    ensemble_from_onnx,
    export_onnx,
    onnx_members,
    state_from_onnx,
)
from .nets import CausalTCN, ProbAverage, n_params, state_stem2d, state_width, widen_state
from .sampler import ATTRS, GENDERS, IGNORE, SMO, Sampler, TaskCfg, attr_index, precompute_rows

MODELS = {
    "speech": dict(
        name="Speech", key="speech", labels=list(SMO), voice=False, speech_label="speech",
        channels=128, blocks=[(3, 1), (3, 2), (3, 4), (3, 1)], task=TaskCfg("smo", 16, 16, hangover=7, fast_frac=0.7, p_chain=0.6),
        corpora=SMO_CORPORA, minutes=10.0, chain_copies=1, chain_reuse_gender=True,
        description="Speech / music / other, 1.09 s receptive field (speech over music is speech)",
    ),
    "speech_rt": dict(
        name="SpeechRT", key="speech-rt", labels=list(SMO), voice=False, speech_label="speech",
        channels=96, stem2d=16, blocks=[(2, 1), (1, 1), (1, 1)],
        task=TaskCfg("smo", 1, 24, hangover=1, fast_frac=0.7, p_chain=0.6), corpora=SMO_CORPORA, minutes=15.0,
        chain_copies=1, chain_pool="speech", chain_reuse_gender=True,
        description="Low-latency speech / music / other, 128 ms receptive field",
    ),
    "gender": dict(
        name="Gender", key="gender", labels=list(GENDERS), voice=True, speech_label=None,
        channels=64, blocks=[(3, 1), (3, 2), (3, 4), (3, 8), (3, 8), (2, 1)],
        task=TaskCfg("gender", 47, 16, hangover=2, p_bg=0.4, snr=(5.0, 30.0), fast_frac=0.7, p_chain=0.6),
        corpora=(*GENDER_CORPORA, "music", "noise"), minutes=14.0, chain_copies=1,
        description="Speaker gender (male / female) of speech, 3.07 s receptive field",
    ),
    # the gender model's corpora in its order: the augmentation-chain rows of Gender's training
    # clips (same clips, same voice policy) are reused from its cache (``chain_pool``)
    "underage_speaker": dict(
        name="UnderageSpeaker", key="underage-speaker", labels=list(UNDERAGE), voice=True, speech_label=None,
        channels=64, blocks=[(3, 1), (3, 2), (2, 1), (2, 1)],
        task=TaskCfg("underage", 8, 16, hangover=2, p_bg=0.4, snr=(5.0, 30.0), fast_frac=0.7, p_chain=0.6),
        corpora=(*GENDER_CORPORA, "music", "noise"), minutes=25.0, chain_copies=1, chain_pool="gender",
        description="Child (about 12 or younger) or adult speaker of speech, 576 ms receptive field",
    ),
}


# what train_info.json records of each run (and keeps of the runs a resumed run continues)
RUN_KEYS = ("train_steps", "train_seconds", "best_val_balanced_acc_crops", "lr", "fast_frac", "seed", "batch",
            "channels", "widened_from_channels", "stem2d", "p_bg", "snr", "p_chain", "chain_copies",
            "bn_frozen", "corpora")


def net_config(name: str, channels: int | None = None, stem2d: int | None = None) -> dict:
    """``MODELS[name]`` with its width and 2-D stem overridden where given. With a stem, the first
    block gives up the frame of context the stem takes, so the receptive field stays the model's."""
    m = dict(MODELS[name])
    if channels is not None:
        m["channels"] = channels
    if stem2d is not None:
        m["stem2d"] = stem2d
    if m.get("stem2d"):
        k, d = m["blocks"][0]
        if d != 1 or k < 2:
            raise ValueError(f"a 2-D stem needs a first block of kernel >= 2 and dilation 1, not {(k, d)}")
        m["blocks"] = [(k - 1, 1), *m["blocks"][1:]]
    return m


class Stream(IterableDataset):
    def __init__(self, clips, cfg: TaskCfg, batch: int, seed: int, rows=None, chain_rows=None) -> None:
        self.clips, self.cfg, self.bs, self.seed, self.rows = clips, cfg, batch, seed, rows
        self.chain_rows = chain_rows

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        s = Sampler(self.clips, self.cfg, seed=self.seed + (info.id if info else 0), rows=self.rows,
                    chain_rows=self.chain_rows)
        while True:
            f, y = s.batch(self.bs)
            yield torch.from_numpy(f), torch.from_numpy(y)


def write_model(model: torch.nn.Module, name: str, folder: Path) -> dict:
    """Export ``model`` (a trained net of ``MODELS[name]``) into ``folder`` with its spec.json,
    and return the export checks (onnxruntime vs torch, streaming, size, speed)."""
    m = MODELS[name]
    cfg: TaskCfg = m["task"]
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model, folder / "model.onnx")
    diff = check_torch_vs_ort(model, folder / "model.onnx")
    spec = {
        "name": m["name"], "key": m["key"], "kind": "logmel", "labels": m["labels"], "onnx": "model.onnx",
        "receptive_field_ms": 64 * (cfg.context_frames + 1), "context_frames": cfg.context_frames,
        "unknown_threshold": None, "voice": m["voice"], "speech_label": m["speech_label"],
        "card": "card.md", "description": m["description"],
    }
    old = folder / "spec.json"
    if old.exists() and cfg.task in ATTRS:  # keep a threshold chosen earlier until re-chosen
        spec["unknown_threshold"] = json.loads(old.read_text()).get("unknown_threshold")
    (folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    checks = check_folder(folder)
    checks["torch_vs_ort_max_abs_diff"] = diff
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--corpora", nargs="*", default=None, help="corpus folders under the data root")
    ap.add_argument("--manifest", action="append", default=[], help="extra manifest.csv (repeatable)")
    ap.add_argument("--minutes", type=float, default=None, help="training wall-clock budget")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: the bundled one)")
    ap.add_argument("--fast-frac", type=float, default=None,
                    help="share of feature-domain (fast) examples; default per model")
    ap.add_argument("--p-bg", type=float, default=None, metavar="P",
                    help="share of speech crops with noise or music mixed under them (default: the model's)")
    ap.add_argument("--snr", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="SNR range in dB for that mixing (default: the model's, 0 25 for speech / speech_rt)")
    ap.add_argument("--stem2d", type=int, default=None, metavar="CH",
                    help="put CH-channel 2-D time-frequency convolutions before the patchify conv (0: none); "
                         "they take one frame of context from the first block")
    ap.add_argument("--channels", type=int, default=None,
                    help="network width (default: the model's; a resumed narrower checkpoint is widened to it)")
    ap.add_argument("--resume-from", type=Path, default=None, metavar="CKPT",
                    help="--resume from this checkpoint (its history: the .json beside it), or from an "
                         "exported model.onnx (its history: the train_info.json beside it; the BatchNorms "
                         "stay frozen, their statistics being folded into the graph)")
    ap.add_argument("--chain-copies", type=int, default=None, metavar="N",
                    help="augmentation-chain copies of each training clip, precomputed as log-mel rows "
                         "(training.chain_rows; default: the model's, 0 for none)")
    ap.add_argument("--p-chain", type=float, default=None, metavar="P",
                    help="share of feature-domain examples cropped from those copies (default: the model's)")
    ap.add_argument("--keep", metavar="TAG", default=None,
                    help="also keep this run as training/cache/<model>.<TAG>.pt/.json (for training.ensemble)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from training/cache/<model>.pt (saved by the previous run)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    try:
        m = net_config(a.model, a.channels, a.stem2d)
    except ValueError as e:
        raise SystemExit(f"--stem2d: {e}") from None
    cfg: TaskCfg = m["task"]
    corpora = m["corpora"] if a.corpora is None else a.corpora
    if cfg.task == "gender":
        corpora = [c for c in corpora if c in GENDER_CORPORA or c in ("music", "noise")]
    elif cfg.task in ATTRS:
        corpora = [c for c in corpora if c in (*GENDER_CORPORA, *UNDERAGE_CORPORA, "music", "noise")]
    clips = load_corpora(corpora, a.manifest)
    if cfg.task == "smo":
        clips = [c for c in clips if smo_usable(c)]
    train, val = split(clips, "train"), split(clips, "val")
    print(f"{len(train)} train / {len(val)} val clips from {corpora} + {a.manifest}", flush=True)

    if a.fast_frac is not None:
        cfg = dataclasses.replace(cfg, fast_frac=a.fast_frac)
    if a.p_bg is not None:
        cfg = dataclasses.replace(cfg, p_bg=a.p_bg)
    if a.snr is not None:
        cfg = dataclasses.replace(cfg, snr=(a.snr[0], a.snr[1]))
    if a.p_chain is not None:
        cfg = dataclasses.replace(cfg, p_chain=a.p_chain)
    copies = m.get("chain_copies", 0) if a.chain_copies is None else a.chain_copies
    if not copies or not cfg.fast_frac:
        cfg = dataclasses.replace(cfg, p_chain=0.0)
    t_rows = time.time()
    rows = precompute_rows(train) if cfg.fast_frac > 0 else None  # shared with workers by fork
    print(f"precomputed log-mel rows in {time.time() - t_rows:.0f}s", flush=True)
    crows = None
    if cfg.p_chain > 0:  # the clips the sampler draws, through the augmentation chain
        chain_as = m.get("chain_pool", a.model)  # whose pool (and cache) of chain rows
        crows = {}
        if chain_as == "gender" or (cfg.task == "smo" and m.get("chain_reuse_gender")):
            # Gender's pool, in its order: its cached rows (voice policy: every background keeps
            # speech speech, so they hold for speech / music / other too)
            pool = [c for c in train if c.cls == "speech" and c.gender in GENDERS and c.corpus in GENDER_CORPORA]
            crows = chain_rows(pool, "gender", copies=copies, seed=a.seed, workers=max(a.workers, 1),
                               backgrounds=train)
        if chain_as != "gender":
            if cfg.task in ATTRS:
                pool = [c for c in train if c.cls == "speech" and attr_index(cfg.task, c) >= 0]
            else:
                pool = [c for c in train if id(c) not in crows]
            crows |= chain_rows(pool, chain_as, copies=copies, seed=a.seed, workers=max(a.workers, 1),
                                backgrounds=train)
    # feature statistics (of augmented training crops) go inside the graph
    f0, _ = Sampler(train, cfg, seed=a.seed + 99, rows=rows, chain_rows=crows).batch(256)
    flat = f0.reshape(-1, f0.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-3
    model = CausalTCN(len(m["labels"]), m["channels"], m["blocks"], mean, std, stem2d=m.get("stem2d", 0))
    ckpt = CACHE / f"{a.model}.pt"
    widened_from = None
    start = a.resume_from or ckpt
    resume = a.resume or a.resume_from is not None
    from_onnx = resume and start.suffix == ".onnx"
    prev_info = start.parent / "train_info.json" if from_onnx else start.with_suffix(".json")
    # a state made from an exported graph has its BatchNorms folded: they stay frozen in every run after
    freeze_bn = from_onnx or (resume and prev_info.exists() and json.loads(prev_info.read_text()).get("bn_frozen"))
    widths = onnx_members(start) if from_onnx else []
    if widths:  # an ensemble graph (training.ensemble): its members train together as one model
        if m.get("stem2d"):
            raise SystemExit("resuming an ensemble graph of networks with a 2-D stem is not supported")
        members = [CausalTCN(len(m["labels"]), w, m["blocks"]) for w in widths]
        ensemble_from_onnx(start, members)
        model = ProbAverage(members).eval()
        check_torch_vs_ort(model, start)  # the members reproduce the graph
        print(f"resumed the {len(widths)}-member ensemble {widths} from {start}", flush=True)
    elif from_onnx:
        state = state_from_onnx(start, model)  # includes the feature mean/std constants
    elif resume:
        state = torch.load(start)  # includes the feature mean/std buffers
    if resume and not widths:
        width = state_width(state)
        if width > m["channels"]:
            raise SystemExit(f"{start} has {width} channels, more than the {m['channels']} asked for (--channels)")
        if state_stem2d(state) != m.get("stem2d", 0):
            raise SystemExit(f"{start} has a 2-D stem of {state_stem2d(state)} channels, the run asks for "
                             f"{m.get('stem2d', 0)} (--stem2d)")
        if width < m["channels"]:  # a checkpoint of a narrower net: widen it, same function
            state, widened_from = widen_state(state, m["channels"], seed=a.seed), width
            print(f"widened the checkpoint from {width} to {m['channels']} channels", flush=True)
        model.load_state_dict(state)
        print(f"resumed from {start}", flush=True)
    assert model.context_frames == cfg.context_frames
    print(f"params {n_params(model)}  context_frames {model.context_frames}", flush=True)

    # fixed validation batches: val clips, same mixing, no channel/gain augmentation
    # (the model's own mixing, whatever --p-bg / --snr say, so that runs stay comparable)
    vcfg = dataclasses.replace(m["task"], channel=False, gain_db=(0.0, 0.0), fast_frac=0.0)
    vs = Sampler(val, vcfg, seed=1234)
    vbatches = [vs.batch(64) for _ in range(12)]

    loader = DataLoader(Stream(train, cfg, a.batch, a.seed, rows, crows), batch_size=None, num_workers=a.workers,
                        prefetch_factor=4 if a.workers else None, persistent_workers=bool(a.workers))
    minutes = a.minutes or m["minutes"]
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-3)
    lossf = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    t0, step, best, best_state = time.time(), 0, (-1.0, 9.9), None
    budget = minutes * 60
    for f, y in loader:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        lr = a.lr * min(1.0, (step + 1) / (20 if resume else 100)) * 0.5 * (1 + np.cos(np.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        if freeze_bn:  # BatchNorm statistics are folded into the exported graph: keep them fixed
            for mod in model.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        logits = model.logits(f)
        loss = lossf(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                vl = []
                per = np.zeros((len(m["labels"]), 2))
                for vf, vy in vbatches:
                    lg = model.logits(torch.from_numpy(vf))
                    vy_t = torch.from_numpy(vy)
                    vl.append(float(lossf(lg.reshape(-1, lg.shape[-1]), vy_t.reshape(-1))))
                    pred = lg.argmax(-1).numpy()
                    for k in range(len(m["labels"])):
                        mk = vy == k
                        per[k] += [(pred[mk] == k).sum(), mk.sum()]
                bacc = float(np.mean(per[:, 0] / np.maximum(per[:, 1], 1)))
                vloss = float(np.mean(vl))
            tag = ""
            if (bacc, -vloss) > (best[0], -best[1]):
                best, best_state, tag = (bacc, vloss), copy.deepcopy(model.state_dict()), " *"
            print(f"step {step} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.3f} "
                  f"val loss {vloss:.3f} val bal.acc {bacc:.4f}{tag}", flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), ckpt)
    print(f"trained {step} steps in {time.time() - t0:.0f}s; best val bal.acc {best[0]:.4f}", flush=True)

    folder = a.out or REPO / "deeptone_async" / "models" / a.model
    checks = write_model(model, a.model, folder)
    checks.update(params=n_params(model), train_steps=step,
                  train_seconds=round(time.time() - t0), corpora=list(corpora), manifests=a.manifest,
                  best_val_balanced_acc_crops=best[0], lr=a.lr, fast_frac=cfg.fast_frac, seed=a.seed,
                  p_bg=cfg.p_bg, snr=list(cfg.snr), p_chain=cfg.p_chain, chain_copies=copies if cfg.p_chain else 0,
                  batch=a.batch, channels=widths or m["channels"], **({"stem2d": m["stem2d"]} if m.get("stem2d") else {}))
    if widened_from is not None:
        checks["widened_from_channels"] = widened_from
    if freeze_bn:
        checks["bn_frozen"] = True
    if from_onnx:
        where = start.resolve()
        checks["resumed_from"] = str(where.relative_to(REPO) if where.is_relative_to(REPO) else where)
    # the history of the runs this one continues travels with the checkpoint (whatever --out was)
    history = ckpt.with_suffix(".json")
    if not prev_info.exists():
        prev_info = folder / "train_info.json"
    if resume and prev_info.exists():
        old_info = json.loads(prev_info.read_text())
        checks["previous_runs"] = old_info.pop("previous_runs", []) + [
            {k: old_info[k] for k in RUN_KEYS if k in old_info}]
        checks["resumed_lr"] = a.lr
        if "ensemble" in old_info:  # the members' own runs (training.ensemble) travel on
            checks["resumed_ensemble"] = old_info["ensemble"]
    for info_path in (folder / "train_info.json", history):
        info_path.write_text(json.dumps(checks, indent=1) + "\n")
    if a.keep:  # a named copy of this run's checkpoint and history, e.g. for training.ensemble
        shutil.copyfile(ckpt, CACHE / f"{a.model}.{a.keep}.pt")
        shutil.copyfile(history, CACHE / f"{a.model}.{a.keep}.json")
    print(json.dumps(checks, indent=1), flush=True)


if __name__ == "__main__":
    main()
