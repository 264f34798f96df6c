"""Evaluate the AudioEvent model; every figure of its card comes from here.

    nice -n 10 python -m training.evaluate_audio_event --choose-thresholds   # thresholds -> spec.json, then eval
    nice -n 10 python -m training.evaluate_audio_event                       # eval.json / eval.md
    python -m training.evaluate_audio_event --folder DIR --out DIR           # a retrained candidate

All on the *val* split (group-disjoint from train), through the exported ONNX graph:

1. **Frame ROC-AUC per class** on fixed val mixtures (:mod:`training.event_mixing` plans, mixed
   as audio, no channel effects, seed 7): every event clip of the val split is drawn many
   times over speech, music, noise or nothing at -6 to 20 dB.
2. **Clip ROC-AUC per human-sound class**: each val event clip alone and each val speech /
   music / noise clip; a clip's score is its highest frame score of the class.
3. **Event recall and false alarms, through the engine** (``Deeptone().process_audio_bytes``,
   ``output_period=64``, volume gate at -60 dBFS): event-free streams of the val speech clips
   and of the val music clips, each clip once, in a seeded order (false alarms: runs of
   frames labelled with a human-sound class, per minute and per hour); the same streams with
   every val event clip inserted once in each, 6 s apart, at 0 to 15 dB over the background's
   level (recall: an event counts as found when a frame from its start to 0.5 s after its end
   is labelled with its class; ``any`` when labelled with any human-sound class).
4. **Speech / music / noise accuracy against the bundled Speech model**, both through the
   same engine call on the same frames: the frames, truth and mixtures of
   ``training.evaluate --model speech`` (val clips of its corpora, clean and speech mixed
   with music or noise at 20 / 10 / 5 dB); AudioEvent's ``noise`` and human-sound labels
   count as Speech's ``other``.

``--choose-thresholds`` picks, on the event-free val streams of (3) -- so the false-alarm
figures are quoted on the streams the thresholds were chosen on, recall is not -- the lowest
threshold per human-sound class (grid 0.30-0.98) at which that class alone raises at most
``--fa-budget`` (2.0) false alarms per minute on the speech stream and on the music stream;
speech / music / noise keep 0.5. They are written into ``spec.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from deeptone_async.features import FRAME_SAMPLES, SAMPLE_RATE

from . import augment as A
from .data import ALL_CORPORA, REPO, Clip, load_corpora, split
from .evaluate import cls_metrics, roc_auc, smo_sets
from .event_mixing import CLASSES, CORPORA, EVENTS, SHORT, Pools, draw_plan, render_wave, targets
from .export import session
from .sampler import GATE_DB, SMO

FOLDER = REPO / "deeptone_async" / "models" / "audio_event"
GAP_S = 6.0
EVENT_SNR = (0.0, 15.0)
GRID = np.round(np.arange(0.30, 0.985, 0.02), 2)
VOLUME_THRESHOLD = 10 ** (GATE_DB / 20)


def frame_auc(folder: Path, val: Pools, n: int = 1500, seed: int = 7) -> dict[str, Any]:
    """Per-class frame ROC-AUC on ``n`` val mixtures of 48 frames (32 scored)."""
    spec = json.loads((folder / "spec.json").read_text())
    ctx = int(spec["context_frames"])
    s = session(folder / spec["onnx"], threads=1)
    rng = np.random.default_rng(seed)
    ps, ys = [], []
    for i in range(0, n, 50):
        fs, tg = [], []
        for _ in range(min(50, n - i)):
            p = draw_plan(rng, val, ctx + 32, ctx, p_event=0.7, augment=False)
            fs.append(render_wave(p, None, rng))
            tg.append(targets(p)[ctx:])
        out = s.run(None, {"features": np.stack(fs)})[0]
        ps.append(out.reshape(-1, len(CLASSES)))
        ys.append(np.stack(tg).reshape(-1, len(CLASSES)))
    p, y = np.concatenate(ps), np.concatenate(ys)
    res: dict[str, Any] = {"examples": n}
    for k, lab in enumerate(CLASSES):
        m = y[:, k] >= 0
        res[lab] = {"roc_auc": roc_auc(p[m, k], y[m, k] > 0.5), "positive_frames": int((y[m, k] > 0.5).sum()),
                    "negative_frames": int((y[m, k] < 0.5).sum())}
    return res


def _frames(folder: Path, x: np.ndarray) -> np.ndarray:
    from .evaluate import OnnxModel

    return OnnxModel(folder)(x)


def clip_auc(folder: Path, val: Pools) -> dict[str, Any]:
    """Per human-sound class clip ROC-AUC: event clips alone vs every other val clip."""
    from .evaluate import OnnxModel

    model = OnnxModel(folder)
    items: list[tuple[str, np.ndarray]] = []
    for kind, clips in list(val.events.items()) + list(val.bgs.items()):
        for c in clips:
            p = model(c.float_audio())
            items.append((kind, p.max(axis=0) if len(p) else np.zeros(len(CLASSES))))
    kinds = np.array([k for k, _ in items])
    scores = np.stack([s for _, s in items])
    res: dict[str, Any] = {}
    for short, k in SHORT.items():
        res[CLASSES[k]] = {"roc_auc": roc_auc(scores[:, k], kinds == short), "positives": int((kinds == short).sum()),
                           "negatives": int((kinds != short).sum())}
    return res


# ---------------------------------------------------------------------------------------- streams


def stream_of(clips: list[Clip], seed: int, max_s: float = 1200.0) -> np.ndarray:
    """The clips one after another in a seeded order, up to ``max_s`` seconds."""
    order = np.random.default_rng(seed).permutation(len(clips))
    out, total = [], 0
    for i in order:
        x = clips[i].float_audio()
        out.append(x)
        total += len(x)
        if total >= max_s * SAMPLE_RATE:
            break
    return np.concatenate(out).astype(np.float32)


def with_events(bg: np.ndarray, events: list[Clip], seed: int) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """``bg`` with every event clip inserted once, ``GAP_S`` apart, at ``EVENT_SNR`` dB over the
    background's level; returns the audio and (start frame, end frame, class) of each event."""
    rng = np.random.default_rng(seed)
    x = bg.copy()
    bg_db = A.level_dbfs(bg)
    spans: list[tuple[int, int, str]] = []
    pos = int(2 * SAMPLE_RATE)
    for i in rng.permutation(len(events)):
        e = events[i].float_audio()
        if pos + len(e) > len(x):
            x = np.concatenate([x, bg[: pos + len(e) - len(x) + SAMPLE_RATE]])
        snr = float(rng.uniform(*EVENT_SNR))
        e = A.set_level(e, bg_db + snr)
        x[pos : pos + len(e)] += e
        spans.append((pos // FRAME_SAMPLES, (pos + len(e)) // FRAME_SAMPLES, CLASSES[SHORT[events[i].role]]))
        pos += len(e) + int(GAP_S * SAMPLE_RATE)
    return np.clip(x, -1, 1).astype(np.float32), spans


async def _engine_labels(engine: Any, handles: list[Any], x: np.ndarray) -> dict[str, list[str]]:
    out = await engine.process_audio_bytes(x, handles, output_period=64, volume_threshold=VOLUME_THRESHOLD)
    return {h.key: [r["results"][h.key]["result"] for r in out["time_series"]] for h in handles}


def engine_with(folder: Path) -> Any:
    """A Deeptone with the bundled models and AudioEvent from ``folder``."""
    from deeptone_async import Deeptone
    from deeptone_async.registry import bundled_specs
    from deeptone_async.spec import ModelSpec

    engine = Deeptone(threads_per_model=1, max_inference_threads=1, load_bundled=False)
    own = ModelSpec.from_folder(folder)
    for spec in bundled_specs():
        if spec.name in ("Speech", "Vad"):
            engine.register_model(spec)
    engine.register_model(own)
    return engine


def runs(labels: list[str], which: set[str]) -> list[tuple[int, int, str]]:
    """Runs of consecutive frames whose label is in ``which``: (start, end, label of the first)."""
    out, start = [], None
    for i, lab in enumerate([*labels, ""]):
        if lab in which and start is None:
            start = i
        elif lab not in which and start is not None:
            out.append((start, i, labels[start]))
            start = None
    return out


def false_alarms(labels: list[str], minutes: float) -> dict[str, Any]:
    r = runs(labels, set(EVENTS))
    per = {lab: sum(1 for _, _, x in r if x == lab) for lab in EVENTS}
    return {"false_alarms": len(r), "per_minute": len(r) / minutes, "per_hour": len(r) / minutes * 60,
            "by_class": per, "minutes": round(minutes, 2)}


def recall(labels: list[str], spans: list[tuple[int, int, str]]) -> dict[str, Any]:
    tail = int(0.5 * SAMPLE_RATE / FRAME_SAMPLES)
    hit = {lab: [0, 0] for lab in EVENTS}
    anyhit = 0
    for s, e, lab in spans:
        seg = labels[s : e + tail]
        hit[lab][1] += 1
        hit[lab][0] += lab in seg
        anyhit += any(x in EVENTS for x in seg)
    n = len(spans)
    return {"events": n, "recall": sum(h[0] for h in hit.values()) / max(n, 1), "recall_any_human_sound": anyhit / max(n, 1),
            "by_class": {lab: {"found": h[0], "events": h[1], "recall": h[0] / max(h[1], 1)} for lab, h in hit.items()}}


def event_streams(val: Pools) -> dict[str, Any]:
    """The val speech and music streams, event-free and with every val event clip."""
    evs = []
    for kind in ("pos", "neg", "nat"):
        for c in val.events[kind]:
            c.role = kind  # type: ignore[attr-defined]
            evs.append(c)
    out = {}
    for name, clips, seed in (("speech", val.bgs["speech"], 11), ("music", val.bgs["music"], 12)):
        bg = stream_of(clips, seed)
        x, spans = with_events(bg, evs, seed + 100)
        out[name] = {"clean": bg, "events": x, "spans": spans}
    return out


def choose_thresholds(folder: Path, streams: dict[str, Any], budget: float) -> dict[str, float]:
    """Lowest grid threshold per human-sound class with at most ``budget`` runs per minute of
    that class's score at or over it, on each event-free stream (frame scores of the ONNX)."""
    chosen = {}
    scores = {name: _frames(folder, st["clean"]) for name, st in streams.items()}
    for lab in EVENTS:
        k = CLASSES.index(lab)
        for t in GRID:
            ok = True
            for _name, p in scores.items():
                minutes = len(p) * FRAME_SAMPLES / SAMPLE_RATE / 60
                on = ["x" if v >= t else "" for v in p[:, k]]
                if len(runs(on, {"x"})) / minutes > budget:
                    ok = False
            if ok:
                chosen[lab] = float(t)
                break
        else:
            chosen[lab] = float(GRID[-1])
    return chosen


def stream_metrics(engine: Any, handle: Any, streams: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for name, st in streams.items():
        clean = asyncio.run(_engine_labels(engine, [handle], st["clean"]))[handle.key]
        withe = asyncio.run(_engine_labels(engine, [handle], st["events"]))[handle.key]
        minutes = len(st["clean"]) / SAMPLE_RATE / 60
        res[name] = {"event_free": false_alarms(clean, minutes), "with_events": recall(withe, st["spans"])}
    return res


# ---------------------------------------------------------------------------------------- Speech


def val_clips(corpora: list[str]) -> list[Clip]:
    """The val clips of ``corpora``, their audio copied out of the decoded corpora so that the
    training clips' memory is freed (the evaluation runs beside training on a small machine)."""
    out = split(load_corpora(corpora), "val")
    for c in out:
        c.audio = c.audio.copy()
    return out


def vs_speech(engine: Any, clips: list[Clip], max_clips: int, seed: int = 0) -> dict[str, Any]:
    """Speech / music / other frame accuracy of AudioEvent and the bundled Speech model, same
    engine call, same frames (``training.evaluate``'s sets on the val clips of its corpora)."""
    clips = [c for c in clips if c.corpus in ALL_CORPORA]
    if max_clips and len(clips) > max_clips:
        idx = np.random.default_rng(seed).choice(len(clips), max_clips, replace=False)
        clips = [clips[i] for i in sorted(idx)]
    sp, ae = engine.models.Speech, engine.models.AudioEvent
    to_smo = {"speech": 0, "music": 1, "noise": 2, "other": 2, **dict.fromkeys(EVENTS, 2)}
    res: dict[str, Any] = {"clips": len(clips)}
    for cond, items in smo_sets(clips, 7, seed):
        pred: dict[str, list[np.ndarray]] = {"speech": [], "audio_event": []}
        truth = []
        for x, t, _c, _loc in items:
            labs = asyncio.run(_engine_labels(engine, [sp, ae], x))
            n = min(len(t), len(labs[sp.key]))
            keep = t[:n] >= 0
            for name, key in (("speech", sp.key), ("audio_event", ae.key)):
                p = np.array([to_smo.get(v, -1) for v in labs[key][:n]])
                pred[name].append(p[keep])
            truth.append(t[:n][keep])
        tr = np.concatenate(truth)
        r = {}
        for name, ps in pred.items():
            p = np.concatenate(ps)
            ok = p >= 0  # silence from the engine's gate where the truth's gate kept the frame: wrong
            m = cls_metrics(np.where(ok, p, (tr + 1) % 3), tr, list(SMO))
            r[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        r["frames"] = int(len(tr))
        res[cond] = r
        print(cond, r, flush=True)
    return res


def to_markdown(res: dict[str, Any]) -> str:
    L = ["# Evaluation: audio_event", "", f"Command: `{res['command']}`", "",
         f"Thresholds: {res['thresholds']}", "", "Frame ROC-AUC on val mixtures "
         f"({res['frame_auc']['examples']} mixtures of 2 s scored):", "", "| class | ROC-AUC | positive frames |",
         "|---|---|---|"]
    for lab in CLASSES:
        r = res["frame_auc"][lab]
        L.append(f"| {lab} | {r['roc_auc']:.4f} | {r['positive_frames']} |")
    L += ["", "Clip ROC-AUC (each val event clip alone vs every other val clip):", "",
          "| class | ROC-AUC | positives | negatives |", "|---|---|---|---|"]
    for lab in EVENTS:
        r = res["clip_auc"][lab]
        L.append(f"| {lab} | {r['roc_auc']:.4f} | {r['positives']} | {r['negatives']} |")
    L += ["", "Events through the engine (val streams):", "",
          "| stream | minutes | false alarms / min | / hour | events | recall (class) | recall (any human sound) |",
          "|---|---|---|---|---|---|---|"]
    for name, r in res["streams"].items():
        fa, rc = r["event_free"], r["with_events"]
        L.append(f"| {name} | {fa['minutes']} | {fa['per_minute']:.2f} | {fa['per_hour']:.0f} | {rc['events']} | "
                 f"{rc['recall']:.3f} | {rc['recall_any_human_sound']:.3f} |")
    if "vs_speech" in res:
        L += ["", f"Speech / music / other frame accuracy vs the bundled Speech model ({res['vs_speech']['clips']} val "
              "clips, same engine call):", "", "| condition | frames | Speech | AudioEvent | Speech macro F1 | "
              "AudioEvent macro F1 |", "|---|---|---|---|---|---|"]
        for cond, r in res["vs_speech"].items():
            if isinstance(r, dict):
                L.append(f"| {cond} | {r['frames']} | {r['speech']['accuracy']:.4f} | {r['audio_event']['accuracy']:.4f} | "
                         f"{r['speech']['macro_f1']:.4f} | {r['audio_event']['macro_f1']:.4f} |")
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--out", type=Path, default=None, help="where eval.json / eval.md go (default: --folder)")
    ap.add_argument("--choose-thresholds", action="store_true")
    ap.add_argument("--fa-budget", type=float, default=2.0, help="false alarms per minute per class when choosing")
    ap.add_argument("--max-clips", type=int, default=500, help="val clips of the Speech comparison (0: all)")
    ap.add_argument("--skip-speech", action="store_true", help="leave out the Speech comparison")
    a = ap.parse_args()
    out = a.out or a.folder
    clips = val_clips(list(CORPORA))
    val = Pools.of(clips)
    streams = event_streams(val)
    spec_path = a.folder / "spec.json"
    spec = json.loads(spec_path.read_text())
    if a.choose_thresholds:
        chosen = choose_thresholds(a.folder, streams, a.fa_budget)
        spec["multi_label"]["thresholds"].update(chosen)
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        print("thresholds", chosen, flush=True)
    res: dict[str, Any] = {"command": "python -m training.evaluate_audio_event" + (" --choose-thresholds" if a.choose_thresholds else ""),
                           "thresholds": spec["multi_label"]["thresholds"], "fa_budget_when_chosen": a.fa_budget}
    res["frame_auc"] = frame_auc(a.folder, val)
    print("frame auc", {k: v for k, v in res["frame_auc"].items() if k != "examples"}, flush=True)
    res["clip_auc"] = clip_auc(a.folder, val)
    print("clip auc", res["clip_auc"], flush=True)
    engine = engine_with(a.folder)
    res["streams"] = stream_metrics(engine, engine.models.AudioEvent, streams)
    print("streams", res["streams"], flush=True)
    if not a.skip_speech:
        res["vs_speech"] = vs_speech(engine, clips, a.max_clips)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / "eval.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
