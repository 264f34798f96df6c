"""Pretrain the affect network's layers on speaker identification, for ``training.affect --init-from``.

    # the state the bundled Emotions model starts from (3 x ~25-40 min on 2 CPU cores)
    nice -n 10 python -m training.affect_pretrain --channels 96 --epochs 150 \
        --out training/cache/affect_pretrain_96_all.pt
    nice -n 10 python -m training.affect_pretrain --channels 96 --epochs 150 \
        --resume training/cache/affect_pretrain_96_all.pt --out training/cache/affect_pretrain_96_all300.pt
    nice -n 10 python -m training.affect_pretrain --channels 96 --epochs 150 --splits train val \
        --resume training/cache/affect_pretrain_96_all300.pt --out training/cache/affect_pretrain_96_trval450.pt

The emotion corpora have 34 actors; the read-speech corpora (LibriSpeech, Common Voice, VCTK)
have 1637 speakers in their train split and 1886 with their val split. An ``AffectNet`` with
the affect models' layers learns to tell those speakers apart from 2 s of speech (the same causal
receptive field, the same mean and mean-square pooling, its head over the speakers), on the same
kind of augmented copies the affect models train on (speed, noise/music, channel, absolute
level). Its state, the speaker head's last layer excepted, then initialises an affect model
(``--init-from``): the shared layers start from features of voice learnt on many more voices
than the actors'. Speaker embeddings carry emotion information, and emotion classifiers
initialised from speaker networks have done better than ones trained from scratch (Pappagari et
al. 2020, "X-vectors meet emotions", ICASSP).

No emotion corpus is used here (not even its speaker labels), so the affect model's validation
and cross-validation speakers stay unseen. Nothing is exported; the state goes to ``--out`` with
a JSON beside it (recipe, corpora, speakers, final training loss).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .affect import BG_CORPORA, build_items, speaker_of, speech_rows, train_one
from .data import CACHE, load_corpora

SPEECH_CORPORA = ("librispeech", "commonvoice", "vctk")


def splits_of(recipe: dict) -> list[str]:
    """The ``--splits`` of a run's JSON recipe (runs from before the option learnt the train split)."""
    return list(recipe.get("splits", ["train"]))


def same_speakers(prev: dict, corpora: list[str], splits: list[str], min_clips: int, n_speakers: int) -> bool:
    """Whether a run resumed from a state with JSON ``prev`` learns the same speakers (so the speaker
    layer carries over) or others (the layer starts afresh, which ``init_from`` does when its shape
    differs). SystemExit when the selection and the count disagree: then neither is safe."""
    pr = prev["recipe"]
    same = (pr["corpora"], splits_of(pr), pr["min_clips"]) == (corpora, splits, min_clips)
    if same != (prev["n_speakers"] == n_speakers):
        raise SystemExit(f"the state was trained on {prev['n_speakers']} speakers of {pr['corpora']} "
                         f"{splits_of(pr)} (min {pr['min_clips']} clips); these are {n_speakers} "
                         f"speakers of {corpora} {splits} (min {min_clips}): cannot tell whether the speaker "
                         f"layer carries over")
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", nargs="+", default=list(SPEECH_CORPORA))
    ap.add_argument("--splits", nargs="+", default=["train"], choices=["train", "val"],
                    help="splits of the read-speech corpora whose speakers are learnt (their val speakers "
                         "are not the affect models' val speakers: those are in the emotion corpora)")
    ap.add_argument("--min-clips", type=int, default=1, help="speakers with fewer clips are left out")
    ap.add_argument("--versions", type=int, default=3, help="1 clean + N-1 augmented copies per clip")
    ap.add_argument("--level", type=float, nargs=2, default=[-50.0, -5.0], metavar=("LO", "HI"))
    ap.add_argument("--speed", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--channels", type=int, default=96)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", type=Path, default=None, metavar="STATE",
                    help="continue from a state this script wrote; the lr schedule starts again. With "
                         "the same speakers the speaker layer is kept, with others (another --corpora, "
                         "--splits or --min-clips) it starts afresh")
    ap.add_argument("--out", type=Path, default=CACHE / "affect_pretrain.pt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    recipe = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}  # as given, for the JSON

    clips = [c for c in load_corpora(a.corpora) if c.split in a.splits and c.speaker]
    n_of = Counter(map(speaker_of, clips))
    clips = [c for c in clips if n_of[speaker_of(c)] >= a.min_clips]
    speakers = sorted({speaker_of(c) for c in clips})
    print(f"{len(clips)} clips of {len(speakers)} speakers from {a.corpora}", flush=True)
    index = {s: k for k, s in enumerate(speakers)}
    train = [(c, index[speaker_of(c)]) for c in clips]
    items = build_items(train, clips, a.versions, BG_CORPORA, a.seed, a.speed, tuple(a.level))
    print(f"features ready in {time.time() - t0:.0f}s", flush=True)
    rows = speech_rows(items)
    a.cmn, a.adv_speaker, a.aux = 0, 0.0, 0.0  # the options train_one reads beyond these
    a.init_from = a.resume
    before: list[float] = []
    prev: dict = {}
    if a.resume is not None:
        prev = json.loads(a.resume.with_suffix(".json").read_text())
        same = same_speakers(prev, a.corpora, a.splits, a.min_clips, len(speakers))
        print("same speakers: the speaker layer carries over" if same
              else f"other speakers ({prev['n_speakers']} before): the speaker layer starts afresh", flush=True)
        before = prev["history"]
    w = np.full(len(clips), 1.0 / len(clips))
    model, _, _, history = train_one(a, len(speakers), train, items, [], w, rows, a.seed, t0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), a.out)
    info = {"recipe": recipe,
            "n_clips": len(clips), "n_speakers": len(speakers), "train_seconds": round(time.time() - t0),
            "final_train_loss": history[-1]["train_loss"],
            "history": before + [h["train_loss"] for h in history],
            **({"resumed_from": {k: prev[k] for k in ("recipe", "train_seconds", "resumed_from") if k in prev}}
               if a.resume else {})}
    a.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {a.out} ({info['train_seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
