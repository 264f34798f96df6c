"""Evaluate the SpeakerMap embedding on held-out speakers: verification EER, identification, speed.

    python -m training.evaluate_speaker [--folder deeptone_async/models/speaker_map] [--conditions ...]
    # -> FOLDER/eval_embedding.json and FOLDER/eval_embedding.md

Only the val splits of the training corpora are used: their speakers are none of the training
speakers (the shared data's splits are speaker-disjoint; vctk has one speaker, all in train).

* **Utterance embedding**: the ONNX graph run over the whole clip as a stream starts (the
  ``4 * context_frames`` rows before it at the silence floor); the mean of the frame
  embeddings over the clip's *speech frames*, renormalised. Speech frames: frames whose 2.1 s
  receptive field holds at least 10 energy-active frames of the clean clip (the training rule:
  :func:`training.data.active_frames`), or, in a clip with none, its active frames. Clips with
  fewer than 16 active frames (1 s of speech) are left out.
* **Verification**: trials between two clips of the same corpus (cross-corpus pairs would be
  easy negatives): for every speaker up to 20 target pairs of their clips, for every clip 5
  non-target pairs with other speakers' clips (seeded). Score = cosine similarity. EER pooled
  over all trials and per corpus; the threshold at the pooled EER.
* **Conditions** (:func:`training.robustness.degrade`, the robustness table's): clean, telephone
  (8 kHz, G.712 band-pass, G.711 mu-law, back to 16 kHz as the engine resamples it), Opus 8
  kbit/s, a simulated room, noise and music of the val splits at 10 and 0 dB. Both sides of a
  trial are under the same condition.
* **Identification**: N speakers of one corpus (N = 2, 5, 20; 300 draws, corpora with at least N
  eligible speakers drawn equally), each enrolled with 5 s of their clips concatenated (a
  speaker's clips in a seeded order, cut at 5.0 s), the embedding of the enrolment audio run as
  one stream; every other clip of those speakers is given to the enrolled speaker of highest
  cosine. Accuracy over test clips, clean.
* **Frame threshold**: the same kind of trials between single frame embeddings (frames whose
  receptive field holds >= 25 active frames), for a clusterer comparing 2.1 s windows.
* **Speed**: :func:`training.export.speed_us_per_frame` (one onnxruntime thread, 64-frame
  blocks with the context carried, as for the other models) and the ONNX size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from deeptone_async.features import HOP_SAMPLES, N_MELS, SILENCE_FLOOR, SUBFRAMES, logmel

from . import augment as A
from .data import Clip, active_frames, frame_db_from_hops, hop_db, load_corpora

CONDITIONS = ("clean", "telephone", "codec", "reverb", "noise_10dB", "noise_0dB", "music_10dB", "music_0dB")
MIN_SPEECH = 16
_LOADED: dict[str, list[Clip]] = {}
ENROL_S = 5.0


def _folder() -> Path:
    from .speaker_embedding import FOLDER

    return FOLDER


def val_clips(max_speakers: int = 0, seed: int = 0, backgrounds: bool = True) -> tuple[list[Clip], list[Clip]]:
    """(val clips with a speaker and >= 1 s of speech, val noise and music clips).
    ``max_speakers`` > 0: at most that many speakers per corpus (seeded choice, all their clips)."""
    from .speaker_embedding import BG_CORPORA, CORPORA, clip_active, speaker_clips

    if "val" not in _LOADED:  # one load per process (export + evaluation in one run)
        _LOADED["val"] = [c for c in speaker_clips(load_corpora(list(CORPORA)), "val")
                          if clip_active(c).sum() >= MIN_SPEECH]
    clips = _LOADED["val"]
    if max_speakers:
        rng = np.random.default_rng(seed)
        keep: set[str] = set()
        for corpus in sorted({c.corpus for c in clips}):
            spk = sorted({c.speaker for c in clips if c.corpus == corpus})
            keep |= {f"{corpus}:{s}" for s in rng.permutation(spk)[:max_speakers]}
        clips = [c for c in clips if f"{c.corpus}:{c.speaker}" in keep]
    bgs = [c for c in load_corpora(list(BG_CORPORA)) if c.split == "val"] if backgrounds else []
    return clips, bgs


def frame_embeddings(sess, x: np.ndarray, ctx: int) -> np.ndarray:
    """(frames, dim) embeddings of float audio ``x`` run as one stream from its start."""
    n = len(x) // HOP_SAMPLES * HOP_SAMPLES
    rows = logmel(x[:n].astype(np.float32))[: len(x) // (SUBFRAMES * HOP_SAMPLES) * SUBFRAMES]
    feats = np.concatenate([np.full((SUBFRAMES * ctx, N_MELS), SILENCE_FLOOR, np.float32), rows])[None]
    return sess.run(None, {"features": feats})[0][0]


def speech_weights(clean: np.ndarray, ctx: int, need: int = 10) -> np.ndarray:
    """Frames whose receptive field (``ctx + 1`` frames) holds >= ``need`` energy-active frames of
    the clean audio; the active frames themselves when no frame qualifies."""
    fdb = frame_db_from_hops(hop_db(clean))
    act = active_frames(fdb, float(np.percentile(fdb, 95)) if len(fdb) else -100.0)
    c = np.concatenate([[0], np.cumsum(act)])
    idx = np.arange(len(act))
    n_act = c[idx + 1] - c[np.maximum(idx + 1 - (ctx + 1), 0)]
    ok = n_act >= need
    return ok if ok.any() else act


def utterance(emb: np.ndarray, frames: np.ndarray) -> np.ndarray:
    m = emb[: len(frames)][frames[: len(emb)]].mean(0)
    return m / (np.linalg.norm(m) + 1e-12)


def eer(scores: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold there) of similarity ``scores`` with boolean ``target``."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], target[order]
    nt, nn_ = t.sum(), (~t).sum()
    fa = np.cumsum(~t) / max(nn_, 1)  # accepting the top k: false accepts
    fr = 1 - np.cumsum(t) / max(nt, 1)  # false rejects
    k = int(np.argmin(np.abs(fa - fr)))
    return float((fa[k] + fr[k]) / 2), float(s[k])


def trials(speakers: list[str], corpora: list[str], seed: int = 0, per_spk: int = 20,
           per_clip: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, is_target) index pairs of clips: targets of one speaker, non-targets within a corpus."""
    rng = np.random.default_rng(seed)
    by_spk, by_corp = defaultdict(list), defaultdict(list)
    for k, (s, c) in enumerate(zip(speakers, corpora)):
        by_spk[s].append(k)
        by_corp[c].append(k)
    out = []
    for s in sorted(by_spk):
        v = by_spk[s]
        pairs = [(a, b) for x, a in enumerate(v) for b in v[x + 1 :]]
        for q in rng.permutation(len(pairs))[:per_spk]:
            out.append((*pairs[q], 1))
    for k in range(len(speakers)):
        pool = [j for j in by_corp[corpora[k]] if speakers[j] != speakers[k]]
        for j in rng.choice(pool, size=min(per_clip, len(pool)), replace=False) if pool else []:
            out.append((k, int(j), 0))
    a = np.array(out, np.int64)
    return a[:, 0], a[:, 1], a[:, 2].astype(bool)


def verification(utts: np.ndarray, speakers: list[str], corpora: list[str]) -> dict:
    i, j, t = trials(speakers, corpora)
    sc = (utts[i] * utts[j]).sum(1)
    e, thr = eer(sc, t)
    corp = np.array(corpora)[i]
    per = {}
    for c in sorted(set(corp)):
        m = corp == c
        if t[m].any() and (~t[m]).any():
            per[c] = round(eer(sc[m], t[m])[0], 4)
    return {"eer": round(e, 4), "threshold": round(thr, 4), "n_target": int(t.sum()), "n_nontarget": int((~t).sum()),
            "per_corpus_eer": per}


def embed_all(sess, ctx: int, clips: list[Clip], audios: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(utterance embeddings (n, dim), frame embeddings per clip) of ``audios`` (16 kHz float),
    speech frames from the clean ``clips``."""
    utts, frames = [], []
    for c, x in zip(clips, audios):
        e = frame_embeddings(sess, x, ctx)
        utts.append(utterance(e, speech_weights(c.float_audio(), ctx)))
        frames.append(e)
    return np.stack(utts), frames


def frame_threshold(frames: list[np.ndarray], clips: list[Clip], ctx: int, seed: int = 0) -> dict:
    """EER and threshold between single frame embeddings (>= 25 active frames in the field)."""
    rng = np.random.default_rng(seed)
    picked, spk, corp = [], [], []
    for e, c in zip(frames, clips):
        ok = np.flatnonzero(speech_weights(c.float_audio(), ctx, need=25)[: len(e)])
        if len(ok):
            picked.append(e[int(rng.choice(ok))])
            spk.append(f"{c.corpus}:{c.speaker}")
            corp.append(c.corpus)
    i, j, t = trials(spk, corp, seed)
    v = np.stack(picked)
    e, thr = eer((v[i] * v[j]).sum(1), t)
    return {"frame_eer": round(e, 4), "frame_threshold": round(thr, 4), "frame_n_target": int(t.sum())}


def identification(sess, ctx: int, clips: list[Clip], ns=(2, 5, 20), draws: int = 300, seed: int = 0) -> dict:
    """Accuracy of naming the speaker of a clip among N enrolled (5 s each) speakers of one corpus."""
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for k, c in enumerate(clips):
        by_spk[f"{c.corpus}:{c.speaker}"].append(k)
    enrol, tests, corp_of = {}, {}, {}
    for s, v in sorted(by_spk.items()):
        order = [v[q] for q in rng.permutation(len(v))]
        used, total = [], 0
        for k in order:
            if total >= ENROL_S * 16000:
                break
            used.append(k)
            total += len(clips[k].audio)
        rest = [k for k in order if k not in used]
        if total < ENROL_S * 16000 or not rest:
            continue
        x = np.concatenate([clips[k].float_audio() for k in used])[: int(ENROL_S * 16000)]
        enrol[s] = utterance(frame_embeddings(sess, x, ctx), speech_weights(x, ctx))
        tests[s] = rest
        corp_of[s] = clips[used[0]].corpus
    utts = {}
    for v in tests.values():
        for k in v:
            x = clips[k].float_audio()
            utts[k] = utterance(frame_embeddings(sess, x, ctx), speech_weights(x, ctx))
    res: dict = {"eligible_speakers": len(enrol)}
    by_corp = defaultdict(list)
    for s in enrol:
        by_corp[corp_of[s]].append(s)
    for n in ns:
        pools = [c for c in sorted(by_corp) if len(by_corp[c]) >= n]
        if not pools:
            continue
        right = total = 0
        for _ in range(draws):
            pool = by_corp[pools[int(rng.integers(len(pools)))]]
            chosen = [pool[q] for q in rng.choice(len(pool), n, replace=False)]
            E = np.stack([enrol[s] for s in chosen])
            for si, s in enumerate(chosen):
                for k in tests[s]:
                    right += int(np.argmax(E @ utts[k]) == si)
                    total += 1
        res[f"n{n}"] = {"accuracy": round(right / total, 4), "test_clips": total, "corpora": pools}
    return res


def degraded(cond: str, clips: list[Clip], bgs: list[Clip]) -> tuple[list[Clip], list[np.ndarray]]:
    """The clips (those the condition applies to) and their audio at 16 kHz under ``cond``."""
    from .robustness import degrade

    backs = A.Backgrounds.from_clips(bgs, split="val")
    keep, out = [], []
    for c in clips:
        h = degrade(cond, c, backs, A.policy_for("voice"))
        if h is not None:
            keep.append(c)
            out.append(np.asarray(h.at16k, np.float32)[: len(c.audio)])
    return keep, out


def threshold_info(onnx_path: Path, ctx: int) -> dict:
    """What ``embedding.json`` records from the clean val trials: EER thresholds (utterance and frame)."""
    from .export import session

    sess = session(onnx_path)
    clips, _ = val_clips(backgrounds=False)
    utts, frames = embed_all(sess, ctx, clips, [c.float_audio() for c in clips])
    v = verification(utts, [f"{c.corpus}:{c.speaker}" for c in clips], [c.corpus for c in clips])
    f = frame_threshold(frames, clips, ctx)
    return {"threshold_utterance_eer": v["threshold"], "val_utterance_eer": v["eer"],
            "threshold_frame_eer": f["frame_threshold"], "val_frame_eer": f["frame_eer"]}


def speed_us_per_frame(path: Path, ctx: int, chunk: int = 64, repeats: int = 200) -> float:
    """Microseconds per 64 ms frame, one onnxruntime thread, ``chunk`` frames per call with ``ctx``
    context frames (``training.export.speed_us_per_frame``, for a graph whose output is not ``probs``)."""
    from .export import session

    s = session(path, threads=1)
    x = (np.random.default_rng(2).standard_normal((1, SUBFRAMES * (ctx + chunk), N_MELS)) * 3 - 8).astype(np.float32)
    for _ in range(20):
        s.run(None, {"features": x})
    t = time.perf_counter()
    for _ in range(repeats):
        s.run(None, {"features": x})
    return (time.perf_counter() - t) / repeats / chunk * 1e6


def evaluate(folder: Path, conditions: list[str], max_speakers: int = 0, log=print) -> dict:
    from .export import session

    meta = json.loads((folder / "embedding.json").read_text())
    ctx = int(meta["context_frames"])
    onnx_path = folder / "model.onnx"
    sess = session(onnx_path)
    t0 = time.time()
    clips, bgs = val_clips(max_speakers)
    spk = len({f"{c.corpus}:{c.speaker}" for c in clips})
    log(f"{len(clips)} val clips of {spk} speakers")
    res: dict = {"version": meta["version"], "max_speakers_per_corpus": max_speakers, "n_clips": len(clips), "n_speakers": spk, "conditions": {}}
    for cond in conditions:
        kept, audio = degraded(cond, clips, bgs)
        utts, frames = embed_all(sess, ctx, kept, audio)
        v = verification(utts, [f"{c.corpus}:{c.speaker}" for c in kept], [c.corpus for c in kept])
        v["n_clips"] = len(kept)
        if cond == "clean":
            v.update(frame_threshold(frames, kept, ctx))
        res["conditions"][cond] = v
        log(f"{cond}: EER {v['eer']:.4f} ({time.time() - t0:.0f}s)")
    res["identification"] = identification(sess, ctx, val_clips(0, backgrounds=False)[0])  # every val speaker
    log(f"identification {res['identification']}")
    us = speed_us_per_frame(onnx_path, ctx)  # as training.export measures the other models
    res["speed"] = {"us_per_frame_1thread_chunk64": round(us, 2), "x_realtime": round(64_000.0 / us, 1)}
    res["onnx_bytes"] = onnx_path.stat().st_size
    res["seconds"] = round(time.time() - t0)
    return res


def markdown(r: dict) -> str:
    c = r["conditions"]
    lines = [f"# SpeakerMap embedding, version {r['version']}: held-out speakers", "",
             f"{r['n_clips']} val clips of {r['n_speakers']} speakers (none seen in training"
             + (f"; at most {r['max_speakers_per_corpus']} speakers per corpus, seeded" if r.get("max_speakers_per_corpus")
                else "") + "). Command: `" + r.get("command", "python -m training.evaluate_speaker") + "`.", "",
             "| condition | EER | threshold | target / non-target trials | " +
             " | ".join(sorted(c.get("clean", next(iter(c.values())))["per_corpus_eer"])) + " |",
             "|---|---|---|---|" + "---|" * len(c.get("clean", next(iter(c.values())))["per_corpus_eer"])]
    for k, v in c.items():
        per = c.get("clean", v)["per_corpus_eer"]
        lines.append(f"| {k} | {v['eer']:.1%} | {v['threshold']:.3f} | {v['n_target']} / {v['n_nontarget']} | "
                     + " | ".join(f"{v['per_corpus_eer'].get(p, float('nan')):.1%}" for p in sorted(per)) + " |")
    ident = r.get("identification", {})
    lines += ["", f"Identification, 5 s enrolment ({ident.get('eligible_speakers')} eligible speakers):", "",
              "| N | accuracy | test clips | corpora |", "|---|---|---|---|"]
    for k, v in ident.items():
        if k.startswith("n"):
            lines.append(f"| {k[1:]} | {v['accuracy']:.1%} | {v['test_clips']} | {', '.join(v['corpora'])} |")
    s = r.get("speed", {})
    lines += ["", f"Speed: {s.get('us_per_frame_1thread_chunk64')} us per 64 ms frame on one thread "
              f"({s.get('x_realtime')}x real time); ONNX {r.get('onnx_bytes', 0) / 1e6:.2f} MB.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=None)
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--max-speakers", type=int, default=0, help="per corpus (seeded); 0: every val speaker")
    ap.add_argument("--export", type=Path, default=None, metavar="CKPT",
                    help="first export this checkpoint into the folder (training.speaker_embedding --export)")
    a = ap.parse_args()
    if a.export is not None:
        from .speaker_embedding import export

        export(a.export, a.folder or _folder())
    folder = a.folder or _folder()
    r = evaluate(folder, a.conditions, a.max_speakers)
    r["command"] = "python -m training.evaluate_speaker " + " ".join(sys.argv[1:])
    (folder / "eval_embedding.json").write_text(json.dumps(r, indent=1) + "\n")
    (folder / "eval_embedding.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
