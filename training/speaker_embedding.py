"""The speaker-embedding network of SpeakerMap (issue 16): data, network, training, export.

    # the shipped model (2 shared CPU cores; its card lists the runs behind it)
    nice -n 10 python -m training.speaker_embedding --prepare        # chain rows once
    nice -n 10 python -m training.speaker_embedding --steps 3000 --ckpt training/cache/speaker_embedding_ap.pt
    # (stopped; its checkpoint at step 1889 continued with a shorter schedule:)
    nice -n 10 python -m training.speaker_embedding --resume --steps 2400 --ckpt training/cache/speaker_embedding_ap.pt
    # export (-> deeptone_async/models/speaker_map/) + EER, identification, robustness:
    nice -n 10 python -m training.evaluate_speaker --export training/cache/speaker_embedding_ap.pt --max-speakers 12
    python -m training.speaker_card                                   # card.md

**Contract with the runtime** (also written into ``embedding.json``):

* ``model.onnx``: one input ``features`` (batch, rows, 64): log-mel rows exactly as
  :func:`deeptone_async.features.logmel` / the engine's ``LogMelExtractor`` make them (16 ms hop,
  4 rows per 64 ms frame), ``rows = 4 * (context_frames + n)``; one output ``embeddings``
  (batch, n, dim) float32: for every 64 ms frame an L2-normalised embedding of the audio in its
  receptive field ending at that frame. Causal and valid like ``nets.CausalTCN``: the engine
  carries the last ``4 * context_frames`` rows (``SILENCE_FLOOR`` before a stream starts), so
  a stream run in blocks gives the same embeddings as the whole file.
* ``context_frames`` = 32, receptive field 33 frames = 2112 ms (DeepTone's SpeakerMap: 2107 ms).
  The first 32 frames of a stream see the pre-stream silence floor.
* ``embedding.json``: ``version`` (bumped on every export: voice signatures of another version
  must be refused), ``dim``, ``context_frames``, ``receptive_field_ms``, the cosine thresholds
  at the equal error rate on the val speakers (utterance means and single frames), and how the
  utterance embedding is made (the mean of the frame embeddings over speech frames, renormalised).

**Network** (:class:`SpeakerNet`): the shared stem of :mod:`training.nets` (per-band
normalisation, kernel-4 stride-4 patchify conv, residual dilated depthwise-separable blocks,
16 frames of context), then a causal sliding statistics pooling over the last 17 frames (mean and
standard deviation of every channel, in float64: an x-vector's pooling, but per frame), a linear layer to
``dim`` and L2 normalisation.

**Data**: every speaker of the train splits of librispeech, commonvoice, speechocean, vctk,
ravdess, emodb, baved and emospeech (speaker ids; emospeech's scream clips, mostly from an
unknown user, are left out), one class per ``corpus:speaker`` (2007 speakers). Val speakers
(speaker-disjoint) are only evaluated. A batch holds one 3.07 s crop (32 + 16 frames) of
precomputed log-mel rows from each of ``--batch`` different speakers (speakers drawn ~ the square
root of their audio). Augmentation: a seeded 15 % of the clips (their first 3 s) have one copy
sent through the augmentation chain (:mod:`training.chain_rows`, ``voice`` policy: reverb, noise /
music / babble of other training speakers >= 5 dB under the talker at 0-20 dB, EQ, clipping,
levels, telephone / Opus / MP3; computed by ``--prepare``, ~2 core-minutes), used for 80 % of
their crops; other crops are clean rows with, in the power domain, noise or music of the train
splits at 0-20 dB SNR on 40 %, a telephone band (mel bands outside 300-3400 Hz down 35-45 dB,
plus a noise floor 30-40 dB under the signal) on 15 %, and a random gain of -25..+10 dB.
(The chain runs on a share only: on 2 CPU cores shared with five other trainers, all 12 h of
audio would take too long to go through it once.)

**Loss**: additive-margin softmax (CosFace; s = 30, margin ramped to 0.2 over 500 steps) over
the training speakers, on a random quarter of the output frames whose 33-frame receptive field
holds >= 10 energy-active frames (the classifier over 2007 speakers costs as much as the network).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptone_async.features import (
    HOP_SAMPLES,
    N_MELS,
    POWER_FLOOR,
    SILENCE_FLOOR,
    SUBFRAMES,
    logmel,
    mel_filterbank,
)

from .data import CACHE, REPO, Clip, active_frames, frame_db_from_hops, load_corpora
from .nets import add_stem, n_params

CORPORA = ("librispeech", "commonvoice", "speechocean", "vctk", "ravdess", "emodb", "baved", "emospeech")
BG_CORPORA = ("noise", "music")
BLOCKS = [(3, 1), (3, 2), (3, 4), (3, 1)]  # 16 frames of context
POOL = 17  # + 16 frames of pooling = 32
CHANNELS = 64
DIM = 128
N_OUT = 16  # output frames per training crop
MIN_ACTIVE = 10  # active frames a receptive field needs for its frame to carry the loss
FOLDER = REPO / "deeptone_async" / "models" / "speaker_map"
CKPT = CACHE / "speaker_embedding.pt"


# ---------------------------------------------------------------------------------- data


def speaker_of(c: Clip) -> str:
    """The class of a clip: ``corpus:speaker``."""
    return f"{c.corpus}:{c.speaker}"


def speaker_clips(clips: list[Clip], split: str) -> list[Clip]:
    """The clips of ``split`` with a known speaker (emospeech's scream clips left out)."""
    return [c for c in clips if c.split == split and c.speaker and c.cls == "speech" and c.label != "scream"]


def load_all(corpora=CORPORA, bg_corpora=BG_CORPORA) -> tuple[list[Clip], list[Clip]]:
    """(speech clips of ``corpora``, noise and music clips of ``bg_corpora``), every split."""
    return load_corpora(list(corpora)), load_corpora(list(bg_corpora))


def clip_rows(c: Clip) -> np.ndarray:
    """Log-mel rows of a whole clip (zero history), float16."""
    n = len(c.audio) // HOP_SAMPLES * HOP_SAMPLES
    return logmel(c.audio[:n].astype(np.float32) / 32768.0).astype(np.float16)


def clip_active(c: Clip) -> np.ndarray:
    """Energy-active 64 ms frames of a clip (:func:`training.data.active_frames`)."""
    assert c.hop_db is not None
    return active_frames(frame_db_from_hops(c.hop_db), c.ref_db)


def chain_segments(train: list[Clip], share: float = 0.15, max_s: float = 3.0, seed: int = 0) -> list[tuple[int, Clip]]:
    """The part of the training audio sent through the chain: a seeded ``share`` of the clips,
    each cut to its first ``max_s`` seconds (the chain costs ~65 ms per 3 s on one core, so all
    12 h would take ~20 core-minutes). Returns (index into ``train``, segment clip)."""
    from dataclasses import replace

    from .data import annotate

    rng = np.random.default_rng(seed)
    pick = np.flatnonzero(rng.random(len(train)) < share)
    out = []
    for i in pick:
        c = train[int(i)]
        seg = replace(c, audio=c.audio[: int(max_s * 16000)])
        annotate(seg)
        out.append((int(i), seg))
    return out


def train_chain_rows(train: list[Clip], bgs: list[Clip], seed: int = 0, workers: int = 2,
                     only_cached: bool = False) -> dict[int, np.ndarray] | None:
    """Chain-augmented rows of :func:`chain_segments`, keyed by the index into ``train``
    (cached in ``training/cache``; minutes the first time). ``only_cached``: None unless the
    cache file is there already (a training run picks the rows up once ``--prepare`` wrote them)."""
    from . import augment as A
    from .chain_rows import chain_key, chain_rows

    segs = chain_segments(train, seed=seed)
    if only_cached:
        key = chain_key([s for _, s in segs], "voice", 1, seed, A.ChainConfig())
        if not (CACHE / f"chainrows-voice-{key}.npz").exists():
            return None
    got = chain_rows([s for _, s in segs], "voice", copies=1, seed=seed, workers=workers,
                     backgrounds=train + bgs)
    return {i: got[id(s)][0][0] for i, s in segs}


class Crops:
    """Training examples: (features (B, 4 * (32 + N_OUT), 64), targets (B, N_OUT), -1 = no loss)."""

    def __init__(self, train: list[Clip], bgs: list[Clip], chained: dict | None, seed: int,
                 p_chain: float = 0.8, p_bg: float = 0.4, snr: tuple[float, float] = (0.0, 20.0),
                 gain_db: tuple[float, float] = (-25.0, 10.0), ctx: int = 32, p_tel: float = 0.15) -> None:
        self.rng = np.random.default_rng(seed)
        centre = mel_filterbank().argmax(0) * 16000 / 512  # Hz of each mel band's peak
        self.tel_out = ((centre < 300) | (centre > 3400)).astype(np.float32)
        self.tel_gain = np.where(self.tel_out > 0, 10 ** (-3.5), 1.0).astype(np.float32)
        self.p_tel = p_tel
        self.ctx, self.p_chain, self.p_bg, self.snr, self.gain_db = ctx, p_chain, p_bg, snr, gain_db
        self.rows = [clip_rows(c) for c in train]
        self.chained = [(chained or {}).get(i) for i in range(len(train))]
        self.active = [clip_active(c) for c in train]
        self.bg_rows = [clip_rows(c) for c in bgs if c.split == "train" and c.label != "children_playing"]
        speakers = sorted({speaker_of(c) for c in train})
        self.index = {s: k for k, s in enumerate(speakers)}
        self.by_spk: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(train):
            self.by_spk[self.index[speaker_of(c)]].append(i)
        dur = np.array([sum(len(train[i].audio) for i in self.by_spk[k]) for k in range(len(speakers))], float)
        self.w_spk = np.sqrt(dur) / np.sqrt(dur).sum()  # speakers ~ sqrt(their audio)
        self.w_clip = {k: np.array([len(train[i].audio) for i in v], float) for k, v in self.by_spk.items()}
        self.n_speakers = len(speakers)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std of the clean rows (the network's normalisation)."""
        flat = np.concatenate(self.rows[:: max(1, len(self.rows) // 2000)]).astype(np.float32)
        return flat.mean(0), flat.std(0) + 1e-3

    def one(self, spk: int) -> tuple[np.ndarray, np.ndarray]:
        rng, L = self.rng, self.ctx + N_OUT
        w = self.w_clip[spk]
        i = self.by_spk[spk][int(rng.choice(len(w), p=w / w.sum()))]
        chained = self.chained[i] is not None and rng.random() < self.p_chain
        r = self.chained[i] if chained else self.rows[i]
        act = self.active[i][: len(r) // 4]  # a chained copy may be a shorter segment
        n_fr = len(act)
        lo = min(0, n_fr - L)  # short clips: the crop starts before the clip (pre-stream floor)
        f = int(rng.integers(lo, max(lo, n_fr - L) + 1))
        P = np.zeros((4 * L, N_MELS), np.float32)
        a, b = max(f, 0), min(f + L, n_fr)
        P[4 * (a - f) : 4 * (b - f)] = np.maximum(np.exp(r[4 * a : 4 * b].astype(np.float32)) - POWER_FLOOR, 0.0)
        if not chained:
            if self.bg_rows and rng.random() < self.p_bg:
                br = self.bg_rows[int(rng.integers(len(self.bg_rows)))]
                need = 4 * (b - a)
                if len(br) < need:
                    br = np.tile(br, (need // max(len(br), 1) + 1, 1))
                s = int(rng.integers(0, len(br) - need + 1))
                bp = np.maximum(np.exp(br[s : s + need].astype(np.float32)) - POWER_FLOOR, 0.0)
                seg = P[4 * (a - f) : 4 * (b - f)]
                on = np.repeat(act[a:b], 4)
                sp = seg[on].sum(1).mean() if on.any() else seg.sum(1).mean()
                bpow = bp.sum(1).mean()
                if bpow > 0:
                    snr = rng.uniform(*self.snr)
                    seg += bp * (sp / bpow) * 10 ** (-snr / 10)
            if rng.random() < self.p_tel:  # a cheap telephone band in the feature domain
                P *= self.tel_gain[None, :] * 10 ** (-rng.uniform(0, 10) / 10 * self.tel_out[None, :])
                P += P.mean() * 10 ** (-rng.uniform(30, 40) / 10)  # the codec's noise floor
            P *= 10 ** (rng.uniform(*self.gain_db) / 10)
        feats = np.log(P + POWER_FLOOR)
        win = np.zeros(L, np.int32)
        win[a - f : b - f] = act[a:b]
        c = np.concatenate([[0], np.cumsum(win)])
        n_act = c[self.ctx + 1 :] - c[: N_OUT]  # active frames in each output frame's field
        y = np.where(n_act >= MIN_ACTIVE, spk, -1)
        return feats, y

    def batch(self, size: int, per_speaker: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` speakers, ``per_speaker`` crops each: crop ``k * size + i`` is speaker ``i``'s k-th."""
        spk = self.rng.choice(self.n_speakers, size=size, replace=False, p=self.w_spk)
        fs, ys = zip(*(self.one(int(s)) for _ in range(per_speaker) for s in spk))
        return torch.from_numpy(np.stack(fs)), torch.from_numpy(np.stack(ys)).long()


def proto_loss(emb: torch.Tensor, valid: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angular prototypical loss (Chung et al. 2020, "In defence of metric learning for speaker
    recognition") on frame embeddings ``emb`` (2B, n, dim) of B speakers x 2 crops: each crop's
    mean embedding over its ``valid`` frames is its speaker's prototype, the valid frames of the
    other crop are queries classified among the B prototypes by ``w * cos + b``; both ways."""
    B = emb.shape[0] // 2
    v = valid.float() + 1e-6  # a crop without valid frames: the plain mean
    protos = nn.functional.normalize((emb * v[..., None]).sum(1) / v.sum(1, keepdim=True), dim=-1)
    loss = emb.new_zeros(())
    for q, p in ((slice(B, 2 * B), slice(0, B)), (slice(0, B), slice(B, 2 * B))):
        m = valid[q]
        if not bool(m.any()):
            continue
        target = torch.arange(B)[:, None].expand(B, emb.shape[1])[m]
        lg = w * (emb[q][m] @ protos[p].t()) + b
        loss = loss + nn.functional.cross_entropy(lg, target) / 2
    return loss


# ---------------------------------------------------------------------------------- network


def window_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of every ``k`` consecutive frames of (B, C, T) -> (B, C, T - k + 1), by differences of
    a cumulative sum (exact in float64; onnxruntime has no float64 AveragePool)."""
    c = torch.cumsum(nn.functional.pad(x, (1, 0)), dim=2)
    return (c[:, :, k:] - c[:, :, :-k]) / k


class SpeakerNet(nn.Module):
    """Causal valid speaker embedder: (B, 4T, 64) log-mel rows -> (B, T - context_frames, dim)
    L2-normalised embeddings; ``centres`` (the training speakers' AM-softmax weights) are not
    used by :meth:`forward` and are not exported."""

    def __init__(self, n_speakers: int, channels: int = CHANNELS, dim: int = DIM, blocks=BLOCKS,
                 pool: int = POOL, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        super().__init__()
        add_stem(self, channels, list(blocks), mean, std)
        self.context_frames = sum((k - 1) * d for k, d in blocks) + pool - 1
        self.pool_frames = pool
        self.embed = nn.Conv1d(2 * channels, dim, 1)
        self.centres = nn.Parameter(torch.randn(n_speakers, dim) * 0.05)
        self.ap_w = nn.Parameter(torch.tensor(10.0))  # prototypical loss scale and bias (training only)
        self.ap_b = nn.Parameter(torch.tensor(-5.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = ((features - self.mean) * self.inv_std).transpose(1, 2)
        x = torch.relu(self.bn0(self.patch(x)))
        x = self.blocks(x)
        xd = x.double()  # the variance E[x^2] - E[x]^2 cancels: float32 sums differ between runtimes
        m = window_mean(xd, self.pool_frames)
        s = torch.sqrt(torch.relu(window_mean(xd * xd, self.pool_frames) - m * m) + 1e-4)
        e = self.embed(torch.cat([m, s], dim=1).float()).transpose(1, 2)
        return e / torch.sqrt((e * e).sum(-1, keepdim=True) + 1e-12)

    def am_logits(self, emb: torch.Tensor, y: torch.Tensor, margin: float, scale: float = 30.0) -> torch.Tensor:
        """CosFace logits of embeddings (N, dim) for targets ``y`` (N,)."""
        w = nn.functional.normalize(self.centres, dim=1)
        cos = emb @ w.t()
        return scale * (cos - margin * nn.functional.one_hot(y, cos.shape[1]).to(cos.dtype))


class Exported(nn.Module):
    """What goes into the ONNX graph: the embedder alone."""

    def __init__(self, net: SpeakerNet) -> None:
        super().__init__()
        self.net = net
        self.context_frames = net.context_frames

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def load_state(model: SpeakerNet, state: dict) -> None:
    """Load a checkpoint's state; one from before the prototypical loss lacks its two scalars.

    Raises:
        RuntimeError: any other key missing or unexpected.
    """
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"ap_w", "ap_b"}:
        raise RuntimeError(f"checkpoint does not fit: missing {missing}, unexpected {unexpected}")


def build(n_speakers: int, cfg: dict, mean=None, std=None) -> SpeakerNet:
    return SpeakerNet(n_speakers, cfg["channels"], cfg["dim"], mean=mean, std=std)


# ---------------------------------------------------------------------------------- training


def lr_at(step: int, total: int, peak: float, warm: int = 300) -> float:
    """Linear warm-up then cosine decay to 2 % of ``peak`` at ``total``."""
    if step < warm:
        return peak * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def save(path: Path, model: SpeakerNet, opt, step: int, cfg: dict, history: list, crops_rng) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "cfg": cfg,
                "history": history, "rng": crops_rng.bit_generator.state}, tmp)
    tmp.replace(path)


def train(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads)
    t0 = time.time()
    clips, bgs = load_all(a.corpora, a.bg_corpora)
    tr = speaker_clips(clips, "train")
    chained = train_chain_rows(tr, bgs, only_cached=True) if a.p_chain > 0 else None
    crops = Crops(tr, bgs, chained, a.seed, p_chain=a.p_chain)
    print("chain rows: " + ("loaded" if chained else "not computed yet (--prepare); looked for at each checkpoint"),
          flush=True)
    print(f"{len(tr)} clips of {crops.n_speakers} training speakers, ready in {time.time() - t0:.0f}s", flush=True)
    cfg = {"channels": a.channels, "dim": a.dim, "n_speakers": crops.n_speakers, "corpora": list(a.corpora),
           "bg_corpora": list(a.bg_corpora),
           "batch": a.batch, "lr": a.lr, "margin": a.margin, "p_chain": a.p_chain, "seed": a.seed,
           "frame_share": a.frame_share, "p_tel": 0.15, "proto": a.proto}
    step, history = 0, []
    if a.resume and a.ckpt.exists():
        ck = torch.load(a.ckpt, weights_only=False)
        if ck["cfg"]["n_speakers"] != crops.n_speakers:
            raise SystemExit(f"checkpoint has {ck['cfg']['n_speakers']} speakers, the data {crops.n_speakers}")
        cfg = {**ck["cfg"], "lr": a.lr, "p_chain": a.p_chain}
        model = build(crops.n_speakers, cfg)
        load_state(model, ck["model"])
        step, history = ck["step"], ck["history"]
        crops.rng.bit_generator.state = ck["rng"]
        print(f"resumed at step {step}", flush=True)
    else:
        mean, std = crops.stats()
        model = build(crops.n_speakers, cfg, mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    if a.resume and a.ckpt.exists():
        opt.load_state_dict(ck["opt"])
    print(f"params {n_params(model) - model.centres.numel()} (+ {model.centres.numel()} centres), "
          f"context_frames {model.context_frames}", flush=True)
    history.append({"run_start_step": step, "steps": a.steps, "lr": a.lr, "p_chain": a.p_chain,
                    "argv": "python -m training.speaker_embedding " + " ".join(sys.argv[1:]),
                    "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    last, tl, ta = time.time(), [], []
    model.train()
    while step < a.steps:
        lr = lr_at(step, a.steps, a.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        X, Y = crops.batch(a.batch, 2 if a.proto else 1)
        emb = model(X)
        keep = (Y >= 0) & (torch.rand(Y.shape) < a.frame_share)  # a share of the frames: the head is costly
        e, y = emb[keep], Y[keep]
        margin = a.margin * min(1.0, step / 500)
        lg = model.am_logits(e, y, margin)
        loss = nn.functional.cross_entropy(lg, y)
        if a.proto:
            loss = loss + a.proto * proto_loss(emb, Y >= 0, model.ap_w, model.ap_b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        tl.append(loss.item())
        ta.append(float((lg.argmax(1) == y).float().mean()))
        if step % 50 == 0:
            print(f"step {step} t {time.time() - t0:.0f}s lr {lr:.2e} m {margin:.2f} loss {np.mean(tl):.3f} "
                  f"acc {np.mean(ta):.3f}", flush=True)
            history.append({"step": step, "loss": float(np.mean(tl)), "acc": float(np.mean(ta))})
            tl, ta = [], []
        if time.time() - last > a.ckpt_every or step == a.steps:
            save(a.ckpt, model, opt, step, cfg, history, crops.rng)
            last = time.time()
            if a.p_chain > 0 and not any(c is not None for c in crops.chained):
                chained = train_chain_rows(tr, bgs, only_cached=True)
                if chained:
                    crops.chained = [chained.get(i) for i in range(len(tr))]
                    history.append({"chain_rows_from_step": step})
                    print(f"chain rows loaded at step {step}", flush=True)
            print(f"checkpoint {a.ckpt} at step {step}", flush=True)


# ---------------------------------------------------------------------------------- export


def load_net(path: Path = CKPT) -> tuple[SpeakerNet, dict]:
    ck = torch.load(path, weights_only=False)
    model = build(ck["cfg"]["n_speakers"], ck["cfg"])
    load_state(model, ck["model"])
    model.eval()
    return model, ck


def export(path: Path, folder: Path) -> None:
    """ONNX + embedding.json + train_info.json from checkpoint ``path`` into ``folder``."""
    from .evaluate_speaker import threshold_info
    from .export import session

    model, ck = load_net(path)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "model.onnx"
    tmp = folder / "model.onnx.tmp"
    x = torch.randn(2, SUBFRAMES * (model.context_frames + 8), N_MELS) * 3 - 8
    torch.onnx.export(Exported(model).eval(), (x,), str(tmp), input_names=["features"], output_names=["embeddings"],
                      dynamic_axes={"features": {0: "batch", 1: "rows"}, "embeddings": {0: "batch", 1: "frames"}},
                      opset_version=17, dynamo=False)
    s = session(tmp)
    model.eval()  # the export restores the wrapper's mode; the reference must be in eval mode
    with torch.no_grad():
        ref = model(x).numpy()
    diff = float(np.abs(s.run(None, {"features": x.numpy()})[0] - ref).max())
    assert diff < 1e-4, f"onnxruntime differs from torch by {diff}"
    old = json.loads((folder / "embedding.json").read_text()) if (folder / "embedding.json").exists() else {}
    tmp.replace(onnx_path)
    thr = threshold_info(onnx_path, model.context_frames)
    ctx = model.context_frames
    info = {
        "version": int(old.get("version", 0)) + 1,
        "onnx": "model.onnx", "input": "features", "output": "embeddings",
        "dim": ck["cfg"]["dim"], "context_frames": ctx, "receptive_field_ms": 64 * (ctx + 1),
        "frame_ms": 64, "rows_per_frame": SUBFRAMES, "silence_floor": SILENCE_FLOOR,
        "normalised": "L2 (unit norm per frame)",
        "utterance_embedding": "mean of the frame embeddings over the speech frames, renormalised to unit norm",
        **thr,
        "notes": [
            "The first context_frames frames of a stream see the silence floor before it: their embeddings "
            "describe less than 2.1 s of audio.",
            "A frame embedding describes the 2.1 s ending at its frame: around a speaker change it mixes both "
            "speakers for up to 33 frames.",
            "Thresholds are at the equal error rate on the val speakers (none seen in training); scores are "
            "cosine similarities of unit vectors (dot products).",
        ],
        "checkpoint_step": ck["step"],
    }
    (folder / "embedding.json").write_text(json.dumps(info, indent=1) + "\n")
    runs = [h for h in ck["history"] if "run_start_step" in h]
    last = [h for h in ck["history"] if "loss" in h][-1:] or [{}]
    (folder / "train_info.json").write_text(json.dumps({
        "recipe": ck["cfg"], "steps": ck["step"], "runs": runs,
        "commands": [r["argv"] for r in runs if "argv" in r] + ["python -m training.speaker_embedding --export"], "final_train_loss": last[0].get("loss"),
        "final_train_acc": last[0].get("acc"), "version": info["version"], "onnx_bytes": onnx_path.stat().st_size,
    }, indent=1) + "\n")
    print(json.dumps(info, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", action="store_true", help="compute the chain rows only")
    ap.add_argument("--export", action="store_true", help="export the checkpoint to --folder")
    ap.add_argument("--steps", type=int, default=6000, help="total steps (a resumed run goes on to this)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt", type=Path, default=CKPT)
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds between checkpoints")
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--channels", type=int, default=CHANNELS)
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--proto", type=float, default=1.0,
                    help="weight of the angular prototypical loss (2 crops per speaker); 0: AM-softmax only")
    ap.add_argument("--frame-share", type=float, default=0.25, help="share of a crop's frames in the loss")
    ap.add_argument("--p-chain", type=float, default=0.8,
                    help="share of the examples of a clip with a chained copy that use it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes for the chain rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), help="speech corpora whose speakers are learnt")
    ap.add_argument("--bg-corpora", nargs="*", default=list(BG_CORPORA), help="noise / music for augmentation")
    a = ap.parse_args()
    if a.prepare:
        torch.set_num_threads(1)
        clips, bgs = load_all(a.corpora, a.bg_corpora)
        train_chain_rows(speaker_clips(clips, "train"), bgs, workers=a.workers)
    elif a.export:
        torch.set_num_threads(a.threads)
        export(a.ckpt, a.folder)
    else:
        train(a)


if __name__ == "__main__":
    main()
