"""Write the AudioEvent model card from the committed results.

    python -m training.audio_event_card        # -> deeptone_async/models/audio_event/card.md

Reads ``spec.json``, ``train_info.json`` and ``eval.json`` of the model folder (written by
``training.audio_event`` and ``training.evaluate_audio_event``), the robustness results
``training/robustness/audio_event/robustness.json`` (``training.robustness_audio_event``) and
the speed figure in ``benchmarks/RESULTS.md`` is quoted from ``train_info.json``'s export check
(one ONNX Runtime thread, 64-frame chunks). Every figure in the card comes from those files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .data import REPO
from .event_mixing import CLASSES, EVENTS

FOLDER = REPO / "deeptone_async" / "models" / "audio_event"
ROBUST = REPO / "training" / "robustness" / "audio_event" / "robustness.json"
NAMES = {"pos_human_sounds": "laughter", "neg_human_sounds": "crying / screaming", "nat_human_sounds": "coughing / sneezing"}


def _f(x: float, nd: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{nd}f}"


def targets(ev: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, figure, met?, how far) rows."""
    rows = []
    for lab in EVENTS:
        a = ev["frame_auc"][lab]["roc_auc"]
        rows.append((f"frame ROC-AUC {lab} >= 0.95", _f(a, 4), "met" if a >= 0.95 else "missed",
                     "" if a >= 0.95 else f"by {0.95 - a:.4f}"))
    for name, r in ev["streams"].items():
        fa, rc = r["event_free"]["per_minute"], r["with_events"]["recall"]
        rows.append((f"false alarms <= 5 / min on {name}-only audio", f"{fa:.2f} / min ({r['event_free']['per_hour']:.0f} / h)",
                     "met" if fa <= 5 else "missed", "" if fa <= 5 else f"by {fa - 5:.2f} / min"))
        rows.append((f"event recall >= 85% over {name} at that threshold", f"{rc:.1%}", "met" if rc >= 0.85 else "missed",
                     "" if rc >= 0.85 else f"by {0.85 - rc:.1%} (points)"))
    for lab in EVENTS:
        a = ev["clip_auc"][lab]["roc_auc"]
        rows.append((f"clip ROC-AUC {lab} >= 0.95 (the target read per clip)", _f(a, 4), "met" if a >= 0.95 else "missed",
                     "" if a >= 0.95 else f"by {0.95 - a:.4f}"))
    vs = ev.get("vs_speech", {})
    for cond, r in vs.items():
        if isinstance(r, dict):
            d = r["audio_event"]["accuracy"] - r["speech"]["accuracy"]
            rows.append((f"speech/music/other accuracy >= Speech's ({cond})",
                         f"{r['audio_event']['accuracy']:.4f} vs {r['speech']['accuracy']:.4f}",
                         "met" if d >= 0 else "missed", "" if d >= 0 else f"by {-d:.4f}"))
    return rows


def why(info: dict) -> str:
    """Why the targets are missed: the training the shipped network had (from train_info.json)."""
    runs = [*info.get("previous_runs", []), info]
    steps = sum(r.get("train_steps", 0) for r in runs)
    minutes = sum(r.get("train_seconds", 0) for r in runs) / 60
    return (f"Why: the network is still undertrained: {steps} steps in {len(runs)} run(s), {minutes:.0f} min on one "
            "thread of a 2-core machine shared with other trainings (each run resumed from the best checkpoint "
            "of the one before: " + "; ".join(f"{r.get('train_steps')} steps, lr {r.get('lr')}, best val score "
                                             f"{r.get('best_val_score', float('nan')):.4f}" for r in runs)
            + "), against 41,314 steps for one member of the Speech ensemble (`models/speech/train_info.json`). "
            "`python -m training.audio_event --resume --minutes 40` continues it; the thresholds and every figure "
            "here are then to be remade with the commands above.")


def render(folder: Path, robust: Path) -> str:
    spec = json.loads((folder / "spec.json").read_text())
    info = json.loads((folder / "train_info.json").read_text())
    ev = json.loads((folder / "eval.json").read_text())
    th = spec["multi_label"]["thresholds"]
    L = [
        "# AudioEvent (`audio-event`)", "",
        "DeepTone's AudioEvent model: which sounds are in the audio, every 64 ms, with a receptive field of "
        f"{spec['receptive_field_ms']} ms (DeepTone: 1082 ms). Labels: `pos_human_sounds` (laughter), "
        "`neg_human_sounds` (crying, screaming), `nat_human_sounds` (coughing, sneezing), `speech`, `music`, "
        "`noise`, and `silence` from the volume gate.", "",
        "## Scores and the result", "",
        "One sigmoid per class: the six raw values are **independent** scores in [0, 1] that need not add up "
        "to 1, and several can be high at once (laughter over speech, a cough over music). A period's raw "
        "value is the mean score over its non-silent frames. Each frame's `result` follows the multi-label "
        "rule of `deeptone_async.multilabel` with the thresholds in `spec.json`:", "",
        "1. a human-sound class at or above its threshold: the one with the highest score / threshold wins, "
        "whatever speech, music and noise score;",
        "2. else the first of speech, music, noise at or above its threshold (speech over music over noise, "
        "as the Speech model decides);",
        "3. else whichever of speech, music, noise is closest to its threshold (highest score / threshold).", "",
        "The confidence is the winning class's score. Thresholds:", "",
        "| class | threshold |", "|---|---|",
        *[f"| {lab} | {th[lab]} |" for lab in CLASSES], "",
        f"The human-sound thresholds were chosen by `{ev['command']}` on the val split's event-free speech and "
        f"music streams (lowest threshold at which that class alone raises at most {ev['fa_budget_when_chosen']} "
        "false alarms per minute on each): the false-alarm figures below are on the streams they were chosen on; "
        "recall is not. Speech, music and noise keep 0.5.", "",
        "## Data", "",
        "Group-disjoint train / val splits of the shared corpora (`split` column). Human sounds: "
        "`vocalizations` (laugh -> laughter; cry, scream -> crying/screaming; cough, sneeze, throat_clear, "
        "nose_blow -> coughing/sneezing; moan left out; its other 8 classes (sigh, yawn, pant, lip and teeth "
        "sounds) are hard negatives labelled noise), `esc50` (laughing, crying_baby, coughing, sneezing; its other "
        "classes are noise), `noise` (donateacry infant cries -> crying; children_playing left out: unlabelled "
        "voices), `emospeech` (scream clips -> crying/screaming; its spoken command words are speech). "
        "Backgrounds: the speech corpora (librispeech, commonvoice, vctk, ravdess, emodb, emospeech), `music`, "
        "`noise`. Clips per role:", "",
        "| role | train | val |", "|---|---|---|",
        *[f"| {k} | {info['train_clips'][k]} | {info['val_clips'][k]} |" for k in info["train_clips"]], "",
        "Laughter is scarce: 28 training clips (21 vocalizations, 7 esc50) and 5 val clips, so its figures have "
        "wide error bars. The donateacry cries are 8 kHz band-limited and emospeech's screams come from other "
        "recording places than its speech: the feature-domain telephone band limit and the chain's telephone "
        "channel are there so that a band limit or a channel alone does not mean crying.", "",
        "## Training", "",
        "`nice -n 10 python -m training.audio_event` (recipe in `training/audio_event.py`, mixing in "
        "`training/event_mixing.py`): the shared causal valid TCN (`training.nets`, 128 channels, blocks (3,1) "
        "(3,2) (3,4) (3,1), 16 frames of context) with a sigmoid head, binary cross-entropy per class and frame. "
        "Each example is a background crop (speech, music, noise or none) with at most one human sound placed at "
        "a random time, -6 to 20 dB over the background, then a random gain; half are mixed in the feature "
        "domain (a quarter of those band-limited like a telephone), half cropped from "
        f"{info.get('pool', 0)} waveform mixtures sent through the augmentation chain (`training.augment`: "
        "rooms, microphone EQ, clipping, levels, telephone / Opus / MP3). Frame targets from the clean sources' "
        "energy: a human sound on its active frames + 192 ms; speech on the speech background's active frames + "
        "448 ms; music on music; noise on noise backgrounds and wherever nothing else is on.", "",
        f"Run: {info['train_steps']} steps in {info['train_seconds']} s on 1 thread of a shared 2-core machine"
        + (f", continuing {len(info['previous_runs'])} earlier run(s)" if info.get("previous_runs") else "")
        + f"; best val score {info['best_val_score']:.4f}. {info['params']} parameters, ONNX "
        f"{info['onnx_bytes'] / 1e6:.2f} MB, {info['us_per_frame_1thread_chunk64']:.1f} us per 64 ms frame on one "
        f"thread at export ({info['x_realtime']:.0f}x real time; the `process_file` figure is in "
        "`benchmarks/RESULTS.md`).", "",
        "## Results (val split)", "",
        f"From `{ev['command']}` (`eval.json`, `eval.md`).", "",
        "Frame ROC-AUC on val mixtures (every val human-sound clip over val speech, music, noise or nothing at "
        f"-6 to 20 dB, {ev['frame_auc']['examples']} mixtures, no channel effects):", "",
        "| class | ROC-AUC | positive frames |", "|---|---|---|",
        *[f"| {lab} | {_f(ev['frame_auc'][lab]['roc_auc'], 4)} | {ev['frame_auc'][lab]['positive_frames']} |"
          for lab in CLASSES], "",
        "Clip ROC-AUC (each val human-sound clip alone against every other val clip; a clip's highest frame score):", "",
        "| class | ROC-AUC | clips of the class | other clips |", "|---|---|---|---|",
        *[f"| {lab} ({NAMES[lab]}) | {_f(ev['clip_auc'][lab]['roc_auc'], 4)} | {ev['clip_auc'][lab]['positives']} | "
          f"{ev['clip_auc'][lab]['negatives']} |" for lab in EVENTS], "",
        "Events through the engine: the val speech clips and the val music clips as two streams, first without "
        "events (false alarms: runs of frames labelled with a human-sound class), then with every val human-sound "
        "clip inserted once, 6 s apart, 0-15 dB over the stream's level (an event is found when a frame from its "
        "start to 0.5 s after its end carries its class):", "",
        "| stream | minutes | false alarms / min | false alarms / hour | events | recall (its class) | "
        "recall (any human sound) |", "|---|---|---|---|---|---|---|",
    ]
    for name, r in ev["streams"].items():
        fa, rc = r["event_free"], r["with_events"]
        L.append(f"| {name} | {fa['minutes']} | {fa['per_minute']:.2f} | {fa['per_hour']:.0f} | {rc['events']} | "
                 f"{rc['recall']:.1%} | {rc['recall_any_human_sound']:.1%} |")
    L += ["", "Recall per class (speech stream / music stream): " + "; ".join(
        f"{lab} {ev['streams']['speech']['with_events']['by_class'][lab]['recall']:.0%} / "
        f"{ev['streams']['music']['with_events']['by_class'][lab]['recall']:.0%} "
        f"of {ev['streams']['speech']['with_events']['by_class'][lab]['events']}" for lab in EVENTS) + "."]
    if "vs_speech" in ev:
        vs = ev["vs_speech"]
        L += ["", f"Speech / music / other against the bundled Speech model, both in the same engine call on the "
              f"same frames ({vs['clips']} val clips of `training.evaluate --model speech`'s corpora, seeded "
              "sample; AudioEvent's noise and human sounds count as other):", "",
              "| condition | frames | Speech accuracy | AudioEvent accuracy | Speech macro F1 | AudioEvent macro F1 |",
              "|---|---|---|---|---|---|"]
        for cond, r in vs.items():
            if isinstance(r, dict):
                L.append(f"| {cond} | {r['frames']} | {r['speech']['accuracy']:.4f} | {r['audio_event']['accuracy']:.4f} | "
                         f"{r['speech']['macro_f1']:.4f} | {r['audio_event']['macro_f1']:.4f} |")
    L += ["", "## Targets (issue 15)", "", "| target | figure | | |", "|---|---|---|---|",
          *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(ev)], "",
          why(info)]
    base = robust.parent / "baseline_eval.json"
    if base.exists():  # the model this one replaced: its eval.json, same command
        b = json.loads(base.read_text())
        L += ["", "The model this one replaced (`training/robustness/audio_event/baseline_eval.json`): frame ROC-AUC "
              + ", ".join(f"{lab} {b['frame_auc'][lab]['roc_auc']:.4f}" for lab in EVENTS) + "; event recall "
              + " / ".join(f"{b['streams'][s]['with_events']['recall']:.1%}" for s in ("speech", "music"))
              + " at " + " / ".join(f"{b['streams'][s]['event_free']['per_minute']:.2f}" for s in ("speech", "music"))
              + " false alarms per minute (speech / music streams)."]
    if robust.exists():
        rb = json.loads(robust.read_text())
        L += ["", "## Robustness", "", f"`{rb['command']}` (`training/robustness/audio_event/`): every val human-sound "
              "clip alone and a seeded sample of val speech, music and noise clips under `training.robustness`'s "
              "conditions, through the engine. Clip ROC-AUC per class (a clip's highest raw score), detection (share "
              "of human-sound clips labelled with their class somewhere; change from clean) and false-alarm clips "
              "(share of the other clips labelled with a human sound somewhere):", "",
              "| condition | clips (events / other) | laughter AUC | crying/screaming AUC | coughing/sneezing AUC | "
              "detection | false-alarm clips |", "|---|---|---|---|---|---|---|"]
        clean = rb["conditions"].get("clean")
        for cond, r in rb["conditions"].items():
            a = r["clip_roc_auc"]
            d = "" if clean is None or cond == "clean" else f" ({r['detection'] - clean['detection']:+.3f})"
            L.append(f"| {cond} | {r['n_event_clips']} / {r['n_background_clips']} | {_f(a['pos_human_sounds'])} | "
                     f"{_f(a['neg_human_sounds'])} | {_f(a['nat_human_sounds'])} | {_f(r['detection'])}{d} | "
                     f"{_f(r['false_alarm_clips'])} |")
    L += ["", "## Licences and use", "",
          "The weights were trained on non-commercial data: `vocalizations` (CC BY-NC-ND 4.0), `esc50` (CC BY-NC 3.0 "
          "except the ESC-10 clips), `emospeech` (CC BY-NC-SA 4.0), part of `noise` (UrbanSound8K, CC BY-NC 3.0), "
          "`ravdess` (CC BY-NC-SA 4.0), `emodb` (research use) and music clips under CC BY-NC. **Use these weights "
          "for non-commercial research only.** To train weights for other uses, retrain on permissive data only "
          "(no permissive laughter corpus is in the shared data: bring your own, labels as in "
          "`training/event_mixing.py`'s `role`):", "",
          "    nice -n 10 python -m training.audio_event --corpora librispeech commonvoice vctk \\",
          "        --manifest /path/to/permissive_events/manifest.csv --manifest /path/to/permissive_music/manifest.csv \\",
          "        --out my_audio_event",
          "    python -m training.evaluate_audio_event --folder my_audio_event --choose-thresholds", "",
          "## Limitations", "",
          "- Five val laughter clips (and one esc50 laughing clip among them): laughter figures are indicative.",
          "- Events were mixed into backgrounds artificially; real laughter in conversation overlaps the laugher's "
          "own speech, which the corpora do not hold.",
          "- Infant cries are mostly donateacry (8 kHz phone recordings); adult crying is 24 vocalizations clips.",
          "- `children_playing` and `moan` are not trained on either way: they may be called anything.", ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--robustness", type=Path, default=ROBUST)
    a = ap.parse_args()
    (a.folder / "card.md").write_text(render(a.folder, a.robustness))
    print(f"wrote {a.folder / 'card.md'}")


if __name__ == "__main__":
    main()
