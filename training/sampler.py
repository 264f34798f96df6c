"""Random training crops with frame targets, for the speech/music/other and gender models.

A crop is ``context_frames + n`` frames of audio (plus the 256 samples of logmel history before
it). Starts are drawn from ``-(context_frames + n // 2)`` frames up to the clip end, so some
crops begin before the clip: that part is zero audio, exactly what the engine feeds before a
stream starts (SILENCE_FLOOR rows). Targets are given for the last ``n`` frames; -100 = ignored.

Frame truth (also used by :mod:`training.evaluate`):

* speech clips: a frame is speech when it is *active* (within 30 dB of the clip's
  95th-percentile frame level and above -65 dBFS, measured on the clean clip) or when an active
  frame lies within the model's hangover before it (Speech: 7 frames = 0.45 s; SpeechRT: 1
  frame). Other frames of a speech clip take the class of the mixed-in background (music /
  other), or ``other`` with no background.
* music clips: music; noise clips: other (UrbanSound8K street_music counts as music).
* frames quieter than -60 dBFS in the clean source (the engine's volume gate calls them
  silence) and frames before the stream start are ignored.
* gender: the clip's speaker gender on active frames (hangover 2 frames), ignored elsewhere.
* underage: the clip's ``child`` / ``adult`` class (:func:`training.data.underage_class`) on
  active frames, the same way. Adults are drawn half from the corpora that also have children
  (speechocean: Mandarin-L1 speakers reading English; its women 0.3, its men 0.2), half from the
  rest, so that the accent of the child corpus is not what tells a child; girls and boys are
  drawn alike.

Two ways to make an example (``TaskCfg.fast_frac`` picks between them per example):

* *waveform* (exact): mix, reverb, telephone, codec and gain on audio, then
  :func:`deeptone_async.features.logmel` -- what the engine computes;
* *fast* (feature domain, ~10x cheaper on 2 cores): crop log-mel rows precomputed once per clip
  with the same ``logmel``, mix in the mel-power domain (powers add; cross terms ignored) and
  apply the gain as a power factor. No channel effects. Used to see more data per minute.
* *chain* (a share ``p_chain`` of the fast examples, where the clip has them): crop the rows of
  one of the clip's copies sent through the augmentation chain (:mod:`training.chain_rows`:
  reverb, background, EQ, clipping, level, telephone / codec, with the task's label policy),
  computed once before training. The chain already set the level and added any background, so
  neither is added again; the frame truth is the clean clip's (the chain keeps time alignment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeptone_async.features import FRAME_SAMPLES, HOP_SAMPLES, N_MELS, POWER_FLOOR, SILENCE_FLOOR, logmel

from . import augment as A
from .data import UNDERAGE, Clip, active_frames, frame_db_from_hops, hangover, underage_class

SMO = ("speech", "music", "other")
GENDERS = ("male", "female")
#: speaker-attribute tasks: the classes of each (drawn evenly, one clip class per clip)
ATTRS: dict[str, tuple[str, ...]] = {"gender": GENDERS, "underage": UNDERAGE}


def attr_index(task: str, clip: Clip) -> int:
    """Class index of ``clip`` for a speaker-attribute task (:data:`ATTRS`), -1 when it has none."""
    v = clip.gender if task == "gender" else underage_class(clip) if task == "underage" else ""
    labels = ATTRS.get(task, ())
    return labels.index(v) if v in labels else -1
GATE_DB = -60.0
IGNORE = -100
HIST = 256


@dataclass
class TaskCfg:
    task: str  # "smo" or a speaker-attribute task of ATTRS ("gender", "underage")
    context_frames: int
    n: int
    hangover: int
    p_bg: float = 0.5
    snr: tuple[float, float] = (0.0, 25.0)
    gain_db: tuple[float, float] = (-30.0, 6.0)
    augment: bool = True  # background mixing
    channel: bool = True  # reverb / telephone / codec / gain
    fast_frac: float = 0.0  # share of feature-domain examples (see module doc)
    p_chain: float = 0.0  # share of feature-domain examples cropped from chain-augmented rows


def _crop(clip: Clip, start_hop: int, n_hops: int) -> tuple[np.ndarray, np.ndarray]:
    """Audio of hops [start_hop, start_hop + n_hops) + HIST samples before it (zeros outside
    the clip), and the hop dB of those hops (-120 outside)."""
    x = clip.audio
    s = start_hop * HOP_SAMPLES - HIST
    e = (start_hop + n_hops) * HOP_SAMPLES
    out = np.zeros(e - s, np.float32)
    a, b = max(s, 0), min(e, len(x))
    if b > a:
        out[a - s : b - s] = x[a:b].astype(np.float32) / 32768.0
    hdb = np.full(n_hops, -120.0, np.float32)
    ha, hb = max(start_hop, 0), min(start_hop + n_hops, len(clip.hop_db))
    if hb > ha:
        hdb[ha - start_hop : hb - start_hop] = clip.hop_db[ha:hb]
    return out, hdb


def _loop_crop(clip: Clip, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    x = clip.audio.astype(np.float32) / 32768.0
    if len(x) < n_samples:
        x = np.tile(x, n_samples // max(len(x), 1) + 1)
    s = int(rng.integers(0, len(x) - n_samples + 1))
    return x[s : s + n_samples]


def _start(clip: Clip, cfg: TaskCfg, rng: np.random.Generator) -> int:
    L = cfg.context_frames + cfg.n
    n_frames = len(clip.hop_db) // 4
    lo = -(cfg.context_frames + cfg.n // 2)
    hi = max(n_frames - L, lo)
    f = int(rng.integers(lo, hi + 1))
    if f < 0:
        return f * 4  # pre-stream part is whole frames of zeros
    return f * 4 + int(rng.integers(0, 4)) if f < hi else f * 4


def precompute_rows(clips: list[Clip]) -> dict[int, np.ndarray]:
    """log-mel rows of every whole clip (zero history), keyed by id(clip), for fast examples."""
    out = {}
    for c in clips:
        n = len(c.audio) // HOP_SAMPLES * HOP_SAMPLES
        out[id(c)] = logmel(c.audio[:n].astype(np.float32) / 32768.0)
    return out


class Sampler:
    """Draws training examples from clips; ``batch()`` returns (features, targets)."""

    def __init__(self, clips: list[Clip], cfg: TaskCfg, seed: int = 0,
                 rows: dict[int, np.ndarray] | None = None,
                 chain_rows: dict[int, list[tuple[np.ndarray, str]]] | None = None) -> None:
        self.cfg = cfg
        self.chain_rows = chain_rows or {}
        self.rng = np.random.default_rng(seed)
        self.music = [c for c in clips if c.cls == "music"]
        self.noise = [c for c in clips if c.cls == "other"]
        self.speech = [c for c in clips if c.cls == "speech"]
        self.rows = rows if rows is not None else (precompute_rows(clips) if cfg.fast_frac > 0 else {})
        if cfg.task in ATTRS:
            labels = ATTRS[cfg.task]
            self.by_gender = {g: [c for c in self.speech if attr_index(cfg.task, c) == k]
                              for k, g in enumerate(labels)}
            self.w_gender = {g: self._corpus_weights(v) for g, v in self.by_gender.items()}
            if cfg.task == "underage":
                # adults: half from the child corpora (women 0.3, men 0.2: a woman's voice is the
                # usual false alarm), half from the rest; children: girls and boys alike
                kids = {c.corpus for c in self.by_gender["child"]}
                ad, w = self.by_gender["adult"], self.w_gender["adult"]
                w = self._share(ad, w, kids, 0.5)
                inside = np.array([c.corpus in kids for c in ad])
                fem = np.array([c.gender == "female" for c in ad])
                if (inside & fem).any() and (inside & ~fem).any():
                    w[inside & fem] *= 0.3 / w[inside & fem].sum()
                    w[inside & ~fem] *= 0.2 / w[inside & ~fem].sum()
                self.w_gender["adult"] = w / w.sum()
                ch = self.by_gender["child"]
                girls = {c.corpus + ":" + c.speaker for c in ch if c.gender == "female"}
                self.w_gender["child"] = self._share(ch, self.w_gender["child"], set(), 0.5, girls)
        else:
            self.w_speech = self._corpus_weights(self.speech)

    @staticmethod
    def _corpus_weights(clips: list[Clip]) -> np.ndarray:
        """Each corpus gets weight ~ sqrt(its hours); clips within it by duration."""
        if not clips:
            return np.zeros(0)
        corp = np.array([c.corpus for c in clips])
        dur = np.array([len(c.audio) for c in clips], np.float64)
        w = np.zeros(len(clips))
        for k in set(corp):
            m = corp == k
            w[m] = np.sqrt(dur[m].sum()) * dur[m] / dur[m].sum()
        return w / w.sum()

    @staticmethod
    def _share(clips: list[Clip], w: np.ndarray, corpora: set[str], share: float,
               speakers: set[str] | None = None) -> np.ndarray:
        """``w`` rescaled so that the clips of ``corpora`` (or of ``corpus:speaker`` in
        ``speakers``) weigh ``share`` in all (when both sides have clips)."""
        inside = np.array([c.corpus in corpora or (speakers is not None and f"{c.corpus}:{c.speaker}" in speakers)
                           for c in clips])
        if not inside.any() or inside.all():
            return w
        out = w.copy()
        out[inside] *= share / w[inside].sum()
        out[~inside] *= (1 - share) / w[~inside].sum()
        return out / out.sum()

    def _pick(self, clips: list[Clip], w: np.ndarray | None = None) -> Clip:
        return clips[int(self.rng.choice(len(clips), p=w))]

    def _rows(self, clip: Clip, start_hop: int, n_hops: int, r: np.ndarray | None = None) -> np.ndarray:
        r = self.rows[id(clip)] if r is None else r
        out = np.full((n_hops, N_MELS), SILENCE_FLOOR, np.float32)
        a, b = max(start_hop, 0), min(start_hop + n_hops, len(r))
        if b > a:
            out[a - start_hop : b - start_hop] = r[a:b]
        return out

    def _loop_rows(self, clip: Clip, n_hops: int) -> tuple[np.ndarray, np.ndarray]:
        r, h = self.rows[id(clip)], clip.hop_db
        n = min(len(r), len(h))
        r, h = r[:n], h[:n]
        if n < n_hops:
            k = n_hops // max(n, 1) + 1
            r, h = np.tile(r, (k, 1)), np.tile(h, k)
        s = int(self.rng.integers(0, len(r) - n_hops + 1))
        return r[s : s + n_hops], h[s : s + n_hops]

    @staticmethod
    def _power(rows: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(rows) - POWER_FLOOR, 0.0)

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cfg.fast_frac > 0 and self.rng.random() < self.cfg.fast_frac:
            return self.fast_example()
        return self.wave_example()

    def _choose(self):
        cfg, rng = self.cfg, self.rng
        g = -1
        if cfg.task in ATTRS:
            labels = ATTRS[cfg.task]
            g = int(rng.integers(len(labels)))
            clip = self._pick(self.by_gender[labels[g]], self.w_gender[labels[g]])
            kind = "speech"
        else:
            u = rng.random()
            kind = "speech" if u < 0.5 else ("music" if u < 0.72 else "other")
            pools = {"speech": self.speech, "music": self.music, "other": self.noise}
            if not pools[kind]:  # a corpus set without that class
                kind = next(k for k in ("speech", "other", "music") if pools[k])
            if kind == "speech":
                clip = self._pick(self.speech, self.w_speech)
            else:
                clip = self._pick(pools[kind])
        return g, clip, kind

    def fast_example(self) -> tuple[np.ndarray, np.ndarray]:
        """Feature-domain example: precomputed rows, power-domain mixing and gain."""
        cfg, rng = self.cfg, self.rng
        L = cfg.context_frames + cfg.n
        n_hops = 4 * L
        g, clip, kind = self._choose()
        start = _start(clip, cfg, rng)
        hdb = np.full(n_hops, -120.0, np.float32)
        ha, hb = max(start, 0), min(start + n_hops, len(clip.hop_db))
        if hb > ha:
            hdb[ha - start : hb - start] = clip.hop_db[ha:hb]
        fdb = frame_db_from_hops(hdb)
        pre = max(0, -start // 4)
        copies = self.chain_rows.get(id(clip))
        chained = bool(copies) and cfg.p_chain > 0 and rng.random() < cfg.p_chain
        src, added = copies[int(rng.integers(len(copies)))] if chained else (None, "")
        P = self._power(self._rows(clip, start, n_hops, src))
        y = np.full(L, IGNORE, np.int64)
        if kind == "speech":
            act = active_frames(fdb, clip.ref_db)
            bg_cls = None
            if cfg.augment and not chained and (self.music or self.noise) and rng.random() < cfg.p_bg:
                bg_is_music = (rng.random() < 0.4 and bool(self.music)) or not self.noise
                bg = self._pick(self.music if bg_is_music else self.noise)
                br, bh = self._loop_rows(bg, n_hops - 4 * pre)
                on = act[pre:]
                sp = np.repeat(on, 4)
                s_db = 10 * np.log10(np.mean(10 ** (hdb[4 * pre :][sp] / 10)) + 1e-12) if sp.any() else \
                    10 * np.log10(np.mean(10 ** (hdb[4 * pre :] / 10)) + 1e-12)
                b_db = 10 * np.log10(np.mean(10 ** (bh / 10)) + 1e-12)
                snr = rng.uniform(*cfg.snr)
                if b_db > -100:
                    P[4 * pre :] += 10 ** ((s_db - snr - b_db) / 10) * self._power(br)
                bg_cls = 1 if bg_is_music else 2
            on = hangover(act, cfg.hangover)
            if cfg.task in ATTRS:
                y[on] = g
            else:
                y[:] = bg_cls if bg_cls is not None else 2
                y[on] = 0
                if bg_cls is None:
                    y[(~on) & (fdb < GATE_DB)] = IGNORE
                if chained and added:  # the pauses hold the chain's background (babble: speech)
                    y[~on] = SMO.index(added)
        else:
            y[:] = 1 if kind == "music" else 2
            y[fdb < GATE_DB] = IGNORE
            if chained and added not in ("", "other", kind):  # noise under music stays music;
                y[:] = IGNORE  # music or babble under noise: not labelled here (the policies forbid it)
        y[:pre] = IGNORE
        if cfg.channel and not chained:
            P *= 10 ** (rng.uniform(*cfg.gain_db) / 10)
        P[: 4 * pre] = 0.0
        feats = np.log(P + POWER_FLOOR).astype(np.float32)
        return feats, y[cfg.context_frames :]

    def wave_example(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, rng = self.cfg, self.rng
        L = cfg.context_frames + cfg.n
        n_hops = 4 * L
        g, clip, kind = self._choose()
        start = _start(clip, cfg, rng)
        x, hdb = _crop(clip, start, n_hops)
        fdb = frame_db_from_hops(hdb)
        pre = max(0, -start // 4)  # pre-stream frames
        x_pre = HIST + pre * FRAME_SAMPLES
        y = np.full(L, IGNORE, np.int64)
        if kind == "speech":
            act = active_frames(fdb, clip.ref_db)
            bg_cls = None
            if cfg.augment and (self.music or self.noise) and rng.random() < cfg.p_bg:
                bg_is_music = (rng.random() < 0.4 and bool(self.music)) or not self.noise
                bg = self._pick(self.music if bg_is_music else self.noise)
                bgx = _loop_crop(bg, len(x) - x_pre, rng)
                snr = rng.uniform(*cfg.snr)
                seg = x[x_pre:]
                mask = np.repeat(act[pre:], FRAME_SAMPLES)[: len(seg) - HIST]
                mask = np.concatenate([np.zeros(HIST, bool), mask]) if len(mask) < len(seg) else mask
                x[x_pre:] = A.mix_at_snr(seg, bgx, snr, mask[: len(seg)])
                bg_cls = 1 if bg_is_music else 2
            if cfg.task in ATTRS:
                on = hangover(act, cfg.hangover)
                y[on] = g
            else:
                on = hangover(act, cfg.hangover)
                y[:] = bg_cls if bg_cls is not None else 2
                y[on] = 0
                if bg_cls is None:
                    y[(~on) & (fdb < GATE_DB)] = IGNORE
        else:
            y[:] = 1 if kind == "music" else 2
            y[fdb < GATE_DB] = IGNORE
            if cfg.augment and kind == "music" and self.noise and rng.random() < 0.3:
                x[x_pre:] = A.mix_at_snr(x[x_pre:], _loop_crop(self._pick(self.noise), len(x) - x_pre, rng),
                                         rng.uniform(10, 30))
        y[:pre] = IGNORE
        if cfg.channel:
            x = A.channel(x, rng)
            x = A.gain(x, rng.uniform(*cfg.gain_db))
        x[:x_pre] = 0.0
        feats = logmel(x[HIST:], x[:HIST])
        return feats, y[cfg.context_frames :]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        fs, ys = zip(*(self.example() for _ in range(size)))
        return np.stack(fs), np.stack(ys)
