"""Log-mel rows of training clips sent through the augmentation chain, computed once and cached.

The chain (:mod:`training.augment`) costs ~65 ms per 3 s example on one core: drawn per training
example it would slow the logmel trainers about tenfold. Instead, every clip the trainer may draw
gets ``copies`` augmented versions (whole clip, one seeded chain draw each, the task's label
policy), their log-mel rows are computed with :func:`deeptone_async.features.logmel` and kept
(float16) in ``training/cache/chainrows-<model>-<key>.npz``. The sampler then crops these rows
like the clean rows of its feature-domain examples (``TaskCfg.p_chain``): the chain keeps length
and time alignment, so the frame truth of the clean clip still applies.

    rows = chain_rows(train, "gender", copies=1, seed=0)   # {id(clip): [(rows, added), ...]}

Backgrounds (noise, music, babble voices) come from the training split only.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

import numpy as np

from deeptone_async.features import HOP_SAMPLES, logmel

from . import augment as A
from .data import CACHE, Clip

_STATE: dict = {}


ADDED = ("", "speech", "music", "other")  # code of the content a copy's background added


def _one(job: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Rows of one augmented copy and the code (:data:`ADDED`) of the content its background
    added (runs in a worker; the clips are inherited by fork)."""
    i, k = job
    clips, chain, seed = _STATE["clips"], _STATE["chain"], _STATE["seed"]
    c = clips[i]
    n = len(c.audio) // HOP_SAMPLES * HOP_SAMPLES
    rng = np.random.default_rng([seed, k, i])
    y, ops = chain(c.audio[:n].astype(np.float32) / 32768.0, rng, content=c.cls,
                   speaker=f"{c.corpus}:{c.speaker}" if c.speaker else None)
    added = next((o["adds"] for o in ops if "adds" in o), "")
    return logmel(y).astype(np.float16), ADDED.index(added)


def chain_key(clips: list[Clip], model: str, copies: int, seed: int, config: A.ChainConfig) -> str:
    """Cache key: the clips (corpus, file, length), the task, copies, seed and chain settings."""
    h = hashlib.sha1(json.dumps([model, copies, seed, repr(sorted(asdict(config).items()))]).encode())
    for c in clips:
        h.update(f"{c.corpus}/{c.file}/{len(c.audio)};".encode())
    return h.hexdigest()[:10]


def chain_rows(clips: list[Clip], model: str, copies: int = 1, seed: int = 0, workers: int = 2,
               config: A.ChainConfig | None = None, backgrounds: list[Clip] | None = None,
               log=print) -> dict[int, list[tuple[np.ndarray, str]]]:
    """``copies`` chain-augmented log-mel row arrays for each of ``clips``, keyed by ``id(clip)``,
    each with the content its background added (``""``: none, else speech / music / other).

    Args:
        clips: the clips to augment (the trainer's draw pool, training split).
        model: the model whose label policy the chain follows (:func:`augment.policy_for`).
        copies: augmented versions per clip.
        seed: fixes every chain draw (copy ``k`` of clip ``i`` uses ``default_rng([seed, k, i])``).
        workers: processes (fork) that run the chain.
        config: chain settings (default :class:`augment.ChainConfig`).
        backgrounds: training-split clips to draw noise, music and babble from (default ``clips``).

    Blocks for minutes the first time (cached in ``training/cache`` after that).

    Raises:
        augment.CodecUnavailable: a codec the chain can draw is missing here.
    """
    config = config or A.ChainConfig()
    key = chain_key(clips, model, copies, seed, config)
    path = CACHE / f"chainrows-{model}-{key}.npz"
    n_rows = [len(c.audio) // HOP_SAMPLES for c in clips]
    if path.exists():
        z = np.load(path)
        offs, flat, adds = z["offsets"], z["rows"], z["adds"]
        log(f"chain rows: {len(clips)} clips x {copies} from {path.name}")
    else:
        t0 = time.time()
        chain = A.Chain(config, A.Backgrounds.from_clips(backgrounds if backgrounds is not None else clips),
                        A.policy_for(model))
        _STATE.update(clips=clips, chain=chain, seed=seed)
        jobs = [(i, k) for k in range(copies) for i in range(len(clips))]
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                out = list(ex.map(_one, jobs, chunksize=16))
        else:
            out = [_one(j) for j in jobs]
        _STATE.clear()
        offs = np.concatenate([[0], np.cumsum([len(r) for r, _ in out])]).astype(np.int64)
        flat = np.concatenate([r for r, _ in out]) if out else np.zeros((0, 64), np.float16)
        adds = np.array([a for _, a in out], np.int8)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, offsets=offs, rows=flat, adds=adds)
        log(f"chain rows: {len(clips)} clips x {copies} in {time.time() - t0:.0f}s -> {path.name}")
    res: dict[int, list[tuple[np.ndarray, str]]] = {}
    for j in range(len(offs) - 1):
        i = j % len(clips)
        r = flat[offs[j] : offs[j + 1]]
        assert len(r) == n_rows[i], (len(r), n_rows[i])
        res.setdefault(id(clips[i]), []).append((r, ADDED[int(adds[j])]))
    return res
