"""Robustness of the AudioEvent model on real-world channels, through the public engine API.

    nice -n 10 python -m training.robustness_audio_event              # -> training/robustness/audio_event/
    python -m training.robustness_audio_event --folder DIR --out DIR  # a retrained candidate

The conditions are :func:`training.robustness.degrade`'s (by default clean; telephone:
8 kHz G.712 band-pass + mu-law handed to the engine at 8 kHz; codec: Opus 8 kbit/s; reverb: a
simulated room, RT60 0.4-0.8 s; noise and music of the val splits at 10 dB SNR; ``--conditions``
adds the 0 dB ones), applied to every
val clip of the human-sound classes (each alone) and a seeded sample of ``--max-bg`` val speech,
music and noise clips. Each degraded clip goes through ``Deeptone().process_audio_bytes``
(``output_period=64``, raw values on, volume gate at -60 dBFS). Per condition:

* clip ROC-AUC per human-sound class: a clip's score is its highest raw score of the class,
  positives the clips of the class, negatives every other clip;
* detection: share of the human-sound clips the engine labels with their class somewhere;
* false alarms: share of the speech / music / noise clips labelled with a human-sound class
  somewhere (clips are 2-30 s long).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import augment as A
from .data import REPO, Clip
from .evaluate import roc_auc
from .evaluate_audio_event import val_clips
from .event_mixing import CLASSES, CORPORA, EVENTS, SHORT, Pools
from .robustness import CONDITIONS, VOLUME_THRESHOLD, degrade

OUT = REPO / "training" / "robustness" / "audio_event"
#: the issue's conditions: clean, telephone, codec, reverb, noise, music (10 dB)
DEFAULT_CONDITIONS = ("clean", "telephone", "codec", "reverb", "noise_10dB", "music_10dB")


def clips_for(val: Pools, max_bg: int, seed: int = 0) -> list[tuple[Clip, str]]:
    """(clip, role) of every val human-sound clip and ``max_bg`` seeded val background clips."""
    items = [(c, k) for k in ("pos", "neg", "nat") for c in val.events[k]]
    bgs = [(c, k) for k in ("speech", "music", "noise") for c in val.bgs[k]]
    rng = np.random.default_rng(seed)
    if max_bg and len(bgs) > max_bg:
        bgs = [bgs[i] for i in sorted(rng.choice(len(bgs), max_bg, replace=False))]
    return items + bgs


def evaluate(folder: Path | None, items: list[tuple[Clip, str]], items_bg: list[Clip],
             conditions: tuple[str, ...] = CONDITIONS, seed: int = 0) -> dict[str, Any]:
    """Every condition's metrics (module docstring); backgrounds of the noise and music conditions from
    the val noise and music clips of ``items_bg``. Blocks for the whole run (minutes)."""
    from .evaluate_audio_event import FOLDER, engine_with

    engine = engine_with(folder or FOLDER)
    handle = engine.models.AudioEvent
    bgs = A.Backgrounds.from_clips([c for c in items_bg if c.corpus in ("noise", "music")], split="val")
    policy = A.POLICIES["vad"]  # noise and music may go under any clip: human sounds stay what they are
    res: dict[str, Any] = {}

    async def one(c: Clip, cond: str) -> tuple[np.ndarray, list[str]] | None:
        h = degrade(cond, c, bgs, policy, seed)
        if h is None:
            return None
        out = await engine.process_audio_bytes(h.audio, [handle], output_period=64, include_raw_values=True,
                                               rate_in=h.rate, volume_threshold=VOLUME_THRESHOLD)
        ts = out["time_series"]
        raw = np.array([[r["raw"][handle.key][lab] for lab in CLASSES] for r in ts], np.float32).reshape(-1, len(CLASSES))
        return raw, [r["results"][handle.key]["result"] for r in ts]

    for cond in conditions:
        t0 = time.time()
        roles, scores, found, alarms = [], [], [], []
        for c, role in items:
            got = asyncio.run(one(c, cond))
            if got is None:
                continue
            raw, labs = got
            roles.append(role)
            scores.append(raw.max(axis=0) if len(raw) else np.zeros(len(CLASSES)))
            if role in SHORT:
                found.append(CLASSES[SHORT[role]] in labs)
            else:
                alarms.append(any(lab in EVENTS for lab in labs))
        r_arr, s_arr = np.array(roles), np.stack(scores)
        r: dict[str, Any] = {
            "clip_roc_auc": {CLASSES[k]: roc_auc(s_arr[:, k], r_arr == short) for short, k in SHORT.items()},
            "detection": float(np.mean(found)) if found else float("nan"),
            "false_alarm_clips": float(np.mean(alarms)) if alarms else float("nan"),
            "n_event_clips": len(found), "n_background_clips": len(alarms), "seconds": round(time.time() - t0, 1),
        }
        res[cond] = r
        print(cond, r, flush=True)
    return res


def to_markdown(res: dict[str, Any]) -> str:
    conds = res["conditions"]
    L = ["# Robustness: audio_event", "", f"Command: `{res['command']}`", "",
         "| condition | clips (events / other) | laughter AUC | crying/screaming AUC | coughing/sneezing AUC | "
         "detection | false-alarm clips |", "|---|---|---|---|---|---|---|"]
    clean = conds.get("clean")
    for cond, r in conds.items():
        a = r["clip_roc_auc"]
        d = "" if clean is None or cond == "clean" else f" ({r['detection'] - clean['detection']:+.3f})"
        L.append(f"| {cond} | {r['n_event_clips']} / {r['n_background_clips']} | {a['pos_human_sounds']:.3f} | "
                 f"{a['neg_human_sounds']:.3f} | {a['nat_human_sounds']:.3f} | {r['detection']:.3f}{d} | "
                 f"{r['false_alarm_clips']:.3f} |")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=None, help="a candidate model folder (default: the bundled one)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--max-bg", type=int, default=200, help="val speech / music / noise clips (0: all)")
    ap.add_argument("--conditions", nargs="*", default=list(DEFAULT_CONDITIONS))
    a = ap.parse_args()
    clips = val_clips(list(CORPORA))
    val = Pools.of(clips)
    items = clips_for(val, a.max_bg)
    res = {"command": "python -m training.robustness_audio_event" + (f" --max-bg {a.max_bg}" if a.max_bg != 200 else ""),
           "conditions": evaluate(a.folder, items, clips, tuple(a.conditions))}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "robustness.json").write_text(json.dumps(res, indent=1) + "\n")
    (a.out / "robustness.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
