"""The one evaluation script: every figure in the model cards comes from here.

    python -m training.evaluate --model speech
    python -m training.evaluate --model speech_rt        # also runs Silero VAD v5 side by side
    python -m training.evaluate --model gender
    python -m training.evaluate --model gender --split train --choose-threshold   # unknown_threshold

It runs the *exported ONNX* (``deeptone_async/models/<model>/model.onnx``) exactly as the engine
does: log-mel rows from :mod:`deeptone_async.features` over the whole clip (zero history at the
start), ``context_frames`` frames of SILENCE_FLOOR rows before the stream, pieces of 256 frames
with the context carried. Results go to ``<folder>/eval.json`` and ``<folder>/eval.md``
(``--out`` elsewhere; use it when evaluating your own data).

Your own labelled data: ``--manifest my/manifest.csv`` (repeatable) with columns ``file``,
``label`` (speech / music / anything else = other; emotions count as speech), ``split``
(``--split`` chooses which rows, default val) and, for gender, ``gender`` and ``language``.
``--corpora`` replaces the default shared corpora (``--corpora`` with no names: none).

Frame truth is the one in :mod:`training.sampler`; frames of the mixture quieter than
-60 dBFS are left out (the engine's volume gate reports them as ``silence``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from deeptone_async.features import FRAME_SAMPLES, logmel

from . import augment as A
from .data import (
    ALL_CORPORA,
    REPO,
    SPEECH_CORPORA,
    Clip,
    active_frames,
    data_root,
    frame_db_from_hops,
    hangover,
    hop_db,
    load_corpora,
    read_manifest,
)
from .export import session, stream
from .sampler import GATE_DB, GENDERS, SMO

MODELS_DIR = REPO / "deeptone_async" / "models"
HANGOVER = {"speech": 7, "speech_rt": 1}
SNRS = (20, 10, 5)
# local SNR bands (dB) of a speech frame: its clean speech power over the power of the
# background mixed under it in the same 64 ms, as scaled in the mixture
LOCAL_SNR_BANDS = ((-99, -10), (-10, -5), (-5, 0), (0, 5), (5, 10), (10, 99))


class OnnxModel:
    def __init__(self, folder: Path) -> None:
        self.spec = json.loads((folder / "spec.json").read_text())
        self.ctx = int(self.spec["context_frames"])
        self.sess = session(folder / self.spec["onnx"], threads=2)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        n = len(audio) // FRAME_SAMPLES
        feats = logmel(audio[: n * FRAME_SAMPLES])
        return stream(self.sess, feats, self.ctx, [256] * (n // 256 + 1))


def silero_frames(audios: list[np.ndarray], batch: int = 64) -> list[np.ndarray]:
    """Speech probability per 64 ms frame from the bundled Vad (Silero VAD v5's weights in the
    sequence graph of ``training.silero_seq``, run as the engine runs it: 512-sample steps with
    64 samples of context, a recurrent state per clip, a frame's probability the mean of its two
    steps). Clips are batched, zero-padded to the longest; padding comes after a clip's frames,
    so it cannot change them."""
    from deeptone_async.inference import make_runner
    from deeptone_async.registry import silero_spec

    spec = silero_spec()
    runner = make_runner(spec, threads=2)
    speech = spec.labels.index(spec.speech_label or "speech")
    out: list[np.ndarray | None] = [None] * len(audios)
    order = np.argsort([len(a) for a in audios])
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        nf = [len(audios[j]) // FRAME_SAMPLES for j in idx]
        T = max(nf)
        X = np.zeros((len(idx), T, FRAME_SAMPLES), np.float32)
        for r, j in enumerate(idx):
            X[r, : nf[r]] = audios[j][: nf[r] * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
        probs = runner.run(X, None, [runner.new_state() for _ in idx])[..., speech]
        for r, j in enumerate(idx):
            out[j] = probs[r, : nf[r]].copy()
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- metrics


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = truth.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def cls_metrics(pred: np.ndarray, truth: np.ndarray, labels: list[str]) -> dict:
    K = len(labels)
    cm = np.zeros((K, K), np.int64)
    np.add.at(cm, (truth, pred), 1)
    rec = cm.diagonal() / np.maximum(cm.sum(1), 1)
    prec = cm.diagonal() / np.maximum(cm.sum(0), 1)
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    present = cm.sum(1) > 0
    return {
        "n": int(cm.sum()),
        "accuracy": float(cm.diagonal().sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "balanced_accuracy": float(rec[present].mean()) if present.any() else float("nan"),
        "recall": {labels[k]: float(rec[k]) for k in range(K) if present[k]},
        "precision": {labels[k]: float(prec[k]) for k in range(K)},
        "confusion(rows=truth)": {labels[k]: cm[k].tolist() for k in range(K)},
    }


# ---------------------------------------------------------------------------------------- speech


def _frame_db(x: np.ndarray) -> np.ndarray:
    return frame_db_from_hops(hop_db(x))


def smo_sets(clips: list[Clip], hang: int, seed: int = 0):
    """Yield (condition, list of (audio, truth, corpus, local SNR)) for clean and each SNR; the
    local SNR (dB per 64 ms frame, see LOCAL_SNR_BANDS) is None for clean audio."""
    speech = [c for c in clips if c.cls == "speech"]
    bgs = [c for c in clips if c.cls != "speech"]
    clean = []
    for c in clips:
        x = c.float_audio()
        fdb = _frame_db(x)
        if c.cls == "speech":
            t = np.where(hangover(active_frames(fdb, c.ref_db), hang), 0, 2)
        else:
            t = np.full(len(fdb), SMO.index(c.cls))
        t[fdb < GATE_DB] = -1
        clean.append((x, t, c.corpus, None))
    yield "clean", clean
    music = [c for c in bgs if c.cls == "music"]
    noise = [c for c in bgs if c.cls == "other"]
    for snr in SNRS:
        rng = np.random.default_rng(seed)
        mixed = []
        for c in speech:
            is_music = bool(rng.random() < 0.5) and bool(music)
            pool = music if is_music else noise
            bg = pool[int(rng.integers(len(pool)))].float_audio()
            x = c.float_audio()
            if len(bg) < len(x):
                bg = np.tile(bg, len(x) // max(len(bg), 1) + 1)
            s = int(rng.integers(0, len(bg) - len(x) + 1))
            fdb = _frame_db(x)
            act = active_frames(fdb, c.ref_db)
            mask = np.repeat(act, FRAME_SAMPLES)
            mask = np.pad(mask, (0, len(x) - len(mask)))
            y = A.mix_at_snr(x, bg[s : s + len(x)], snr, mask)
            local = fdb - _frame_db(y - x)  # speech over the background as mixed in, per frame
            y = np.clip(y, -1, 1)
            t = np.where(hangover(act, hang), 0, 1 if is_music else 2)
            t[_frame_db(y) < GATE_DB] = -1
            mixed.append((y, t, c.corpus, local))
        yield f"mix_{snr}dB", mixed


def eval_smo(model_name: str, clips: list[Clip], folder: Path, with_silero: bool) -> dict:
    model = OnnxModel(folder)
    hang = HANGOVER.get(model_name, 7)
    others = {}
    if with_silero:  # the other bundled speech model, side by side
        for other in ("speech", "speech_rt"):
            if other != model_name and (MODELS_DIR / other / "model.onnx").exists():
                others[other] = OnnxModel(MODELS_DIR / other)
    res: dict = {"truth_hangover_frames": hang, "conditions": {}}
    for cond, items in smo_sets(clips, hang):
        preds, truths, corp, p_speech, local = [], [], [], [], []
        extra = defaultdict(list)
        for x, t, c, loc in items:
            p = model(x)[: len(t)]
            preds.append(p.argmax(1))
            p_speech.append(p[:, 0])
            truths.append(t[: len(p)])
            corp += [c] * len(p)
            if loc is not None:
                local.append(np.pad(loc, (0, max(0, len(p) - len(loc))), constant_values=np.nan)[: len(p)])
            for k, m in others.items():
                extra[k].append(m(x)[: len(t), 0])
        pred, truth, ps = np.concatenate(preds), np.concatenate(truths), np.concatenate(p_speech)
        corp = np.array(corp)
        keep = truth >= 0
        r = cls_metrics(pred[keep], truth[keep], list(SMO))
        r["per_corpus_accuracy"] = {
            k: float((pred[keep & (corp == k)] == truth[keep & (corp == k)]).mean())
            for k in sorted(set(corp[keep]))
        }
        isspeech = truth[keep] == 0
        scores = {model_name: ps} | {k: np.concatenate(v) for k, v in extra.items()}
        if with_silero:
            sil = silero_frames([x for x, _, _, _ in items])
            scores["silero_vad_v5"] = np.concatenate([s[: len(t)] for s, (_, t, _, _) in zip(sil, items)])
        r["speech_roc_auc"] = {k: roc_auc(v[keep], isspeech) for k, v in scores.items()}
        if local:
            r["speech_roc_auc_by_local_snr"] = by_local_snr(scores, truth, np.concatenate(local))
        res["conditions"][cond] = r
        print(cond, f"acc {r['accuracy']:.4f} macroF1 {r['macro_f1']:.4f} auc {r['speech_roc_auc']}", flush=True)
    return res


def by_local_snr(scores: dict[str, np.ndarray], truth: np.ndarray, local: np.ndarray) -> list[dict]:
    """Speech-vs-rest ROC-AUC with the speech frames restricted to one local-SNR band (every
    non-speech frame kept), per band of LOCAL_SNR_BANDS: where in the mixture a detector loses."""
    keep = truth >= 0
    speech = keep & (truth == 0)
    rows = []
    for lo, hi in LOCAL_SNR_BANDS:
        band = speech & (local >= lo) & (local < hi)
        sel = band | (keep & ~speech)
        rows.append({"band_db": [lo, hi], "speech_frames": int(band.sum()),
                     "share": float(band.sum() / max(speech.sum(), 1)),
                     "auc": {k: roc_auc(v[sel], speech[sel]) for k, v in scores.items()}})
    return rows


# ---------------------------------------------------------------------------------------- gender


def gender_outputs(clips: list[Clip], folder: Path):
    model = OnnxModel(folder)
    out = []
    for c in clips:
        if c.gender not in GENDERS:
            continue
        x = c.float_audio()
        p = model(x)
        fdb = _frame_db(x)[: len(p)]
        sp = hangover(active_frames(fdb, c.ref_db), 2) & (fdb >= GATE_DB)
        out.append((c, p, sp))
    return out


def choose_threshold(outs, target: float = 0.97, lo: float = 0.6, hi: float = 0.75) -> dict:
    P = np.concatenate([p[sp] for _, p, sp in outs])
    T = np.concatenate([np.full(sp.sum(), GENDERS.index(c.gender)) for c, _, sp in outs])
    top, ok = P.max(1), P.argmax(1) == T
    table = {}
    chosen = hi
    for t in np.round(np.arange(0.5, 0.96, 0.01), 2):
        m = top >= t
        acc = float(ok[m].mean()) if m.any() else 1.0
        table[f"{t:.2f}"] = {"coverage": float(m.mean()), "accuracy": acc}
    for t in np.round(np.arange(0.5, 0.96, 0.01), 2):
        if table[f"{t:.2f}"]["accuracy"] >= target:
            chosen = float(t)
            break
    chosen = float(min(max(chosen, lo), hi))
    return {"rule": f"lowest t in [0.50, 0.95] whose frames (max prob >= t) are >= {target:.0%} right, "
                    f"clipped to [{lo}, {hi}]", "chosen": chosen, "table": table}


def age_bands(clips: list[Clip]) -> dict[int, str]:
    """``corpus:age_band`` of each clip whose manifest has an ``age_band`` column (speechocean:
    child / teen / adult), keyed by ``id(clip)``; other clips are left out."""
    out: dict[int, str] = {}
    by_corpus: dict[str, list[Clip]] = {}
    for c in clips:
        by_corpus.setdefault(c.corpus, []).append(c)
    for corpus, cs in by_corpus.items():
        path = data_root() / corpus / "manifest.csv"
        if not path.exists():
            continue
        band = {r["file"]: r.get("age_band", "") for r in read_manifest(path)}
        out.update({id(c): f"{corpus}:{band[c.file]}" for c in cs if band.get(c.file)})
    return out


def eval_gender(clips: list[Clip], folder: Path, threshold: float | None) -> dict:
    outs = gender_outputs(clips, folder)
    bands = age_bands([c for c, _, _ in outs])
    rows = []  # per clip
    fr_pred, fr_true, fr_top, fr_key, seg_pred, seg_true, seg_key = [], [], [], [], [], [], []
    for c, p, sp in outs:
        g = GENDERS.index(c.gender)
        key = (c.corpus, c.language or "-", c.gender)
        if sp.sum() == 0:
            continue
        a = p[sp].argmax(1)
        clip_pred = int(np.bincount(a, minlength=2).argmax())
        rows.append((key + (bands.get(id(c), ""),), g, clip_pred))
        fr_pred.append(a)
        fr_true.append(np.full(len(a), g))
        fr_top.append(p[sp].max(1))
        fr_key += [key] * len(a)
        for s in range(0, len(p) - 15, 16):  # 1 s segments with >= 8 speech frames
            m = sp[s : s + 16]
            if m.sum() >= 8:
                seg_pred.append(int(np.bincount(p[s : s + 16][m].argmax(1), minlength=2).argmax()))
                seg_true.append(g)
                seg_key.append(key)
    fp, ft, ftop = np.concatenate(fr_pred), np.concatenate(fr_true), np.concatenate(fr_top)
    sp_, st_ = np.array(seg_pred), np.array(seg_true)
    cp, ct = np.array([r[2] for r in rows]), np.array([r[1] for r in rows])

    def summary(pred, true) -> dict:
        d = {"n": int(len(true)), "accuracy": float((pred == true).mean()) if len(true) else float("nan")}
        for k, g in enumerate(GENDERS):
            m = true == k
            d[f"{g}_n"] = int(m.sum())
            d[f"{g}_accuracy"] = float((pred[m] == k).mean()) if m.any() else None
        recs = [d[f"{g}_accuracy"] for g in GENDERS if d[f"{g}_accuracy"] is not None]
        d["balanced_accuracy"] = float(np.mean(recs)) if recs else float("nan")
        return d

    def breakdown(keys, pred, true, idx) -> dict:
        out = {}
        keys = np.array([k[idx] for k in keys])
        for v in sorted(set(keys)):
            m = keys == v
            out[v] = summary(pred[m], true[m])
        return out

    res = {
        "clips": summary(cp, ct),
        "segments_1s": summary(sp_, st_),
        "frames_64ms": summary(fp, ft),
        "clips_by_corpus": breakdown([r[0] for r in rows], cp, ct, 0),
        "segments_1s_by_corpus": breakdown(seg_key, sp_, st_, 0),
        "frames_64ms_by_corpus": breakdown(fr_key, fp, ft, 0),
        "clips_by_language": breakdown([r[0] for r in rows], cp, ct, 1),
        "clips_by_age_band": {k: v for k, v in breakdown([r[0] for r in rows], cp, ct, 3).items() if k},
        "segments_1s_by_language": breakdown(seg_key, sp_, st_, 1),
    }
    if threshold is not None:
        m = ftop >= threshold
        res["unknown_threshold"] = {"threshold": threshold, "frames_coverage": float(m.mean()),
                                    "frames_accuracy_when_known": float((fp[m] == ft[m]).mean())}
    return res


# ---------------------------------------------------------------------------------------- report


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if v == v else "nan"
    return str(v)


def to_markdown(model: str, res: dict) -> str:
    lines = [f"# Evaluation: {model}", "", f"Command: `{res['command']}`", ""]
    if model == "gender":
        cols = ["n", "accuracy", "male_n", "male_accuracy", "female_n", "female_accuracy", "balanced_accuracy"]
        for sec in ("clips", "segments_1s", "frames_64ms"):
            lines += [f"## {sec} (overall)", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
                      "| " + " | ".join(_fmt(res[sec][c]) for c in cols) + " |", ""]
        for sec in ("clips_by_corpus", "segments_1s_by_corpus", "frames_64ms_by_corpus", "clips_by_language",
                    "segments_1s_by_language", "clips_by_age_band"):
            if sec not in res:
                continue
            lines += [f"## {sec}", "", "| group | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            for k, d in res[sec].items():
                lines.append(f"| {k} | " + " | ".join(_fmt(d[c]) for c in cols) + " |")
            lines.append("")
        if "unknown_threshold" in res:
            lines += ["## unknown threshold", "", "```", json.dumps(res["unknown_threshold"], indent=1), "```"]
    else:
        lines += ["| condition | frames | accuracy | macro F1 | recall speech | recall music | recall other | "
                  "speech ROC-AUC |", "|---|---|---|---|---|---|---|---|"]
        for cond, r in res["conditions"].items():
            rec = r["recall"]
            auc = ", ".join(f"{k} {v:.4f}" for k, v in r["speech_roc_auc"].items())
            lines.append(f"| {cond} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                         f"{_fmt(rec.get('speech'))} | {_fmt(rec.get('music'))} | {_fmt(rec.get('other'))} | {auc} |")
        lines += ["", "Per-corpus frame accuracy:", ""]
        for cond, r in res["conditions"].items():
            lines.append(f"- {cond}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["per_corpus_accuracy"].items()))
        lines += ["", "Confusion matrices (rows = truth speech/music/other, columns = predicted):", ""]
        for cond, r in res["conditions"].items():
            lines.append(f"- {cond}: {r['confusion(rows=truth)']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["speech", "speech_rt", "gender"])
    ap.add_argument("--folder", type=Path, default=None, help="model folder (default: the bundled one)")
    ap.add_argument("--corpora", nargs="*", default=None)
    ap.add_argument("--manifest", action="append", default=[])
    ap.add_argument("--split", default="val")
    ap.add_argument("--no-silero", action="store_true")
    ap.add_argument("--choose-threshold", action="store_true",
                    help="gender: choose unknown_threshold on these clips and write it to spec.json")
    ap.add_argument("--max-clips", type=int, default=0, help="subsample (deterministic) to this many clips")
    ap.add_argument("--out", type=Path, default=None, help="report path prefix (default <folder>/eval)")
    a = ap.parse_args()
    folder = a.folder or MODELS_DIR / a.model
    corpora = a.corpora
    if corpora is None:
        corpora = list(SPEECH_CORPORA) if a.model == "gender" else list(ALL_CORPORA)
    clips = [c for c in load_corpora(corpora, a.manifest) if c.split == a.split]
    if a.max_clips and len(clips) > a.max_clips:
        idx = np.random.default_rng(0).choice(len(clips), a.max_clips, replace=False)
        clips = [clips[i] for i in sorted(idx)]
    command = "python -m training.evaluate " + " ".join(sys.argv[1:])
    if a.model == "gender" and a.choose_threshold:
        res = choose_threshold(gender_outputs(clips, folder))
        spec = json.loads((folder / "spec.json").read_text())
        spec["unknown_threshold"] = res["chosen"]
        (folder / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
        res["command"] = command
        (folder / "threshold.json").write_text(json.dumps(res, indent=1) + "\n")
        print("unknown_threshold", res["chosen"])
        return
    if a.model == "gender":
        thr = json.loads((folder / "spec.json").read_text()).get("unknown_threshold")
        res = eval_gender(clips, folder, thr)
    else:
        res = eval_smo(a.model, clips, folder, with_silero=(a.model == "speech_rt" and not a.no_silero))
    res["command"] = command
    res["split"] = a.split
    res["corpora"] = corpora
    res["manifests"] = a.manifest
    out = a.out or folder / "eval"
    Path(str(out) + ".json").write_text(json.dumps(res, indent=1) + "\n")
    Path(str(out) + ".md").write_text(to_markdown(a.model, res))
    print(to_markdown(a.model, res))


if __name__ == "__main__":
    main()
