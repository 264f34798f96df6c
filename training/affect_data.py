"""Corpora, label maps, augmented versions and batches of the affect models (Arousal, Emotions).

Each clip of an emotion corpus is labelled by its model's mapping (:data:`AROUSAL_MAP`,
:data:`EMOTIONS_MAP`; clips whose emotion does not map are left out); its *speech frames*
(:func:`speech_mask`) carry the label. :func:`build_items` makes ``versions`` versions of every
clip (version 0 clean, the others augmented once and cached in ``training/cache/``) as log-mel
rows exactly as the engine computes them, and :func:`make_batch` crops them for training.

Augmentation (``augment``): ``"chain"`` (issue 14) is speed perturbation (x0.9-1.1) followed by
the shared real-world chain :class:`training.augment.Chain` with the voice models' label policy
(telephone band and codecs, MP3, rooms, noise / music / babble, microphone EQ, levels, clipping;
backgrounds and babble talkers from the training split of ``bg_corpora``); ``"legacy"`` is the
older private effect set the first bundled models were trained with (speed, noise or music at
5-30 dB SNR, ``augment.channel``, gain or absolute level), kept so their recipes reproduce.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from deeptone_async.features import FRAME_SAMPLES, N_MELS, SILENCE_FLOOR, SUBFRAMES, logmel

from . import augment as A
from .data import CACHE, Clip, active_frames, frame_db_from_hops, hangover, hop_db, load_corpora
from .sampler import GATE_DB, IGNORE

#: the corpora of the first bundled models (and of ``--augment legacy`` recipes)
AFFECT_CORPORA = ("ravdess", "emodb")
BG_CORPORA = ("noise", "music")
#: backgrounds of the chain: noise and music, and librispeech's talkers for babble (CC BY 4.0)
CHAIN_BG_CORPORA = ("noise", "music", "librispeech")
AUGMENTS = ("legacy", "chain")

# ---------------------------------------------------------------------------------- mappings
# Corpus emotion -> model label. Grounded in the circumplex model (Russell 1980: anger, joy,
# fear, surprise/astonishment lie in the aroused half; sadness, boredom, tiredness in the
# sleepy half) and Scherer's component process model / Banse & Scherer 1996 (hot anger, elation,
# panic fear: high activation; sadness, boredom: low activation). Disgust is left out of both
# models: its arousal is intermediate and inconsistent between studies and corpora. RAVDESS
# "calm" is the corpus's second baseline (Livingstone & Russo 2018): acted almost like neutral,
# so it is neutral here, although Russell places "calm" in the low-arousal pleasant quadrant.
AROUSAL_MAP = {
    "angry": "high", "anger": "high", "happy": "high", "happiness": "high",
    "fearful": "high", "fear": "high", "surprised": "high",
    "neutral": "neutral", "calm": "neutral",
    "sad": "low", "sadness": "low", "boredom": "low",
}
# Emotions: valence x arousal quadrants. happy = positive, aroused; irritated = anger (negative,
# aroused); tired = sadness and boredom (negative-ish, low arousal); neutral = neutral + calm.
# emospeech (phone recordings of command words, identified users; all its emotion clips come from
# one collection channel, its `scream` clips from others, so `scream` is left out: it would teach
# the channel): calm -> neutral as RAVDESS calm, angry / happy / fearful -> high (Arousal);
# calm -> neutral, angry -> irritated, happy -> happy, fearful left out as above (Emotions).
# baved's labels are arousal levels (low / neutral / high): Arousal only.
# Left out: fear (negative and aroused, but not "irritated"), surprise (valence undefined),
# disgust (see above; acoustically it is often confused with both anger and boredom).
EMOTIONS_MAP = {
    "happy": "happy", "happiness": "happy",
    "angry": "irritated", "anger": "irritated",
    "neutral": "neutral", "calm": "neutral",
    "sad": "tired", "sadness": "tired", "boredom": "tired",
}

# Auxiliary task (``--aux``): every clip of the emotion corpora, including the emotions the
# mapping leaves out, keeps its own emotion as a second target, so that fear, surprise and
# disgust clips still teach the shared layers about vocal expression. Corpus spellings of the
# same emotion are merged; other labels (a user's manifest) are used as they are.
FINE = {"angry": "anger", "happy": "happiness", "sad": "sadness", "fearful": "fear", "surprised": "surprise"}

MODELS = {
    "arousal": {"name": "Arousal", "key": "arousal", "labels": ["high", "neutral", "low"], "mapping": AROUSAL_MAP,
                "corpora": ("ravdess", "emodb", "baved", "emospeech"),
                    "description": "Arousal (high / neutral / low) of speech, 2.1 s receptive field; "
                                "trained on acted emotional speech"},
    "emotions": {"name": "Emotions", "key": "emotions", "labels": ["happy", "irritated", "neutral", "tired"],
                     "mapping": EMOTIONS_MAP, "corpora": ("ravdess", "emodb", "emospeech"),
                     "description": "Emotions (happy / irritated / neutral / tired) of speech, 2.1 s receptive "
                                 "field; trained on acted emotional speech"},
}

SPEECH_HANGOVER = 2


#: corpus labels whose clips get chain versions whichever model asks (``build_items``)
POOL_LABELS = frozenset(AROUSAL_MAP) | frozenset(EMOTIONS_MAP)


def corpora_for(model: str) -> list[str]:
    """The shared corpora a model trains and is evaluated on since issue 14 (``MODELS[m]["corpora"]``)."""
    return list(MODELS[model]["corpora"])


def mapping_for(model: str, path: Path | None) -> dict[str, str]:
    """Corpus label -> model label: the built-in map, the model's own labels, and ``path``'s JSON
    merged over them (null leaves a label out)."""
    m = dict(MODELS[model]["mapping"])
    m.update({lab: lab for lab in MODELS[model]["labels"]})  # a manifest may use the labels directly
    if path is not None:
        m.update(json.loads(Path(path).read_text()))
    return {k: v for k, v in m.items() if v is not None}  # null in the JSON: leave that label out



# ---------------------------------------------------------------------------------- data


@dataclass
class Item:
    clip: int  # index into the clip list
    y: int  # class index (IGNORE: a clip only the auxiliary task uses)
    feats: np.ndarray  # (4T, 64) float16
    mask: np.ndarray  # (T,) bool: speech frames that carry the label
    ya: int = IGNORE  # auxiliary (fine emotion) class index


def speech_mask(clean: np.ndarray, mixed: np.ndarray | None = None, hang: int = SPEECH_HANGOVER) -> np.ndarray:
    """Frames that carry the clip label: energy-active in the clean audio (+hangover) and not
    gated as silence in the audio the model hears."""
    fdb = frame_db_from_hops(hop_db(clean))
    ref = float(np.percentile(fdb, 95)) if len(fdb) else -100.0
    on = hangover(active_frames(fdb, ref), hang)
    gate = frame_db_from_hops(hop_db(mixed if mixed is not None else clean))
    return on & (gate >= GATE_DB)


def _whole_frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME_SAMPLES
    return x[: n * FRAME_SAMPLES]


def make_item(x: np.ndarray, rng: np.random.Generator | None, bgs: list[Clip],
              speed: float = 0.1, level: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and label mask of one (possibly augmented) version of a clip."""
    if rng is not None:
        f = rng.uniform(1 - speed, 1 + speed)
        x = A.soxr.resample(x, 16000, round(16000 / f), quality="HQ").astype(np.float32)
    x = _whole_frames(x)
    clean = x
    if rng is not None:
        if rng.random() < 0.5:
            if bgs:
                bg = bgs[int(rng.integers(len(bgs)))].float_audio()
                if len(bg) < len(x):
                    bg = np.tile(bg, len(x) // max(len(bg), 1) + 1)
                s = int(rng.integers(0, len(bg) - len(x) + 1))
                bg = bg[s : s + len(x)]
            else:
                bg = rng.standard_normal(len(x)).astype(np.float32)
            act = np.repeat(speech_mask(clean, hang=0), FRAME_SAMPLES)
            x = A.mix_at_snr(x, bg, rng.uniform(5, 30), act[: len(x)])
        x = A.channel(x, rng, p_tel=0.2, p_codec=0.15, p_rev=0.25)
        if level is not None:  # absolute level: the clip's 95th-percentile frame level -> U(level) dBFS
            fdb = frame_db_from_hops(hop_db(x))
            ref = float(np.percentile(fdb, 95)) if len(fdb) else -100.0
            x = A.gain(x, rng.uniform(*level) - ref)
        else:
            x = A.gain(x, rng.uniform(-25, 6))
        clean = A.gain(clean, 0.0)
    feats = logmel(x)
    return feats.astype(np.float16), speech_mask(clean, x)


def load_affect(corpora, manifests, mapping: dict[str, str], labels: list[str]):
    """(labelled clips, all clips): clips whose label maps onto ``labels``, with the class index."""
    clips = load_corpora(corpora, manifests)
    out = []
    for c in clips:
        lab = mapping.get(c.label)
        if lab in labels:
            out.append((c, labels.index(lab)))
    return out, clips


def build_versions(clips: list[Clip], versions: int, bg_corpora, seed: int, tag: str, speed: float = 0.1,
                   level: tuple[float, float] | None = None):
    """``versions`` versions (features, label mask) of every clip, version 0 clean; cached in
    training/cache/ per corpus, so every model and run shares them."""
    key = hashlib.sha1(json.dumps([[c.corpus, c.file, len(c.audio)] for c in clips]
                                  + [versions, list(bg_corpora), seed, 3]
                                  + ([speed] if speed != 0.1 else []) + ([list(level)] if level else [])
                                  ).encode()).hexdigest()[:10]
    path = CACHE / f"affect-{tag}-{key}.npz"
    if path.exists():
        z = np.load(path)
        offs, moffs, F, M = z["offs"], z["moffs"], z["feats"], z["mask"]
        n = len(clips)
        return [[(F[offs[v * n + i] : offs[v * n + i + 1]], M[moffs[v * n + i] : moffs[v * n + i + 1]])
                 for i in range(n)] for v in range(versions)]
    bgs = [c for c in load_corpora(bg_corpora) if c.split == "train"] if versions > 1 and bg_corpora else []
    rng = np.random.default_rng(seed)
    out = []
    t = time.time()
    for v in range(versions):
        out.append([make_item(c.float_audio(), rng if v else None, bgs, speed, level) for c in clips])
        print(f"{tag} version {v}: {len(clips)} clips in {time.time() - t:.0f}s", flush=True)
    flat = [fm for row in out for fm in row]
    offs = np.concatenate([[0], np.cumsum([len(f) for f, _ in flat])])
    moffs = np.concatenate([[0], np.cumsum([len(m) for _, m in flat])])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, offs=offs, moffs=moffs, feats=np.concatenate([f for f, _ in flat]),
             mask=np.concatenate([m for _, m in flat]))
    return out


def build_items(clips: list[tuple[Clip, int]], all_clips: list[Clip], versions: int, bg_corpora,
                seed: int, speed: float = 0.1, level: tuple[float, float] | None = None,
                fine: list[str] | None = None, augment: str = "legacy", workers: int = 1) -> list[list[Item]]:
    """Items[version][i] for the labelled ``clips`` (a subset of ``all_clips``); with ``fine``
    (the auxiliary classes) each item also gets its fine emotion index.

    ``augment="legacy"`` builds every version of every clip of ``all_clips`` (cache shared by
    both models); ``"chain"`` builds the augmented versions of the *training-split* clips of
    ``clips`` and of the clips of :data:`POOL_LABELS` only (a validation clip's versions are its
    clean one; the cache is shared by both models), ``workers`` processes.

    Blocks for minutes to tens of minutes the first time (cached in ``training/cache`` after that).

    Raises:
        ValueError: unknown ``augment``.
        augment.CodecUnavailable: a codec the chain can draw is missing here.
    """
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    where = {id(c): i for i, c in enumerate(all_clips)}
    # chain: the clips used, and every clip either model's built-in mapping labels (so Arousal and
    # Emotions share the cached versions of a corpus), in the order of all_clips
    used = {id(c) for c, _ in clips}
    pool = all_clips if augment == "legacy" else [c for c in all_clips if id(c) in used or c.label in POOL_LABELS]
    corpora = sorted({c.corpus for c in pool})
    vers = {}
    for name in corpora:
        group = [c for c in pool if c.corpus == name]
        if augment == "legacy":
            vs = build_versions(group, versions, bg_corpora, seed, name, speed, level)
        else:
            vs = build_chain_versions(group, versions, bg_corpora, seed, name, speed, workers)
        for j, c in enumerate(group):
            vers[id(c)] = [vs[v][j] for v in range(versions)]

    def ya(c: Clip) -> int:
        return fine.index(FINE.get(c.label, c.label)) if fine else IGNORE

    return [[Item(where[id(c)], y, *vers[id(c)][v], ya(c)) for c, y in clips] for v in range(versions)]


# ------------------------------------------------------------------ the shared chain (issue 14)

_STATE: dict = {}


def chain_item(x: np.ndarray, rng: np.random.Generator, chain: A.Chain, speaker: str | None,
               speed: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Features and label mask of one chain-augmented version of a clip: speed perturbation
    (resample-based, x(1 +- ``speed``)), then ``chain`` (content speech, ``speaker`` kept out of
    its own babble). The mask is the speech frames of the clean (speed-perturbed) clip that are
    above the volume gate in what the chain made of it (the chain keeps time alignment)."""
    f = rng.uniform(1 - speed, 1 + speed)
    x = _whole_frames(A.soxr.resample(x, 16000, round(16000 / f), quality="HQ").astype(np.float32))
    y, _ = chain(x, rng, content="speech", speaker=speaker)
    return logmel(y).astype(np.float16), speech_mask(x, y)


def _chain_job(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    v, i = job
    clips, chain, seed, speed, tag = (_STATE[k] for k in ("clips", "chain", "seed", "speed", "tag"))
    c = clips[i]
    rng = np.random.default_rng([seed, v, i, zlib.crc32(tag.encode())])
    return chain_item(c.float_audio(), rng, chain, speaker_of(c) if c.speaker else None, speed)


def build_chain_versions(clips: list[Clip], versions: int, bg_corpora, seed: int, tag: str, speed: float = 0.1,
                         workers: int = 1, config: A.ChainConfig | None = None):
    """``versions`` versions (features, label mask) of ``clips`` (one corpus), version 0 clean;
    versions 1.. of a training-split clip through :func:`chain_item` (copy ``v`` of clip ``i``
    draws from ``default_rng([seed, v, i, crc32(tag)])``), of any other clip its clean version.
    Backgrounds: the training split of ``bg_corpora``. Cached in training/cache/ per corpus.

    Raises:
        augment.CodecUnavailable: a codec the chain can draw is missing here.
    """
    config = config or A.ChainConfig()
    aug = [i for i, c in enumerate(clips) if c.split == "train"] if versions > 1 else []
    h = hashlib.sha1(json.dumps([list(bg_corpora), seed, speed, "chain", 1,
                                 repr(sorted(asdict(config).items()))]).encode())
    for c in clips:
        h.update(f"{c.corpus}/{c.file}/{len(c.audio)}/{c.split};".encode())
    stem = f"affect-chain-{tag}-{h.hexdigest()[:10]}"
    path = CACHE / f"{stem}-v{versions}.npz"
    clean = [(logmel(_whole_frames(c.float_audio())).astype(np.float16), speech_mask(_whole_frames(c.float_audio())))
             for c in clips]
    # copy v of clip i draws the same whatever the number of versions, and a file holds its copies
    # version by version: one made with more versions serves this request with its first ones
    have = sorted((int(q.stem.rsplit("-v", 1)[1]), q) for q in CACHE.glob(f"{stem}-v*.npz"))
    have = [(v, q) for v, q in have if v >= versions]
    if have or not aug:
        made = []
        if have:
            z = np.load(have[0][1])
            offs, moffs, F, M = z["offs"], z["moffs"], z["feats"], z["mask"]
            made = [(F[offs[j] : offs[j + 1]], M[moffs[j] : moffs[j + 1]])
                    for j in range((versions - 1) * len(aug))]
            print(f"{tag}: {len(made)} chain versions from {have[0][1].name}", flush=True)
    else:
        t = time.time()
        bgs = A.Backgrounds.from_clips(load_corpora(list(bg_corpora))) if bg_corpora else A.Backgrounds()
        _STATE.update(clips=clips, chain=A.Chain(config, bgs, A.policy_for("arousal")), seed=seed, speed=speed,
                      tag=tag)
        jobs = [(v, i) for v in range(1, versions) for i in aug]
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                made = list(ex.map(_chain_job, jobs, chunksize=16))
        else:
            made = [_chain_job(j) for j in jobs]
        _STATE.clear()
        if made:
            CACHE.mkdir(parents=True, exist_ok=True)
            np.savez(path, offs=np.concatenate([[0], np.cumsum([len(f) for f, _ in made])]),
                     moffs=np.concatenate([[0], np.cumsum([len(m) for _, m in made])]),
                     feats=np.concatenate([f for f, _ in made]), mask=np.concatenate([m for _, m in made]))
        print(f"{tag}: {len(jobs)} chain versions of {len(aug)} training clips in {time.time() - t:.0f}s", flush=True)
    out = [clean]
    it = iter(made)
    for _ in range(1, versions):
        row = list(clean)
        for i in aug:
            row[i] = next(it)
        out.append(row)
    return out


def make_batch(items: list[Item], ctx: int, rng: np.random.Generator | None, max_frames: int = 96,
               aux: bool = False):
    """Inputs (B, 4*(ctx+T), 64) and targets (B, T): each item from a start frame (random when
    rng is given), with the rows before it as context and SILENCE_FLOOR before the stream.
    With ``aux``, also the auxiliary targets (B, T)."""
    segs = []
    for it in items:
        T = len(it.mask)
        s = 0
        if rng is not None and T > 8:
            s = int(rng.integers(0, max(1, T // 2)))
        e = min(T, s + max_frames)
        lo = s - ctx
        rows = it.feats[SUBFRAMES * max(lo, 0) : SUBFRAMES * e].astype(np.float32)
        if lo < 0:
            rows = np.concatenate([np.full((SUBFRAMES * -lo, N_MELS), SILENCE_FLOOR, np.float32), rows])
        y = np.where(it.mask[s:e], it.y, IGNORE)
        ya = np.where(it.mask[s:e], it.ya, IGNORE)
        segs.append((rows, y, ya))
    L = max(len(y) for _, y, _ in segs)
    X = np.full((len(segs), SUBFRAMES * (ctx + L), N_MELS), SILENCE_FLOOR, np.float32)
    Y = np.full((len(segs), L), IGNORE, np.int64)
    YA = np.full((len(segs), L), IGNORE, np.int64)
    for b, (rows, y, ya) in enumerate(segs):
        X[b, : len(rows)] = rows
        Y[b, : len(y)] = y
        YA[b, : len(ya)] = ya
    if aux:
        return torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(YA)
    return torch.from_numpy(X), torch.from_numpy(Y)


def spec_augment(X: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    X = X.clone()
    for b in range(X.shape[0]):
        for _ in range(2):
            w = int(rng.integers(0, 9))
            f0 = int(rng.integers(0, N_MELS - w + 1))
            if w:
                X[b, :, f0 : f0 + w] = X[b, :, f0 : f0 + w].mean()
    return X



def speaker_of(c: Clip) -> str:
    """A speaker's name across corpora (``"corpus:speaker"``): corpora number their speakers alike."""
    return f"{c.corpus}:{c.speaker}"


def speaker_folds(clips: list[Clip], k: int, seed: int) -> dict[tuple[str, str], int]:
    """(corpus, speaker) -> fold in 0..k-1: each corpus's speakers shuffled and dealt round-robin,
    continuing across corpora, so the folds get nearly equal shares of every corpus."""
    rng = np.random.default_rng(seed)
    fold_of: dict[tuple[str, str], int] = {}
    n = 0
    for corpus in sorted({c.corpus for c in clips}):
        for s in rng.permutation(sorted({c.speaker for c in clips if c.corpus == corpus})):
            fold_of[(corpus, str(s))] = n % k
            n += 1
    return fold_of


