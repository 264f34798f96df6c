"""UnderageSpeaker (issue 15): evaluation, ``unknown_threshold`` and model card.

    nice -n 10 python -m training.train --model underage_speaker --threads 1 --workers 1
    python -m training.underage eval --choose-threshold   # threshold on val (written to spec.json), then eval
    python -m training.underage eval                      # -> eval.json / eval.md in the model folder
    nice -n 10 python -m training.robustness --model underage_speaker --max-clips 1000
    python -m training.underage card                      # card.md from card_templates/underage_speaker.md

Classes (:func:`training.data.underage_class`): speechocean's children (ages 6-12) are ``child``;
speechocean's adults and the adults of every other speech corpus are ``adult``; speechocean's
13-17 year olds are not trained on and are reported apart (``teens``). The figures run the
exported ONNX over whole clips as the engine does (:class:`training.evaluate.OnnxModel`), on the
speech frames of each clip (energy truth + 2 frames hangover, above the -60 dBFS gate):

* clips: the majority of the frame decisions over the clip's speech frames;
* 1 s segments: 16 frames holding at least 8 speech frames, majority as for clips;
* frames: each 64 ms speech frame.

Balanced accuracy is the mean of the child and adult recalls. ``called child`` is the share of a
group's clips decided ``child``, per corpus, class and gender (women's voices are the usual
false alarm of such a model).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .data import (
    UNDERAGE,
    UNDERAGE_CORPORA,
    Clip,
    active_frames,
    data_root,
    hangover,
    load_corpora,
    read_manifest,
    smo_class,
    underage_class,
)
from .evaluate import MODELS_DIR, OnnxModel, _frame_db
from .sampler import GATE_DB

FOLDER = MODELS_DIR / "underage_speaker"
TARGETS = {"clips": 0.95, "segments_1s": 0.90, "adult_called_child": 0.03}
Output = tuple[Clip, str, np.ndarray, np.ndarray]  # clip, class ("" for teens), probs, speech frames


def group_of(c: Clip) -> str:
    """``child`` / ``adult`` / ``teen`` (speechocean 13-17, not trained on) / "" (left out)."""
    cls = underage_class(c)
    if cls:
        return cls
    return "teen" if c.corpus == "speechocean" and c.age_band == "teen" else ""


def outputs(clips: list[Clip], folder: Path) -> list[Output]:
    """Frame probabilities and speech frames of every clip with a class (or a teen)."""
    model = OnnxModel(folder)
    out = []
    for c in clips:
        g = group_of(c)
        if not g:
            continue
        x = c.float_audio()
        p = model(x)
        fdb = _frame_db(x)[: len(p)]
        sp = hangover(active_frames(fdb, c.ref_db), 2) & (fdb >= GATE_DB)
        if sp.any():
            out.append((c, g, p, sp))
    return out


def choose_threshold(outs: list[Output], target: float = 0.95, lo: float = 0.5, hi: float = 0.8) -> dict:
    """The lowest ``t`` whose speech frames with max probability >= t are right at a balanced
    accuracy >= ``target`` (child and adult recall averaged), clipped to [lo, hi]."""
    known = [(g, p[sp]) for _, g, p, sp in outs if g in UNDERAGE]
    P = np.concatenate([p for _, p in known])
    T = np.concatenate([np.full(len(p), UNDERAGE.index(g)) for g, p in known])
    top, pred = P.max(1), P.argmax(1)
    table, chosen = {}, hi
    for t in np.round(np.arange(0.5, 0.96, 0.01), 2):
        m = top >= t
        recs = [float((pred[m & (T == k)] == k).mean()) if (m & (T == k)).any() else 1.0 for k in range(2)]
        table[f"{t:.2f}"] = {"coverage": float(m.mean()), "balanced_accuracy": float(np.mean(recs))}
    for key, row in table.items():
        if row["balanced_accuracy"] >= target:
            chosen = float(key)
            break
    chosen = float(min(max(chosen, lo), hi))
    return {"rule": f"lowest t in [0.50, 0.95] whose validation speech frames (max prob >= t) have a balanced "
                    f"accuracy >= {target:.0%}, clipped to [{lo}, {hi}]; chosen on the val split", "chosen": chosen,
            "table": table}


def _summary(pred: np.ndarray, true: np.ndarray) -> dict:
    d: dict = {"n": int(len(true))}
    recs = []
    for k, g in enumerate(UNDERAGE):
        m = true == k
        d[f"{g}_n"] = int(m.sum())
        d[f"{g}_recall"] = float((pred[m] == k).mean()) if m.any() else None
        if m.any():
            recs.append(d[f"{g}_recall"])
    d["accuracy"] = float((pred == true).mean()) if len(true) else float("nan")
    d["balanced_accuracy"] = float(np.mean(recs)) if recs else float("nan")
    return d


def evaluate(outs: list[Output], threshold: float | None) -> dict:
    """Clip, 1 s segment and frame figures, per group, teens apart (see the module doc)."""
    cp, ct, ck, sp_, st_, fp, ft, ftop = [], [], [], [], [], [], [], []
    teens: dict[str, list[bool]] = {}
    for c, g, p, sp in outs:
        a = p[sp].argmax(1)
        pred = int(np.bincount(a, minlength=2).argmax())
        if g == "teen":
            teens.setdefault(c.age or "?", []).append(pred == 0)
            continue
        y = UNDERAGE.index(g)
        cp.append(pred)
        ct.append(y)
        ck.append(f"{c.corpus}:{g}:{c.gender or '-'}")
        fp.append(a)
        ft.append(np.full(len(a), y))
        ftop.append(p[sp].max(1))
        for s in range(0, len(p) - 15, 16):
            m = sp[s : s + 16]
            if m.sum() >= 8:
                sp_.append(int(np.bincount(p[s : s + 16][m].argmax(1), minlength=2).argmax()))
                st_.append(y)
    cpa, cta, cka = np.array(cp), np.array(ct), np.array(ck)
    res: dict = {
        "clips": _summary(cpa, cta),
        "segments_1s": _summary(np.array(sp_), np.array(st_)),
        "frames_64ms": _summary(np.concatenate(fp), np.concatenate(ft)),
        "called_child_by_group": {k: {"n": int((cka == k).sum()), "share": float((cpa[cka == k] == 0).mean())}
                                  for k in sorted(set(ck))},
    }
    adult_corp: dict[str, list[int]] = {}
    for k, v in zip(ck, cp):
        corpus, g, _ = k.split(":")
        if g == "adult":
            adult_corp.setdefault(corpus, []).append(v)
    res["adult_called_child_by_corpus"] = {k: {"n": len(v), "share": float(np.mean(np.array(v) == 0))}
                                           for k, v in sorted(adult_corp.items())}
    allt = [x for v in teens.values() for x in v]
    res["teens_called_child"] = {"n": len(allt), "share": float(np.mean(allt)) if allt else float("nan"),
                                 "by_age": {a: {"n": len(v), "share": float(np.mean(v))} for a, v in sorted(teens.items())}}
    if threshold is not None:
        P, T = np.concatenate(ftop), np.concatenate(ft)
        m = P >= threshold
        res["unknown_threshold"] = {"threshold": threshold, "frames_coverage": float(m.mean()),
                                    "frames_balanced_accuracy_when_known": _summary(np.concatenate(fp)[m], T[m])[
                                        "balanced_accuracy"]}
    return res


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def to_markdown(res: dict) -> str:
    cols = ["n", "accuracy", "child_n", "child_recall", "adult_n", "adult_recall", "balanced_accuracy"]
    lines = ["# Evaluation: underage_speaker", "", f"Command: `{res['command']}`", "",
             "| unit | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for sec in ("clips", "segments_1s", "frames_64ms"):
        d = res[sec]
        lines.append(f"| {sec} | " + " | ".join(_f(d[c]) if isinstance(d[c], float) or d[c] is None else str(d[c])
                                               for c in cols) + " |")
    lines += ["", "Clips called child, by corpus : class : gender:", "", "| group | clips | called child |",
              "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['share']:.4f} |" for k, v in res["called_child_by_group"].items()]
    t = res["teens_called_child"]
    lines += ["", f"speechocean 13-17 (not trained on): {t['n']} clips, {t['share']:.4f} called child; by age: "
              + ", ".join(f"{a}: {v['share']:.2f} of {v['n']}" for a, v in t["by_age"].items())]
    if "unknown_threshold" in res:
        lines += ["", "```", json.dumps(res["unknown_threshold"], indent=1), "```"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- card

LICENCES = {
    "speechocean": "speechocean762: its README states it is free for commercial and non-commercial use (no "
                   "licence file)",
    "librispeech": "CC BY 4.0", "commonvoice": "CC0 1.0", "vctk": "ODC-By 1.0",
    "ravdess": "CC BY-NC-SA 4.0 (**non-commercial**)", "emodb": "free for **research use**, no explicit licence",
    "baved": "**no licence stated**", "music": "per clip, incl. **CC BY-NC** (mixing only)",
    "noise": "per clip, incl. UrbanSound8K **CC BY-NC 3.0** (mixing only)",
}


def licence_rows(corpora: list[str]) -> str:
    lines = ["| corpus | licence | train clips (child / adult / not used) |", "|---|---|---|"]
    for c in corpora:
        try:
            clips = load_manifest_rows(c)
        except OSError:
            continue
        n = Counter(clips)
        lines.append(f"| {c} | {LICENCES.get(c, '')} | {n['child']} / {n['adult']} / {n['']} |")
    return "\n".join(lines)


def load_manifest_rows(corpus: str) -> list[str]:
    """The class of each train clip of a corpus from its manifest alone (no audio decoded)."""
    out = []
    for r in read_manifest(data_root() / corpus / "manifest.csv"):
        if r["split"] != "train":
            continue
        c = Clip(corpus=corpus, file=r["file"], label=r.get("label", ""), cls=smo_class(r.get("label", ""), corpus),
              gender=r.get("gender", ""), language=r.get("language", ""), speaker=r.get("speaker", ""),
              split="train", license="", audio=np.zeros(0, np.int16), age=r.get("age", "") or "",
              age_band=r.get("age_band", "") or "")
        out.append(underage_class(c) if corpus not in ("music", "noise") else "")
    return out


def card() -> str:
    """card.md from the template, spec.json, train_info.json, eval.json and the robustness table."""
    from .cards import all_runs, runs_text
    from .robustness_card import robustness_section

    spec = json.loads((FOLDER / "spec.json").read_text())
    info = json.loads((FOLDER / "train_info.json").read_text())
    ev = json.loads((FOLDER / "eval.json").read_text())
    thr = json.loads((FOLDER / "threshold.json").read_text()) if (FOLDER / "threshold.json").exists() else {}
    tpl = (Path(__file__).parent / "card_templates" / "underage_speaker.md").read_text()
    missed = []
    for sec, name in (("clips", "clips"), ("segments_1s", "1 s segments")):
        v = ev[sec]["balanced_accuracy"]
        if v < TARGETS[sec]:
            missed.append(f"{name} balanced accuracy {v:.4f} < {TARGETS[sec]} (by {100 * (TARGETS[sec] - v):.1f} points)")
    for k, v in ev["adult_called_child_by_corpus"].items():
        if v["share"] > TARGETS["adult_called_child"]:
            missed.append(f"{k}: {v['share']:.1%} of adult clips called child (> 3%)")
    cols = ["n", "child_recall", "adult_recall", "balanced_accuracy"]
    metrics = ["| unit | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for sec in ("clips", "segments_1s", "frames_64ms"):
        metrics.append(f"| {sec} | " + " | ".join(str(ev[sec][c]) if c == "n" else _f(ev[sec][c]) for c in cols) + " |")
    groups = ["| corpus : class : gender | clips | called child |", "|---|---|---|"]
    groups += [f"| {k} | {v['n']} | {v['share']:.1%} |" for k, v in ev["called_child_by_group"].items()]
    t = ev["teens_called_child"]
    teens = (f"{t['n']} validation clips of speechocean's 13-17 year olds: {t['share']:.1%} called child (by age: "
             + ", ".join(f"{a}: {v['share']:.0%} of {v['n']}" for a, v in t["by_age"].items()) + ")")
    u = ev.get("unknown_threshold") or {}
    subs = {
        "params": f"{info['params']:,}", "channels": str(info["channels"]), "bytes": f"{info['onnx_bytes']:,}",
        "us": f"{info['us_per_frame_1thread_chunk64']:.1f}", "xrt": f"{info['x_realtime']:,.0f}",
        "steps": str(sum(r["train_steps"] for r in all_runs(info))),
        "train_min": f"{sum(r['train_seconds'] for r in all_runs(info)) / 60:.1f}", "runs": runs_text(info),
        "stream_diff": f"{info['streaming_max_abs_diff']:.1e}", "ort_diff": f"{info['torch_vs_ort_max_abs_diff']:.1e}",
        "ctx": str(spec["context_frames"]), "rf": str(spec["receptive_field_ms"]),
        "threshold": str(spec.get("unknown_threshold")), "threshold_rule": thr.get("rule", "not chosen"),
        "unknown": (f"{u['frames_coverage']:.1%} of validation speech frames are above it; their balanced accuracy is "
                    f"{u['frames_balanced_accuracy_when_known']:.2%}") if u else "no threshold set",
        "eval_command": ev["command"], "metrics": "\n".join(metrics), "groups": "\n".join(groups), "teens": teens,
        "licences": licence_rows(info["corpora"]), "robustness": robustness_section("underage_speaker"),
        "missed": ("Missed targets (measured numbers above): " + "; ".join(missed) + ".") if missed else
        "The clean-audio targets of issue 15 are met on this validation split.",
    }
    text = tpl
    for k, v in subs.items():
        text = text.replace("{{" + k + "}}", v)
    return text


def main(argv: list[str] | None = None) -> None:
    """``eval`` or ``card`` (see the module docstring).

    Raises:
        SystemExit: bad arguments or no clips.
    """
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["eval", "card"])
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--corpora", nargs="*", default=list(UNDERAGE_CORPORA))
    ap.add_argument("--manifest", action="append", default=[])
    ap.add_argument("--split", default="val")
    ap.add_argument("--choose-threshold", action="store_true",
                    help="first choose unknown_threshold on these clips and write it to spec.json (+ threshold.json)")
    ap.add_argument("--out", type=Path, default=None, help="report path prefix (default <folder>/eval)")
    a = ap.parse_args(argv)
    if a.what == "card":
        text = card()
        (FOLDER / "card.md").write_text(text)
        print(text)
        return
    clips = [c for c in load_corpora(a.corpora, a.manifest) if c.split == a.split]
    outs = outputs(clips, a.folder)
    if not outs:
        raise SystemExit("no clips with a class")
    command = "python -m training.underage " + " ".join(sys.argv[1:] if argv is None else argv)
    if a.choose_threshold:
        th = choose_threshold(outs)
        th["command"] = command
        spec = json.loads((a.folder / "spec.json").read_text())
        spec["unknown_threshold"] = th["chosen"]
        (a.folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
        (a.folder / "threshold.json").write_text(json.dumps(th, indent=1) + "\n")
        print("unknown_threshold", th["chosen"], flush=True)
    thr = json.loads((a.folder / "spec.json").read_text()).get("unknown_threshold")
    res = evaluate(outs, thr)
    res.update(command=command, split=a.split, corpora=a.corpora, manifests=a.manifest)
    out = a.out or a.folder / "eval"
    Path(str(out) + ".json").write_text(json.dumps(res, indent=1) + "\n")
    Path(str(out) + ".md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
