"""Training and validation examples for the AudioEvent model: human sounds mixed into speech,
music and noise backgrounds, with one independent target per class and frame.

Classes (:data:`CLASSES`, DeepTone's AudioEvent labels in output order): ``pos_human_sounds``
(laughter), ``neg_human_sounds`` (crying, screaming), ``nat_human_sounds`` (coughing,
sneezing, throat clearing, nose blowing), ``speech``, ``music``, ``noise``.

Corpus labels -> roles (:func:`role`):

==============  =========================================================================
vocalizations   laugh -> pos; cry, scream -> neg; cough, sneeze, throat_clear, nose_blow ->
                nat; moan -> left out (pain or pleasure: neither neg nor a negative);
                lip_pop, lip_smack, pant, sigh, teeth_chatter, teeth_grind, tongue_click,
                yawn -> ``vocal_other`` (human non-speech sounds that are *not* events:
                hard negatives, their frames are ``noise``)
esc50           laughing -> pos; crying_baby -> neg; coughing, sneezing -> nat; every other
                class (clapping, breathing, snoring, animals, machines ...) -> noise
noise           cry (donateacry infant cries) -> neg; street_music -> music;
                children_playing -> left out (voices, laughter and screams unlabelled);
                the rest -> noise
emospeech       scream -> neg (its ``speech`` target is not scored: screams may hold words);
                the emotion clips (spoken command words on phones) -> speech
any other       the labels above (laugh / laughing, cry / crying_baby / scream, cough /
                coughing / sneeze / sneezing / throat_clear / nose_blow) -> their class;
                otherwise as :func:`training.data.smo_class` says (speech / music / noise)
speech corpora  speech; ``music`` -> music
==============  =========================================================================

An example is a *plan* (:class:`Plan`): a background crop (speech, music, noise, or none) and
at most one event clip placed at a random offset and mixed at a random event-to-background
SNR (-6 to 20 dB over the active frames of each), then a random gain. Frame targets
(``-1`` = not scored), from the clean sources' energy (:func:`training.data.active_frames`):

* an event class: 1 on the event's active frames + 3 frames of hangover, 0 elsewhere; active
  event frames more than 10 dB under the background in that frame are not scored;
* ``speech``: 1 on the speech background's active frames + 7 frames (the Speech model's
  truth), else 0; ``music``: 1 on every frame of a music background, else 0;
* ``noise``: 1 on every frame of a noise background, and wherever no speech, music or event
  is on (the Speech model's ``other``: pauses, residual room sound, ``vocal_other`` sounds);
  else 0;
* frames of the mixture under -60 dBFS (the engine's volume gate: ``silence``) and frames
  before a stream's start are not scored.

Two renderers of one plan: :func:`render_rows` (feature domain: precomputed log-mel rows,
powers added, optionally a telephone-like band limit on the mel bands; cheap) and
:func:`render_wave` (the waveform mixed, then the augmentation chain of
:mod:`training.augment` -- reverb, microphone EQ, clipping, level, telephone / Opus / MP3 --
on the mixture, then :func:`deeptone_async.features.logmel`, exactly the engine's features).
Waveform examples are costly, so :func:`chained_pool` renders a fixed pool once (cached in
``training/cache``) and the trainer crops from it.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from deeptone_async.features import (
    F_MAX,
    F_MIN,
    HOP_SAMPLES,
    N_MELS,
    POWER_FLOOR,
    SILENCE_FLOOR,
    logmel,
)

from . import augment as A
from .data import CACHE, SPEECH_CORPORA, Clip, active_frames, frame_db_from_hops, hangover

CLASSES = ("pos_human_sounds", "neg_human_sounds", "nat_human_sounds", "speech", "music", "noise")
EVENTS = CLASSES[:3]
SHORT = {"pos": 0, "neg": 1, "nat": 2}
SPEECH, MUSIC, NOISE = 3, 4, 5
GATE_DB = -60.0
EVENT_HANG, SPEECH_HANG = 3, 7
MASKED_DB = 10.0  # event frames this far under the background in the same frame are not scored
SNR_DB = (-6.0, 20.0)
GAIN_DB = (-30.0, 6.0)
HIST = 256

_VOCAL = {"laugh": "pos", "cry": "neg", "scream": "neg", "cough": "nat", "sneeze": "nat",
          "throat_clear": "nat", "nose_blow": "nat", "moan": None}
_ESC = {"laughing": "pos", "crying_baby": "neg", "coughing": "nat", "sneezing": "nat"}
#: human-sound labels recognised in any other corpus (a user's manifest: ``--manifest``)
_ANY = {k: v for k, v in {**_VOCAL, **_ESC}.items() if v is not None}
CORPORA = (*SPEECH_CORPORA, "music", "noise", "vocalizations", "esc50", "emospeech")


def role(c: Clip) -> str | None:
    """``pos`` / ``neg`` / ``nat`` (an event), ``vocal_other``, ``speech`` / ``music`` /
    ``noise`` (a background), or None (left out); see the module docstring."""
    if c.corpus == "vocalizations":
        return _VOCAL.get(c.label, "vocal_other")
    if c.corpus == "esc50":
        return _ESC.get(c.label, "noise")
    if c.corpus == "emospeech":
        return "neg" if c.label == "scream" else "speech"
    if c.label in _ANY:  # cry (noise corpus) and a user's own manifest of human sounds
        return _ANY[c.label]
    if c.label == "children_playing":
        return None
    if c.cls == "music":
        return "music"
    if c.cls == "other":
        return "noise"
    return "speech"


@dataclass
class Pools:
    """Clips of one split by role."""

    events: dict[str, list[Clip]]  # pos / neg / nat / vocal_other
    bgs: dict[str, list[Clip]]  # speech / music / noise

    @classmethod
    def of(cls, clips: list[Clip]) -> Pools:
        ev: dict[str, list[Clip]] = {k: [] for k in ("pos", "neg", "nat", "vocal_other")}
        bg: dict[str, list[Clip]] = {k: [] for k in ("speech", "music", "noise")}
        for c in clips:
            r = role(c)
            if r in ev:
                ev[r].append(c)
            elif r in bg:
                bg[r].append(c)
        return cls(ev, bg)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in {**self.events, **self.bgs}.items()}


@dataclass
class Plan:
    """One example: frames ``L``; background clip and hop offset (tiled when shorter); event
    clip, its hop offset in the window (may be negative) and power gain; ``pre`` frames of
    stream start (zeros); overall gain in dB; ``band`` a telephone-like band limit (fast path)."""

    L: int
    bg: Clip | None
    bg_kind: str  # speech / music / noise / none
    bg_start: int
    ev: Clip | None
    ev_kind: str  # pos / neg / nat / vocal_other / none
    ev_start: int
    ev_gain: float
    pre: int
    gain_db: float
    band: bool


def _pick(rng: np.random.Generator, clips: list[Clip]) -> Clip:
    return clips[int(rng.integers(len(clips)))]


def _pick_event(rng: np.random.Generator, pools: Pools, kind: str) -> Clip:
    """Each corpus of the class equally likely, then a clip of it (few laughs in esc50 are not
    drowned by many cries in noise, and the reverse)."""
    clips = pools.events[kind]
    corp = sorted({c.corpus for c in clips})
    k = corp[int(rng.integers(len(corp)))]
    return _pick(rng, [c for c in clips if c.corpus == k])


def _db(hdb: np.ndarray) -> float:
    """Mean power in dB of hop levels."""
    return float(10 * np.log10(np.mean(10 ** (hdb / 10)) + 1e-12)) if len(hdb) else -120.0


def _hops(clip: Clip, start: int, n: int, tile: bool) -> np.ndarray:
    """Hop dB of hops [start, start + n) of the clip (tiled, or -120 outside)."""
    h = clip.hop_db
    if tile:
        idx = (start + np.arange(n)) % max(len(h), 1)
        return h[idx] if len(h) else np.full(n, -120.0, np.float32)
    out = np.full(n, -120.0, np.float32)
    a, b = max(start, 0), min(start + n, len(h))
    if b > a:
        out[a - start : b - start] = h[a:b]
    return out


def draw_plan(rng: np.random.Generator, pools: Pools, L: int, ctx: int, p_event: float = 0.6,
              p_vocal_other: float = 0.15, p_band: float = 0.0, augment: bool = True) -> Plan:
    """A random example of ``L`` frames whose scored frames are the last ``L - ctx``."""
    u = rng.random()
    bg_kind = "speech" if u < 0.35 else "music" if u < 0.55 else "noise" if u < 0.75 else "none"
    if not pools.bgs.get(bg_kind):
        bg_kind = "none"
    ev_kind = "none"
    if bg_kind == "none" or rng.random() < p_event:
        ev_kind = "vocal_other" if rng.random() < p_vocal_other else ("pos", "neg", "nat")[int(rng.integers(3))]
        if not pools.events.get(ev_kind):
            ev_kind = "none"
    if bg_kind == "none" and ev_kind == "none":
        bg_kind = next(k for k in ("speech", "music", "noise") if pools.bgs.get(k))
    nh = 4 * L
    bg, bg_start = None, 0
    if bg_kind != "none":
        bg = _pick(rng, pools.bgs[bg_kind])
        bg_start = int(rng.integers(0, max(len(bg.hop_db) - nh, 0) + 1))
    ev, ev_start, ev_gain = None, 0, 1.0
    if ev_kind != "none":
        ev = _pick_event(rng, pools, ev_kind)
        ef = len(ev.hop_db) // 4
        act = np.flatnonzero(active_frames(frame_db_from_hops(ev.hop_db), ev.ref_db))
        a0 = int(act[0]) if len(act) else 0
        # the event's first active frame lands somewhere in the scored frames (or just before)
        f = int(rng.integers(ctx - 4, L - 2)) - a0
        f = max(f, -(ef - 2))
        ev_start = 4 * f
        if bg is not None:
            bh = _hops(bg, bg_start, nh, tile=True)
            bfdb = frame_db_from_hops(bh)
            bon = active_frames(bfdb, bg.ref_db) if bg_kind == "speech" else bfdb > GATE_DB
            b_db = _db(np.repeat(bfdb[bon], 4)) if bon.any() else _db(bh)
            eon = active_frames(frame_db_from_hops(ev.hop_db), ev.ref_db)
            e_db = _db(np.repeat(frame_db_from_hops(ev.hop_db)[eon], 4)) if eon.any() else _db(ev.hop_db)
            snr = rng.uniform(*SNR_DB)
            ev_gain = float(10 ** ((b_db + snr - e_db) / 10)) if b_db > -100 else 1.0
    pre = int(rng.integers(1, ctx + 1)) if augment and rng.random() < 0.08 else 0
    gain = float(rng.uniform(*GAIN_DB)) if augment else 0.0
    band = bool(augment and rng.random() < p_band)
    return Plan(L, bg, bg_kind, bg_start, ev, ev_kind, ev_start, ev_gain, pre, gain, band)


def targets(p: Plan) -> np.ndarray:
    """(L, 6) float32 frame targets of a plan: 1 / 0, or -1 = not scored."""
    nh = 4 * p.L
    y = np.zeros((p.L, len(CLASSES)), np.float32)
    bpow = np.zeros(p.L)
    on_any = np.zeros(p.L, bool)
    if p.bg is not None:
        bfdb = frame_db_from_hops(_hops(p.bg, p.bg_start, nh, tile=True))
        bpow = 10 ** (bfdb / 10)
        if p.bg_kind == "speech":
            on = hangover(active_frames(bfdb, p.bg.ref_db), SPEECH_HANG)
            y[on, SPEECH] = 1
            on_any |= on
        elif p.bg_kind == "music":
            y[:, MUSIC] = 1
            on_any[:] = True
        else:
            y[:, NOISE] = 1
            on_any[:] = True
    epow = np.zeros(p.L)
    if p.ev is not None:
        raw = frame_db_from_hops(_hops(p.ev, p.ev_start, nh, tile=False))
        act = active_frames(raw, p.ev.ref_db)
        efdb = raw + 10 * np.log10(p.ev_gain)
        epow = 10 ** (efdb / 10)
        on = hangover(act, EVENT_HANG)
        if p.ev_kind == "vocal_other":
            y[on, NOISE] = 1
        else:
            k = SHORT[p.ev_kind]
            y[on, k] = 1
            masked = act & (efdb < 10 * np.log10(bpow + 1e-12) - MASKED_DB)
            y[masked, k] = -1
            if p.ev.corpus == "emospeech":  # screamed words: speech not scored while it lasts
                y[on, SPEECH] = -1
        on_any |= on
    y[~on_any, NOISE] = 1
    mix_db = 10 * np.log10(bpow + epow + 1e-12)
    y[mix_db < GATE_DB] = -1
    y[: p.pre] = -1
    return y


# ---------------------------------------------------------------------------------------- fast


_MEL_HZ = None


def _band_mask(rng: np.random.Generator) -> np.ndarray:
    """Mel bands kept by a telephone-like band limit (300 Hz-3.4..4 kHz), as a bool mask."""
    global _MEL_HZ
    if _MEL_HZ is None:
        mel = np.linspace(2595 * np.log10(1 + F_MIN / 700), 2595 * np.log10(1 + F_MAX / 700), N_MELS + 2)[1:-1]
        _MEL_HZ = 700 * (10 ** (mel / 2595) - 1)
    lo, hi = rng.uniform(200, 350), rng.uniform(3300, 4000)
    return (_MEL_HZ >= lo) & (_MEL_HZ <= hi)


def _rows(rows: np.ndarray, start: int, n: int, tile: bool) -> np.ndarray:
    if tile:
        return rows[(start + np.arange(n)) % len(rows)].astype(np.float32)
    out = np.full((n, rows.shape[1]), SILENCE_FLOOR, np.float32)
    a, b = max(start, 0), min(start + n, len(rows))
    if b > a:
        out[a - start : b - start] = rows[a:b]
    return out


def render_rows(p: Plan, rows: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(4L, 64) log-mel rows of a plan in the feature domain (powers added)."""
    nh = 4 * p.L
    P = np.zeros((nh, N_MELS), np.float32)
    if p.bg is not None:
        P += np.maximum(np.exp(_rows(rows[id(p.bg)], p.bg_start, nh, True)) - POWER_FLOOR, 0)
    if p.ev is not None:
        P += p.ev_gain * np.maximum(np.exp(_rows(rows[id(p.ev)], p.ev_start, nh, False)) - POWER_FLOOR, 0)
    P *= 10 ** (p.gain_db / 10)
    if p.band:
        P[:, ~_band_mask(rng)] *= 1e-4
    P[: 4 * p.pre] = 0.0
    return np.log(P + POWER_FLOOR).astype(np.float32)


# ---------------------------------------------------------------------------------------- wave


def _audio(clip: Clip, start_hop: int, n: int, tile: bool) -> np.ndarray:
    x = clip.audio
    s, e = start_hop * HOP_SAMPLES - HIST, (start_hop + n) * HOP_SAMPLES
    if tile:
        idx = np.arange(s, e) % max(len(x), 1)
        return x[idx].astype(np.float32) / 32768.0
    out = np.zeros(e - s, np.float32)
    a, b = max(s, 0), min(e, len(x))
    if b > a:
        out[a - s : b - s] = x[a:b].astype(np.float32) / 32768.0
    return out


def render_wave(p: Plan, chain: A.Chain | None, rng: np.random.Generator) -> np.ndarray:
    """(4L, 64) log-mel rows of a plan mixed as audio, sent through ``chain`` (no background op:
    the plan holds the background), as the engine computes them."""
    nh = 4 * p.L
    x = np.zeros(nh * HOP_SAMPLES + HIST, np.float32)
    if p.bg is not None:
        x += _audio(p.bg, p.bg_start, nh, True)
    if p.ev is not None:
        x += np.float32(np.sqrt(p.ev_gain)) * _audio(p.ev, p.ev_start, nh, False)
    if chain is not None:
        x = chain(x, rng, content="speech" if p.bg_kind == "speech" else "other").audio
    else:
        x = np.clip(x * np.float32(10 ** (p.gain_db / 20)), -1, 1)
    x[: HIST + p.pre * 4 * HOP_SAMPLES] = 0.0
    return logmel(x[HIST:], x[:HIST])


def chain_config() -> A.ChainConfig:
    """The chain on mixtures: the shared defaults, its background step off (the plan mixes)."""
    return A.ChainConfig(p_background=0.0)


_STATE: dict = {}


def _pool_one(i: int) -> tuple[np.ndarray, np.ndarray]:
    pools, L, ctx, seed, chain = _STATE["pools"], _STATE["L"], _STATE["ctx"], _STATE["seed"], _STATE["chain"]
    rng = np.random.default_rng([seed, i])
    p = draw_plan(rng, pools, L, ctx, augment=True)
    return render_wave(p, chain, rng).astype(np.float16), targets(p).astype(np.int8)


def chained_pool(pools: Pools, n: int, L: int, ctx: int, seed: int = 0, workers: int = 2,
                 log=print) -> tuple[np.ndarray, np.ndarray]:
    """``n`` waveform examples of ``L`` frames through the chain: rows (n, 4L, 64) float16 and
    targets (n, L, 6) int8. Cached in ``training/cache/audioevent-pool-<key>.npz``. Blocks for
    minutes the first time (about 60 ms of CPU per 3 s example).

    Raises:
        augment.CodecUnavailable: a codec the chain can draw is missing here.
    """
    h = hashlib.sha1(repr((n, L, ctx, seed, sorted(chain_config().__dict__.items()))).encode())
    for k in sorted(pools.events) + sorted(pools.bgs):
        for c in (pools.events.get(k) or pools.bgs.get(k) or []):
            h.update(f"{k}:{c.corpus}/{c.file}/{len(c.audio)};".encode())
    path = CACHE / f"audioevent-pool-{h.hexdigest()[:10]}.npz"
    if path.exists():
        z = np.load(path)
        log(f"chained pool: {n} examples from {path.name}")
        return z["rows"], z["y"]
    t0 = time.time()
    _STATE.update(pools=pools, L=L, ctx=ctx, seed=seed, chain=A.Chain(chain_config()))
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            out = list(ex.map(_pool_one, range(n), chunksize=32))
    else:
        out = [_pool_one(i) for i in range(n)]
    _STATE.clear()
    rows = np.stack([r for r, _ in out])
    y = np.stack([t for _, t in out])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, rows=rows, y=y)
    log(f"chained pool: {n} examples in {time.time() - t0:.0f}s -> {path.name}")
    return rows, y


class EventSampler:
    """Training batches: ``fast`` share rendered in the feature domain from fresh plans, the
    rest cropped (``ctx + n`` frames) from the chained pool. ``batch()`` -> (features
    (B, 4(ctx+n), 64), targets (B, n, 6))."""

    def __init__(self, pools: Pools, rows: dict[int, np.ndarray], ctx: int, n: int, seed: int,
                 pool: tuple[np.ndarray, np.ndarray] | None = None, p_pool: float = 0.5,
                 p_band: float = 0.25) -> None:
        self.pools, self.rows, self.ctx, self.n = pools, rows, ctx, n
        self.rng = np.random.default_rng(seed)
        self.pool, self.p_pool, self.p_band = pool, p_pool if pool is not None else 0.0, p_band

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.ctx + self.n
        if self.pool is not None and self.rng.random() < self.p_pool:
            prow, py = self.pool
            i = int(self.rng.integers(len(prow)))
            f = int(self.rng.integers(0, py.shape[1] - L + 1))
            return prow[i, 4 * f : 4 * (f + L)].astype(np.float32), py[i, f + self.ctx : f + L].astype(np.float32)
        p = draw_plan(self.rng, self.pools, L, self.ctx, p_band=self.p_band)
        return render_rows(p, self.rows, self.rng), targets(p)[self.ctx :]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        fs, ys = zip(*(self.example() for _ in range(size)))
        return np.stack(fs), np.stack(ys)
