"""Evaluate the Arousal / Emotions ONNX models and write their model cards.

    python -m training.evaluate_affect --model arousal                      # val split -> eval.json / eval.md
    python -m training.evaluate_affect --model arousal --folder runs/affect/arousal-ravdess \
        --corpora emodb --split all --name cross_ravdess_to_emodb           # cross-corpus test
    python -m training.evaluate_affect --model arousal --card               # card.md from the JSON results

It runs the *exported ONNX* the way the engine does (helper-1's ``training.evaluate.OnnxModel``:
log-mel over the whole clip with zero history, ``context_frames`` SILENCE_FLOOR frames before the
stream, pieces of 256 frames with the context carried) on the clean clips. Scored frames are the
clip's speech frames by the energy truth of ``training.data.active_frames`` (within 30 dB of the
clip's 95th-percentile frame level, above -65 dBFS) that are not below the -60 dBFS volume gate;
every scored frame carries the clip's mapped label. Frame decision: argmax. Clip decision: argmax of
the mean probability over the clip's scored frames. UAR = unweighted average recall (the mean of
the per-class recalls) = balanced accuracy.

``--engine N`` also runs the first N clips through ``Deeptone.process_file`` (Silero VAD as the
speech detector) and reports how often the engine says ``no_speech`` / ``silence`` on them and the
clip accuracy of the summary's most frequent affect label.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .affect import AFFECT_CORPORA, MODELS, load_affect, mapping_for, speech_mask
from .data import REPO
from .evaluate import OnnxModel, cls_metrics

MODELS_DIR = REPO / "deeptone_async" / "models"


def clip_outputs(folder: Path, clips):
    model = OnnxModel(folder)
    out = []
    for c, y in clips:
        x = c.float_audio()
        p = model(x)
        m = speech_mask(x, hang=0)[: len(p)]
        if m.any():
            out.append((c, y, p, m))
    return out


def metrics(outs, labels: list[str]) -> dict:
    def block(sel) -> dict:
        sub = [o for o in outs if sel(o[0])]
        if not sub:
            return {}
        cp = np.array([o[2][o[3]].mean(0).argmax() for o in sub])
        ct = np.array([o[1] for o in sub])
        fp = np.concatenate([o[2][o[3]].argmax(1) for o in sub])
        ft = np.concatenate([np.full(o[3].sum(), o[1]) for o in sub])
        return {"clips": cls_metrics(cp, ct, labels), "frames": cls_metrics(fp, ft, labels)}

    res = {"all": block(lambda c: True)}
    for g in ("female", "male"):
        res[f"gender={g}"] = block(lambda c, g=g: c.gender == g)
    for k in sorted({o[0].corpus for o in outs}):
        res[f"corpus={k}"] = block(lambda c, k=k: c.corpus == k)
        for g in ("female", "male"):
            res[f"corpus={k},gender={g}"] = block(lambda c, k=k, g=g: c.corpus == k and c.gender == g)
    return {k: v for k, v in res.items() if v}


async def _engine_check(folder: Path, spec_name: str, clips, n: int, labels: list[str]) -> dict:
    import tempfile

    import soundfile as sf

    from deeptone_async import Deeptone

    engine = Deeptone()
    spec = getattr(engine.models, spec_name)
    if Path(spec.onnx).resolve() != (folder / "model.onnx").resolve():
        return {"skipped": "the engine's bundled model is not the evaluated folder"}
    right = tot = 0
    fr = {"no_speech": 0.0, "silence": 0.0, "affect": 0.0}
    with tempfile.TemporaryDirectory() as d:
        for c, y in clips[:n]:
            p = Path(d) / "clip.wav"
            sf.write(p, c.audio, 16000, subtype="PCM_16")
            out = await engine.process_file(p, [spec], include_summary=True)
            summ = _summary(out, spec.key)
            fr["no_speech"] += summ.get("no_speech_fraction", 0.0)
            fr["silence"] += summ.get("silence_fraction", 0.0)
            aff = {lab: summ.get(f"{lab}_fraction", 0.0) for lab in labels}
            fr["affect"] += sum(aff.values())
            tot += 1
            if sum(aff.values()) > 0:
                right += int(max(aff, key=aff.get) == labels[y])
    return {"clips": tot, "mean_no_speech_fraction": fr["no_speech"] / max(tot, 1),
            "mean_silence_fraction": fr["silence"] / max(tot, 1),
            "mean_affect_fraction": fr["affect"] / max(tot, 1),
            "clip_accuracy_of_most_frequent_label": right / max(tot, 1)}


def _summary(out, key: str) -> dict:
    """The summary fractions of ``key`` in a (mono) process_file result."""
    return dict(out["summary"][key])


def to_markdown(model: str, res: dict) -> str:
    labels = MODELS[model]["labels"]
    lines = [f"# {MODELS[model]['name']} evaluation: {res['name']}", "",
             f"model folder `{res['folder']}`, corpora {res['corpora']} + {res['manifests']}, split `{res['split']}`", "",
             "| subset | clips | clip UAR | clip acc | frames | frame UAR | frame acc | clip recall per class |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in res["metrics"].items():
        c, f = v["clips"], v["frames"]
        rec = ", ".join(f"{lab} {c['recall'][lab]:.2f}" for lab in labels if lab in c["recall"])
        lines.append(f"| {k} | {c['n']} | {c['balanced_accuracy']:.3f} | {c['accuracy']:.3f} | {f['n']} | "
                     f"{f['balanced_accuracy']:.3f} | {f['accuracy']:.3f} | {rec} |")
    lines += ["", "Clip confusion (rows = truth, columns = prediction, order " + " / ".join(labels) + "):", ""]
    lines += confusion_md(res["metrics"]["all"]["clips"], labels)
    if "engine" in res:
        lines += ["", "Through the engine: " + json.dumps(res["engine"])]
    return "\n".join(lines) + "\n"


def confusion_md(m: dict, labels: list[str]) -> list[str]:
    cm = m["confusion(rows=truth)"]
    out = ["| truth \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for lab in labels:
        out.append(f"| {lab} | " + " | ".join(str(v) for v in cm[lab]) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--folder", type=Path, default=None, help="model folder (default: the bundled one)")
    ap.add_argument("--corpora", nargs="*", default=None)
    ap.add_argument("--manifest", action="append", default=[])
    ap.add_argument("--mapping", type=Path, default=None, help="as for training.affect: JSON {label: model label or null}")
    ap.add_argument("--split", default="val", help="val / train / all")
    ap.add_argument("--name", default="val", help="result name: <out>/eval[_<name>].json (val -> eval.json)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the results (default: the model folder)")
    ap.add_argument("--engine", type=int, default=0, help="also run N clips through Deeptone.process_file")
    ap.add_argument("--card", action="store_true", help="write card.md from the stored results instead")
    a = ap.parse_args()
    folder = a.folder or MODELS_DIR / a.model
    if a.card:
        from .affect_card import write_card

        write_card(a.model, folder)
        return
    m = MODELS[a.model]
    corpora = list(AFFECT_CORPORA) if a.corpora is None else a.corpora
    clips, _ = load_affect(corpora, a.manifest, mapping_for(a.model, a.mapping), m["labels"])
    if a.split != "all":
        clips = [(c, y) for c, y in clips if c.split == a.split]
    outs = clip_outputs(folder, clips)
    res = {"name": a.name, "folder": str(folder.resolve().relative_to(REPO)) if folder.resolve().is_relative_to(REPO)
           else str(folder), "corpora": corpora, "manifests": a.manifest, "split": a.split,
           "labels": m["labels"], "metrics": metrics(outs, m["labels"])}
    if a.engine:
        import asyncio

        res["engine"] = asyncio.run(_engine_check(folder, m["name"], clips, a.engine, m["labels"]))
    out = a.out or folder
    out.mkdir(parents=True, exist_ok=True)
    stem = "eval" if a.name == "val" else f"eval_{a.name}"
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = to_markdown(a.model, res)
    (out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
