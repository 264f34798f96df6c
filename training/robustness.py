"""Robustness of a bundled model on real-world channels, measured through the public engine API.

    python -m training.robustness --model speech [--manifest PATH] [--split val] [--max-clips N] [--out DIR]
    python -m training.robustness --model gender --folder CANDIDATE_DIR --out DIR   # a retrained graph instead

Each clip of the validation split of the corpora the model's card is evaluated on is degraded
under fixed, deterministic conditions and analysed with ``Deeptone().process_audio_bytes``,
as a user would (``output_period=64`` for one result per 64 ms frame, raw values on, the
volume gate at -60 dBFS, the frame truth's gate):

==============  ============================================================================
clean           the clip as it is
telephone       8 kHz, G.712 300-3400 Hz band-pass, G.711 mu-law; handed to the engine at
                8 kHz (``rate_in=8000``), as a phone system delivers it
codec           Ogg Opus at 8 kbit/s (VoIP / messenger voice), 16 kHz
reverb          a simulated room per clip (RT60 0.4-0.8 s, talker 1-3 m from the microphone;
                :mod:`training.augment.rooms`)
noise_10dB/0dB  a noise clip of the ``noise`` corpus' val split (not ``children_playing``,
                which has voices) mixed at 10 / 0 dB SNR over the clip's active frames
music_10dB/0dB  a music clip of the ``music`` corpus' val split, likewise
==============  ============================================================================

A background goes only under clips whose label it keeps true (the task's
:class:`training.augment.Policy`: no music under an ``other`` clip for the speech/music/other
models), so a mixed condition may hold fewer clips than clean; ``n`` says how many. Every
clip's draws come from a generator seeded by the condition and the clip's file name, so a
clip gets the same degradation whatever ``--max-clips`` picks.

Headline metric per model (as in its card): Speech / SpeechRT frame accuracy and macro F1
(energy frame truth of :mod:`training.evaluate`, speech hangover 7 / 1 frames), Vad speech
ROC-AUC of p(speech) on the same frames (hangover 1, as in the SpeechRT card's comparison),
Gender clip accuracy (majority of the model's frame decisions over the clip's speech frames,
as ``training.evaluate``), Arousal / Emotions clip UAR (``training.evaluate_affect``). The
"engine" columns score what the engine's labels alone say (its speech detector's ``no_speech``,
``unknown`` and gate included): a clip with no label of the model counts as wrong.

Results: ``DIR/robustness.json`` and ``DIR/robustness.md`` (default DIR:
``training/robustness/<model>``). Your own data: ``--corpora --manifest my/manifest.csv``
(columns as for ``training.evaluate`` / ``training.evaluate_affect``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import augment as A
from .augment import codecs, levels, rooms
from .data import (
    ALL_CORPORA,
    REPO,
    SPEECH_CORPORA,
    UNDERAGE,
    UNDERAGE_CORPORA,
    Clip,
    active_frames,
    hangover,
    load_corpora,
    underage_class,
)
from .evaluate import HANGOVER, cls_metrics, roc_auc
from .sampler import GATE_DB, GENDERS, SMO

CONDITIONS = ("clean", "telephone", "codec", "reverb", "noise_10dB", "noise_0dB", "music_10dB", "music_0dB")
HANDLES = {"vad": "Vad", "speech": "Speech", "speech_rt": "SpeechRT", "gender": "Gender",
           "arousal": "Arousal", "emotions": "Emotions", "underage_speaker": "UnderageSpeaker"}
KIND = {"vad": "vad", "speech": "smo", "speech_rt": "smo", "gender": "gender", "arousal": "affect",
        "emotions": "affect", "underage_speaker": "underage"}
#: the label policy of a model the augmentation chain has no entry for (voice models: "voice")
POLICY = {"underage_speaker": "voice"}
VOLUME_THRESHOLD = 10 ** (GATE_DB / 20)  # the engine's gate at the frame truth's -60 dBFS
OUT = REPO / "training" / "robustness"


@dataclass
class Heard:
    """One clip under one condition: what the engine is given and what the truth is made of."""

    audio: np.ndarray  # handed to the engine at ``rate``
    rate: int
    at16k: np.ndarray  # the same audio at 16 kHz, for the volume gate of the truth
    added: str | None  # content a background added (music / other), or None


def _rng(seed: int, cond: str, clip: Clip) -> np.random.Generator:
    """The generator of one clip under one condition: the same whatever else is evaluated."""
    return np.random.default_rng([seed, CONDITIONS.index(cond), zlib.crc32(f"{clip.corpus}/{clip.file}".encode())])


def degrade(cond: str, clip: Clip, bgs: A.Backgrounds, policy: A.Policy, seed: int = 0) -> Heard | None:
    """``clip`` under condition ``cond`` (one of :data:`CONDITIONS`), or None when the
    condition's background would not keep the clip's label true under ``policy``.

    Raises:
        ValueError: unknown condition.
        codecs.CodecUnavailable: the codec is missing here.
        ImportError: reverb without pyroomacoustics.
    """
    x = clip.float_audio()
    rng = _rng(seed, cond, clip)
    if cond == "clean":
        return Heard(x, 16000, x, None)
    if cond == "telephone":
        y8 = codecs.telephone(x, "mulaw", band=True, out_sr=codecs.TEL_SR)
        return Heard(y8, codecs.TEL_SR, codecs.pad_or_cut(codecs.resample(y8, codecs.TEL_SR, 16000), len(x)), None)
    if cond == "codec":
        y = codecs.opus(x, 8.0)
        return Heard(y, 16000, y, None)
    if cond == "reverb":
        room = rooms.draw_room(rng, rt60=(0.4, 0.8), distance=(1.0, 3.0))
        y = np.clip(rooms.reverb(x, rooms.ism_rir(room, rng)), -1, 1)
        return Heard(y, 16000, y, None)
    kind, _, snr = cond.partition("_")
    if kind not in ("noise", "music") or not snr.endswith("dB"):
        raise ValueError(f"unknown condition {cond!r}")
    if not policy.allows(kind, clip.cls):
        return None
    pool = bgs.noise if kind == "noise" else bgs.music
    src = pool[int(rng.integers(len(pool)))]
    bg = levels.fit_length(src, len(x), int(rng.integers(len(src))))
    y = np.clip(levels.mix_at_snr(x, bg, float(snr[:-2]), levels.active_mask(x)), -1, 1)
    return Heard(y, 16000, y, A.ADDS[kind])


def _frame_db(x: np.ndarray) -> np.ndarray:
    """dBFS of each whole 64 ms frame."""
    return levels.frame_levels(x)


async def run_engine(engine: Any, handle: Any, h: Heard) -> tuple[list[str], np.ndarray]:
    """(label per 64 ms frame, raw probabilities (frames, classes)) from the engine."""
    out = await engine.process_audio_bytes(h.audio, [handle], output_period=64, include_raw_values=True,
                                           rate_in=h.rate, volume_threshold=VOLUME_THRESHOLD)
    key, labels = handle.key, handle.labels
    ts = out["time_series"]
    return ([r["results"][key]["result"] for r in ts],
            np.array([[r["raw"][key][lab] for lab in labels] for r in ts], np.float32).reshape(len(ts), len(labels)))


# ---------------------------------------------------------------------------------------- scoring


def smo_truth(clip: Clip, h: Heard, hang: int) -> np.ndarray:
    """Frame truth (index into SMO, -1 = not scored) as :func:`training.evaluate.smo_sets`
    makes it: a speech clip's active frames + hangover are speech, its other frames take the
    added background's class (``other`` without one); music / other clips keep their class;
    frames below the -60 dBFS gate in what the engine hears are not scored."""
    x = clip.float_audio()
    fdb = _frame_db(x)
    if clip.cls == "speech":
        t = np.where(hangover(active_frames(fdb, clip.ref_db), hang), 0, SMO.index(h.added or "other"))
    else:
        t = np.full(len(fdb), SMO.index(clip.cls))
    heard = _frame_db(h.at16k)[: len(t)]
    t[: len(heard)][heard < GATE_DB] = -1
    return t


def _speech_frames(clip: Clip, h: Heard, hang: int) -> np.ndarray:
    """Speech frames of a clip: energy-active in the clean clip (+ ``hang`` frames), not gated
    in what the engine hears."""
    fdb = _frame_db(clip.float_audio())
    on = hangover(active_frames(fdb, clip.ref_db), hang)
    return on & (_frame_db(h.at16k)[: len(on)] >= GATE_DB)


def score_frames(model: str, items: list[tuple[Clip, Heard, list[str], np.ndarray]]) -> dict:
    """Speech / SpeechRT / Vad metrics of one condition from the engine's outputs."""
    hang = HANGOVER["speech_rt"] if model in ("vad", "speech_rt") else HANGOVER["speech"]
    truths, preds, scores, corp = [], [], [], []
    for clip, h, labs, raw in items:
        t = smo_truth(clip, h, hang)
        n = min(len(t), len(labs))
        t, lab, raw = t[:n], labs[:n], raw[:n]
        if model == "vad":
            pred = np.array([{"speech": 0, "no_speech": 1}.get(v, -1) for v in lab])
            t = np.where(t < 0, -1, np.where(t == 0, 0, 1))
        else:
            pred = np.array([SMO.index(v) if v in SMO else -1 for v in lab])
        truths.append(t)
        preds.append(pred)
        scores.append(raw[:, 0])
        corp += [clip.corpus] * n
    t, p, s, corp = np.concatenate(truths), np.concatenate(preds), np.concatenate(scores), np.array(corp)
    keep = t >= 0
    gated = int((keep & (p < 0)).sum())  # scored by the truth, called silence by the engine
    keep &= p >= 0
    labels = ["speech", "no_speech"] if model == "vad" else list(SMO)
    r = cls_metrics(p[keep], t[keep], labels)
    r["speech_roc_auc"] = roc_auc(s[keep], t[keep] == 0)
    r["frames_gated_by_engine"] = gated
    r["per_corpus_accuracy"] = {k: float((p[keep & (corp == k)] == t[keep & (corp == k)]).mean())
                                for k in sorted(set(corp[keep]))}
    return r


def _majority(votes: Sequence[int], k: int) -> int:
    """The most frequent of ``votes`` (classes 0..k-1; ties to the lowest), or ``k`` if none."""
    return int(np.bincount(np.asarray(votes, np.int64), minlength=k).argmax()) if len(votes) else k


def _clip_votes(clip: Clip, h: Heard, labs: list[str], raw: np.ndarray,
                labels: Sequence[str]) -> tuple[int, int] | None:
    """A voice model's clip decisions, over the clip's speech frames (energy truth +
    2 frames hangover, above the gate): the majority of the frame argmax of ``raw``, and the
    majority of the engine's labels among ``labels`` (``len(labels)`` where it gave none);
    None for a clip without speech frames."""
    sp = _speech_frames(clip, h, 2)
    n = min(len(sp), len(labs))
    sp = sp[:n]
    if not sp.any():
        return None
    k = len(labels)
    return _majority(raw[:n][sp].argmax(1), k), _majority([labels.index(v) for v in labs[:n] if v in labels], k)


def score_gender(items: list[tuple[Clip, Heard, list[str], np.ndarray]]) -> dict:
    """Gender clip accuracy: the majority of the frame argmax over the clip's speech frames
    (energy truth + 2 frames hangover, above the gate; ``training.evaluate.eval_gender``), and
    the majority of the engine's male / female labels (none: wrong)."""
    ct, cp, ce, corp = [], [], [], []
    for clip, h, labs, raw in items:
        votes = _clip_votes(clip, h, labs, raw, GENDERS)
        if votes is None:
            continue
        ct.append(GENDERS.index(clip.gender))
        cp.append(votes[0])
        ce.append(votes[1])
        corp.append(clip.corpus)
    t, p, e, corp = np.array(ct), np.array(cp), np.array(ce), np.array(corp)
    r = {"clips": cls_metrics(p, t, list(GENDERS)), "engine_clips": cls_metrics(e, t, [*GENDERS, "none"])}
    r["clips_by_corpus"] = {k: cls_metrics(p[corp == k], t[corp == k], list(GENDERS)) for k in sorted(set(corp))}
    return r


def score_underage(items: list[tuple[Clip, Heard, list[str], np.ndarray]]) -> dict:
    """UnderageSpeaker clip balanced accuracy (child / adult; clip decision as for Gender: the
    majority of the frame argmax over the clip's speech frames), the engine's labels likewise,
    the share of each adult corpus' clips called child (women and men apart), and the share of
    speechocean's teens (13-17, not trained on) called child."""
    ct, cp, ce, key = [], [], [], []
    teens = []
    for clip, h, labs, raw in items:
        votes = _clip_votes(clip, h, labs, raw, UNDERAGE)
        if votes is None:
            continue
        pred = votes[0]
        cls = underage_class(clip)
        if not cls:
            if clip.age_band == "teen":
                teens.append(pred == 0)
            continue
        ct.append(UNDERAGE.index(cls))
        cp.append(pred)
        ce.append(votes[1])
        key.append(f"{clip.corpus}:{cls}:{clip.gender or '-'}")
    t, p, e, key = np.array(ct), np.array(cp), np.array(ce), np.array(key)
    r: dict[str, Any] = {"clips": cls_metrics(p, t, list(UNDERAGE)),
                         "engine_clips": cls_metrics(e, t, [*UNDERAGE, "none"])}
    r["called_child_by_group"] = {k: {"n": int((key == k).sum()), "share": float((p[key == k] == 0).mean())}
                                  for k in sorted(set(key))}
    adult = t == 1
    r["adult_corpora_max_called_child"] = max(
        (float((p[adult & np.char.startswith(key, c + ":")] == 0).mean())
         for c in sorted({k.split(":")[0] for k in key[adult]})), default=float("nan"))
    r["teens_called_child"] = {"n": len(teens), "share": float(np.mean(teens)) if teens else float("nan")}
    return r


def score_affect(model: str, items: list[tuple[Clip, Heard, list[str], np.ndarray]], ys: dict[int, int]) -> dict:
    """Arousal / Emotions clip UAR by ``training.evaluate_affect.metrics`` (clip decision: argmax
    of the mean probability over the clip's speech frames), and the engine's most frequent label."""
    from .affect import MODELS, speech_mask
    from .evaluate_affect import metrics

    labels = list(MODELS[model]["labels"])
    outs, ce, ct = [], [], []
    for clip, h, labs, raw in items:
        m = speech_mask(clip.float_audio(), h.at16k, hang=0)
        n = min(len(m), len(labs))
        if not m[:n].any():
            continue
        y = ys[id(clip)]
        outs.append((clip, y, raw[:n], m[:n]))
        ct.append(y)
        ce.append(_majority([labels.index(v) for v in labs[:n] if v in labels], len(labels)))
    r = metrics(outs, labels)
    r["engine_clips"] = cls_metrics(np.array(ce), np.array(ct), [*labels, "none"])
    return r


# ---------------------------------------------------------------------------------------- driver


def select(model: str, corpora: list[str], manifests: list[str], split: str,
           max_clips: int) -> tuple[list[Clip], dict[int, int]]:
    """The clips to evaluate (``split``, deterministic subsample of ``max_clips``) and, for the
    affect models, each clip's class index (keyed by ``id(clip)``)."""
    ys: dict[int, int] = {}
    if KIND[model] == "affect":
        from .affect import MODELS, load_affect, mapping_for

        pairs, _ = load_affect(corpora, manifests, mapping_for(model, None), MODELS[model]["labels"])
        clips = [c for c, _ in pairs]
        ys = {id(c): y for c, y in pairs}
    else:
        clips = load_corpora(corpora, manifests)
        if KIND[model] == "gender":
            clips = [c for c in clips if c.gender in GENDERS]
        elif KIND[model] == "underage":
            clips = [c for c in clips if underage_class(c) or (c.corpus == "speechocean" and c.age_band == "teen")]
    clips = [c for c in clips if c.split == split]
    if max_clips and len(clips) > max_clips:
        idx = np.random.default_rng(0).choice(len(clips), max_clips, replace=False)
        clips = [clips[i] for i in sorted(idx)]
    return clips, ys


def engine_for(model: str, folder: Path | None = None) -> Any:
    """A ``Deeptone`` with the bundled models, ``model``'s own taken from ``folder`` when given
    (a retrained candidate, compared with the bundled one before it ships).

    Raises:
        ModelError: a model folder does not load.
    """
    from deeptone_async import Deeptone
    from deeptone_async.registry import bundled_specs
    from deeptone_async.spec import ModelSpec

    if folder is None:
        return Deeptone(threads_per_model=1, max_inference_threads=1)
    engine = Deeptone(threads_per_model=1, max_inference_threads=1, load_bundled=False)
    own = ModelSpec.from_folder(folder)
    for spec in bundled_specs():
        engine.register_model(own if spec.name == own.name else spec)
    return engine


def evaluate(model: str, clips: list[Clip], ys: dict[int, int], bgs: A.Backgrounds,
             conditions: Sequence[str] = CONDITIONS, seed: int = 0,
             log: Callable[[str], None] = print, folder: Path | None = None) -> dict:
    """Every condition's metrics for ``model`` on ``clips`` through a fresh ``Deeptone``
    (``model``'s graph from ``folder`` when given, else the bundled one).

    Blocks for the whole run (minutes). Raises what :func:`degrade` and the engine raise."""
    engine = engine_for(model, folder)
    handle = getattr(engine.models, HANDLES[model])
    policy = A.policy_for(POLICY.get(model, model))
    res: dict[str, Any] = {}

    async def run(cond: str) -> list[tuple[Clip, Heard, list[str], np.ndarray]]:
        items = []
        for c in clips:
            h = degrade(cond, c, bgs, policy, seed)
            if h is not None:
                labs, raw = await run_engine(engine, handle, h)
                items.append((c, h, labs, raw))
        return items

    for cond in conditions:
        t0 = time.time()
        items = asyncio.run(run(cond))
        kind = KIND[model]
        if kind in ("smo", "vad"):
            r = score_frames(model, items)
        elif kind == "gender":
            r = score_gender(items)
        elif kind == "underage":
            r = score_underage(items)
        else:
            r = score_affect(model, items, ys)
        r["n_clips"] = len(items)
        r["seconds"] = round(time.time() - t0, 1)
        res[cond] = r
        log(f"{model} {cond}: {headline(model, r)} ({len(items)} clips, {r['seconds']} s)")
    return res


def headline(model: str, r: dict) -> dict[str, float]:
    """The card's headline figures of one condition's result."""
    kind = KIND[model]
    if kind == "smo":
        return {"frame accuracy": r["accuracy"], "macro F1": r["macro_f1"], "speech ROC-AUC": r["speech_roc_auc"]}
    if kind == "vad":
        return {"speech ROC-AUC": r["speech_roc_auc"], "frame accuracy": r["accuracy"]}
    if kind == "gender":
        return {"clip accuracy": r["clips"]["accuracy"], "clip balanced accuracy": r["clips"]["balanced_accuracy"],
                "engine clip accuracy": r["engine_clips"]["accuracy"]}
    if kind == "underage":
        return {"clip balanced accuracy": r["clips"]["balanced_accuracy"],
                "engine clip balanced accuracy": r["engine_clips"]["balanced_accuracy"],
                "adult corpus most called child": r["adult_corpora_max_called_child"],
                "teens called child": r["teens_called_child"]["share"]}
    return {"clip UAR": r["all"]["clips"]["balanced_accuracy"], "frame UAR": r["all"]["frames"]["balanced_accuracy"],
            "engine clip UAR": r["engine_clips"]["balanced_accuracy"]}


def to_markdown(model: str, res: dict) -> str:
    """The robustness table: headline figures per condition and their change from clean."""
    conds = res["conditions"]
    heads = {c: headline(model, r) for c, r in conds.items()}
    cols = list(next(iter(heads.values())))
    clean = heads.get("clean")
    lines = [f"# Robustness: {HANDLES[model]}", "",
             f"Command: `{res['command']}`", "",
             f"Corpora {res['corpora']} + manifests {res['manifests']}, split `{res['split']}`, "
             f"{res['clips']} clips{' (subsample)' if res['max_clips'] else ''}; through "
             f"`Deeptone().process_audio_bytes` (volume gate -60 dBFS). Conditions: "
             "`python -m training.robustness --help`.", "",
             "| condition | clips | " + " | ".join(cols) + (" | change from clean (points) |" if clean else " |"),
             "|---|---|" + "---|" * len(cols) + ("---|" if clean else "")]
    for c, h in heads.items():
        row = f"| {c} | {conds[c]['n_clips']} | " + " | ".join(f"{h[k]:.4f}" for k in cols) + " |"
        if clean:
            row += " " + ", ".join(f"{100 * (h[k] - clean[k]):+.1f}" for k in cols) + " |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def summary(folder: Path = OUT) -> str:
    """One markdown page of every ``<folder>/<model>/robustness.json``: the headline figures per
    condition, each with its change from clean in points."""
    lines = ["# Robustness of the bundled models", "",
             "Written by `python -m training.robustness --summary` from the `robustness.json` of each "
             "model folder here (each folder's `robustness.md` has its command and clip counts). Where a model "
             "was retrained since the first measurement, its folder's `baseline.json` / `baseline.md` keep the "
             "figures of the model it replaced.", ""]
    for f in sorted(folder.glob("*/robustness.json")):
        res = json.loads(f.read_text())
        if "headline" not in res:  # another command's format (training.robustness_audio_event): its own robustness.md
            lines += [f"## {res.get('model', f.parent.name)}", "", f"See `{f.parent.name}/robustness.md` "
                      f"(`{res.get('command', '')}`).", ""]
            continue
        heads = res["headline"]
        clean = heads.get("clean", {})
        lines += [f"## {HANDLES.get(res['model'], res['model'])}", "",
                  f"`{res['command']}`: {res['clips']} clips, {res['seconds']:.0f} s", "",
                  "| metric | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
        for k in next(iter(heads.values())):
            cells = [f"{h[k]:.4f}" + (f" ({100 * (h[k] - clean[k]):+.1f})" if c != "clean" and k in clean else "")
                     for c, h in heads.items()]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def default_corpora(model: str) -> list[str]:
    """The corpora the model's card is evaluated on."""
    kind = KIND[model]
    if kind == "affect":
        from .affect import AFFECT_CORPORA

        return list(AFFECT_CORPORA)
    if kind == "underage":
        return list(UNDERAGE_CORPORA)
    return list(SPEECH_CORPORA) if kind == "gender" else list(ALL_CORPORA)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (see the module docstring); writes the two result files.

    Raises:
        SystemExit: no clips to evaluate, or bad arguments.
    """
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(HANDLES))
    ap.add_argument("--summary", action="store_true",
                    help="write training/robustness/README.md from the results there, and stop")
    ap.add_argument("--corpora", nargs="*", default=None, help="default: the corpora of the model's card")
    ap.add_argument("--manifest", action="append", default=[], help="a manifest of your own (repeatable)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-clips", type=int, default=0, help="deterministic subsample (0: all)")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--bg-split", default="val", help="split of the noise and music corpora mixed in")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder (default training/robustness/<model>)")
    ap.add_argument("--folder", type=Path, default=None,
                    help="model folder to evaluate instead of the bundled one (e.g. a retrained candidate)")
    a = ap.parse_args(argv)
    if a.summary:
        (OUT / "README.md").write_text(summary())
        return
    if a.model is None:
        ap.error("--model is required (or --summary)")
    corpora = default_corpora(a.model) if a.corpora is None else a.corpora
    clips, ys = select(a.model, corpora, a.manifest, a.split, a.max_clips)
    if not clips:
        raise SystemExit(f"no clips of split {a.split!r} in {corpora} + {a.manifest}")
    bgs = A.Backgrounds.from_clips(load_corpora(["noise", "music"]), split=a.bg_split)
    t0 = time.time()
    conds = evaluate(a.model, clips, ys, bgs, a.conditions, a.seed, folder=a.folder)
    res = {"model": a.model, "command": "python -m training.robustness " + " ".join(sys.argv[1:] if argv is None else argv),
           "corpora": corpora, "manifests": a.manifest, "split": a.split, "max_clips": a.max_clips,
           "clips": len(clips), "seed": a.seed, "volume_threshold": VOLUME_THRESHOLD,
           "seconds": round(time.time() - t0, 1), "headline": {c: headline(a.model, r) for c, r in conds.items()},
           "conditions": conds}
    out = a.out or OUT / a.model
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(res, indent=1) + "\n")
    md = to_markdown(a.model, res)
    (out / "robustness.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
