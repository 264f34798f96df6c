"""The augmentation chain every model is trained with, and the label policies that keep it true.

A :class:`Chain` turns one clean training example (float32, 16 kHz mono) into what a real
channel might have made of it, drawing every choice from the ``numpy.random.Generator`` it is
given (same generator state, same output). The steps run in the order sound takes:

=========  ======================================================  ==========  ===================
step       what                                                    default p   default range
=========  ======================================================  ==========  ===================
reverb     simulated room (:mod:`.rooms`), RT60 drawn              0.3         RT60 0.2-1.0 s,
                                                                               0.5-4 m
background one of noise / music / babble (3-7 talkers), mixed      0.5         SNR 0-20 dB
           at an SNR over the clip's active frames; weights
           0.5 / 0.25 / 0.25 among those the policy allows
eq         microphone colouration: random peaking + shelving EQ,   0.3         +-10 dB peaks
           half the time a band limit (:mod:`.filters`)
clipping   overdrive: a fraction of the samples clipped            0.05        0.1-3 % clipped
level      active level set (95th-percentile 64 ms frame level)    0.9         -50 to -5 dBFS
channel    one of: telephone (8 kHz, G.712 band-pass 70 %, then    0.4         Opus 6-12 kbit/s,
           mu-law / A-law / GSM 06.10 / none), Opus, MP3;                      MP3 8-32 kbit/s
           weights 0.5 / 0.25 / 0.25
=========  ======================================================  ==========  ===================

The output is limited to [-1, 1] (what a 16-bit channel does: at active levels near -5 dBFS the
peaks of speech exceed full scale and clip, as in a hot recording), has the input's length and
stays time-aligned with it, so frame truth computed on the clean input still applies (reverb
smears speech into the pauses after it: trainers may extend their hangover where
``reverb`` ran).

**Labels stay true.** Channel steps (reverb, eq, clipping, level, channel) change how a sound
was recorded, never what it is: a child through a phone is still a child. Background steps add
a sound, and whether that keeps the label depends on the task: music under speech is still
speech for the speech/music/other model, but music under an ``other`` clip is no longer just
``other``; babble under a noise clip makes it speech for the Vad. Each :class:`Policy` says, per
*content* of the clip (``speech``, ``music``, ``other``), which backgrounds may be added, and the
chain adds only those (:data:`POLICIES`, :func:`policy_for`). The ops a call applied come back
with the audio, each with what it added, so a trainer can label the pauses of a speech clip
with the background's class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import codecs, filters, levels, rooms

CONTENTS = ("speech", "music", "other")
#: background op -> the content it adds to a clip
ADDS = {"noise": "other", "music": "music", "babble": "speech"}
CHANNEL_OPS = ("reverb", "eq", "clipping", "level", "channel")
#: corpus labels of the noise corpus that are not used as noise: they contain voices
NOT_NOISE = frozenset({"children_playing"})


@dataclass(frozen=True)
class Policy:
    """Which backgrounds keep a task's labels true.

    Attributes:
        name: the task.
        additions: content of the clip -> background ops that may be mixed under it.
        min_snr_db: a floor on the SNR of a background op (e.g. babble for voice models, so
            the clip's own talker stays the dominant voice).
    """

    name: str
    additions: Mapping[str, frozenset[str]]
    min_snr_db: Mapping[str, float] = field(default_factory=dict)

    def allows(self, op: str, content: str) -> bool:
        """Whether ``op`` keeps the label of a clip of ``content``; channel ops always do.

        Raises:
            ValueError: unknown ``op`` or ``content``.
        """
        if content not in CONTENTS:
            raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
        if op in CHANNEL_OPS:
            return True
        if op not in ADDS:
            raise ValueError(f"unknown op {op!r}")
        return op in self.additions.get(content, frozenset())


_ALL = frozenset(ADDS)
#: speech / music / other: speech under anything is speech; music under noise is music; nothing
#: but noise goes under ``other`` (music would make it music, babble speech)
SMO = Policy("smo", {"speech": _ALL, "music": frozenset({"noise", "music"}), "other": frozenset({"noise"})})
#: speech present or not (the Vad, a speech detector): no babble under non-speech
VAD = Policy("vad", {"speech": _ALL, "music": frozenset({"noise", "music"}), "other": frozenset({"noise", "music"})})
#: voice models (gender, arousal, emotions): as the Vad, and babble at least 5 dB under the talker
VOICE = Policy("voice", VAD.additions, {"babble": 5.0})
POLICIES = {"smo": SMO, "vad": VAD, "voice": VOICE}
_MODEL_POLICY = {"speech": SMO, "speech_rt": SMO, "vad": VAD, "gender": VOICE, "arousal": VOICE, "emotions": VOICE}


def policy_for(model: str) -> Policy:
    """The policy of a bundled model (``speech``, ``speech_rt``, ``vad``, ``gender``,
    ``arousal``, ``emotions``) or of a task name in :data:`POLICIES`.

    Raises:
        KeyError: unknown model or task.
    """
    if model in _MODEL_POLICY:
        return _MODEL_POLICY[model]
    return POLICIES[model]


@dataclass(frozen=True)
class ChainConfig:
    """Probabilities and ranges of the chain (defaults: the table in the module docstring)."""

    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.2, 1.0)
    distance: tuple[float, float] = (0.5, 4.0)
    room_model: str = "ism"  # "ism" (pyroomacoustics + diffuse tail) or "diffuse" (tail only)
    p_background: float = 0.5
    background_weights: Mapping[str, float] = field(
        default_factory=lambda: {"noise": 0.5, "music": 0.25, "babble": 0.25})
    snr_db: tuple[float, float] = (0.0, 20.0)
    babble_talkers: tuple[int, int] = (3, 7)
    p_eq: float = 0.3
    p_clipping: float = 0.05
    clip_fraction: tuple[float, float] = (0.001, 0.03)
    p_level: float = 0.9
    level_dbfs: tuple[float, float] = (-50.0, -5.0)
    p_channel: float = 0.4
    channel_weights: Mapping[str, float] = field(
        default_factory=lambda: {"telephone": 0.5, "opus": 0.25, "mp3": 0.25})
    telephone_codecs: Sequence[str | None] = ("mulaw", "alaw", "gsm", None)
    p_telephone_band: float = 0.7
    opus_kbps: tuple[float, float] = (6.0, 12.0)
    mp3_kbps: Sequence[int] = (8, 16, 24, 32)

    def codecs_needed(self) -> set[str]:
        """The codecs this configuration can draw (names of :data:`codecs.CODECS`)."""
        need: set[str] = set()
        if self.p_channel > 0:
            w = self.channel_weights
            if w.get("telephone", 0) > 0:
                need |= {c for c in self.telephone_codecs if c is not None}
            need |= {k for k in ("opus", "mp3") if w.get(k, 0) > 0}
        return need


@dataclass
class Backgrounds:
    """Audio to mix in: ``noise`` and ``music`` clips, and ``voices`` as (speaker, audio) for
    babble; float32 or int16 (read as int16 / 32768, so the corpora are not copied). Build it
    from the *training* split only (:meth:`from_clips`)."""

    noise: list[np.ndarray] = field(default_factory=list)
    music: list[np.ndarray] = field(default_factory=list)
    voices: list[tuple[str, np.ndarray]] = field(default_factory=list)

    @classmethod
    def from_clips(cls, clips: Sequence[Any], split: str = "train") -> Backgrounds:
        """Backgrounds from ``training.data.Clip`` objects of ``split``: ``other`` clips as noise
        (except :data:`NOT_NOISE` labels), ``music`` clips as music, speech clips with a known
        speaker (``corpus:speaker``) as babble voices."""
        out = cls()
        for c in clips:
            if c.split != split:
                continue
            if c.cls == "other" and c.label not in NOT_NOISE:
                out.noise.append(c.audio)
            elif c.cls == "music":
                out.music.append(c.audio)
            elif c.cls == "speech" and c.speaker:
                out.voices.append((f"{c.corpus}:{c.speaker}", c.audio))
        return out


class Augmented(NamedTuple):
    """A chain's output: the audio and the ops applied, in order (``{"op": name, ...params}``;
    a background op also has ``"adds"``: the content it added)."""

    audio: np.ndarray
    ops: list[dict[str, Any]]


class Chain:
    """The augmentation chain: ``chain(x, rng, content, speaker)`` -> :class:`Augmented`.

    Args:
        config: probabilities and ranges (default :class:`ChainConfig`).
        backgrounds: what to mix in (an empty one: no background op runs).
        policy: the task's :class:`Policy` (default: speech/music/other).

    Raises:
        codecs.CodecUnavailable: a codec the configuration can draw is missing here.
        ValueError: unknown ``room_model``.
    """

    def __init__(self, config: ChainConfig | None = None, backgrounds: Backgrounds | None = None,
                 policy: Policy = SMO) -> None:
        self.config = config or ChainConfig()
        self.backgrounds = backgrounds or Backgrounds()
        self.policy = policy
        if self.config.room_model not in ("ism", "diffuse"):
            raise ValueError(f"room_model must be 'ism' or 'diffuse', got {self.config.room_model!r}")
        missing = {c: codecs.codec_available(c) for c in sorted(self.config.codecs_needed())}
        missing = {c: why for c, why in missing.items() if why is not None}
        if missing:
            raise codecs.CodecUnavailable("; ".join(f"{c}: {why}" for c, why in missing.items()))

    def __call__(self, x: np.ndarray, rng: np.random.Generator, content: str = "speech",
                 speaker: str | None = None) -> Augmented:
        """Augment ``x`` (float32 16 kHz mono) of ``content`` (speech / music / other), spoken by
        ``speaker`` (kept out of its own babble). Blocks for a few ms to ~0.1 s (Opus).

        Raises:
            ValueError: unknown ``content``.
        """
        if content not in CONTENTS:
            raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
        cfg, ops = self.config, []
        y = np.asarray(x, np.float32).copy()
        if rng.random() < cfg.p_reverb:
            room = rooms.draw_room(rng, cfg.rt60, cfg.distance)
            rir = rooms.ism_rir(room, rng) if cfg.room_model == "ism" else rooms.diffuse_rir(room, rng)
            y = rooms.reverb(y, rir)
            ops.append({"op": "reverb", "rt60": room.rt60, "distance": room.distance})
        if rng.random() < cfg.p_background:
            y = self._background(y, rng, content, speaker, ops)
        if rng.random() < cfg.p_eq:
            bands, lo, hi = filters.draw_eq(rng)
            y = filters.colour(y, bands, lo, hi)
            ops.append({"op": "eq", "bands": len(bands), "lo": lo, "hi": hi})
        if rng.random() < cfg.p_clipping:
            frac = float(rng.uniform(*cfg.clip_fraction))
            ceiling = levels.ceiling_for_fraction(y, frac)
            y = levels.clip(y, ceiling) / np.float32(ceiling)
            ops.append({"op": "clipping", "fraction": frac})
        if rng.random() < cfg.p_level:
            db = float(rng.uniform(*cfg.level_dbfs))
            y = levels.set_level(y, db)
            ops.append({"op": "level", "dbfs": db})
        y = np.clip(y, -1.0, 1.0)
        if rng.random() < cfg.p_channel:
            y = self._channel(y, rng, ops)
        y = np.nan_to_num(np.clip(y, -1.0, 1.0), nan=0.0).astype(np.float32)
        return Augmented(y, ops)

    # -- steps ----------------------------------------------------------------------------

    def _voices(self, speaker: str | None) -> list[tuple[str, np.ndarray]]:
        return [(s, a) for s, a in self.backgrounds.voices if s != speaker]

    def _background(self, y: np.ndarray, rng: np.random.Generator, content: str, speaker: str | None,
                    ops: list[dict[str, Any]]) -> np.ndarray:
        cfg, bg = self.config, self.backgrounds
        pools = {"noise": bg.noise, "music": bg.music}
        lo_talkers = cfg.babble_talkers[0]
        choices = []
        for op, w in cfg.background_weights.items():
            if w <= 0 or not self.policy.allows(op, content):
                continue
            if op == "babble":
                if len({s for s, _ in self._voices(speaker)}) < lo_talkers:
                    continue
            elif not pools[op]:
                continue
            choices.append((op, w))
        if not choices or not len(y):
            return y
        p = np.array([w for _, w in choices], np.float64)
        op = choices[int(rng.choice(len(choices), p=p / p.sum()))][0]
        if op == "babble":
            voices = self._voices(speaker)
            speakers = sorted({s for s, _ in voices})
            k = int(rng.integers(lo_talkers, min(cfg.babble_talkers[1], len(speakers)) + 1))
            picked = [speakers[i] for i in rng.choice(len(speakers), k, replace=False)]
            by_speaker = {s: [a for t, a in voices if t == s] for s in picked}
            audios = [by_speaker[s][int(rng.integers(len(by_speaker[s])))] for s in picked]
            noise = levels.babble(audios, len(y), [int(rng.integers(max(len(a), 1))) for a in audios])
            detail: dict[str, Any] = {"talkers": k}
        else:
            pool = pools[op]
            src = pool[int(rng.integers(len(pool)))]
            noise = levels.fit_length(src, len(y), int(rng.integers(max(len(src), 1))))
            detail = {}
        lo = max(cfg.snr_db[0], self.policy.min_snr_db.get(op, -np.inf))
        snr = float(rng.uniform(lo, max(lo, cfg.snr_db[1])))
        ops.append({"op": op, "adds": ADDS[op], "snr_db": snr, **detail})
        return levels.mix_at_snr(y, noise, snr, levels.active_mask(y))

    def _channel(self, y: np.ndarray, rng: np.random.Generator, ops: list[dict[str, Any]]) -> np.ndarray:
        cfg = self.config
        names = [k for k, w in cfg.channel_weights.items() if w > 0]
        if not names:
            return y
        p = np.array([cfg.channel_weights[k] for k in names], np.float64)
        kind = names[int(rng.choice(len(names), p=p / p.sum()))]
        if kind == "telephone":
            codec = cfg.telephone_codecs[int(rng.integers(len(cfg.telephone_codecs)))]
            band = bool(rng.random() < cfg.p_telephone_band)
            ops.append({"op": "channel", "kind": kind, "codec": codec, "band": band})
            return codecs.telephone(y, codec, band)
        if kind == "opus":
            kbps = float(rng.uniform(*cfg.opus_kbps))
            ops.append({"op": "channel", "kind": kind, "kbps": kbps})
            return codecs.opus(y, kbps)
        if kind == "mp3":
            kbps = int(cfg.mp3_kbps[int(rng.integers(len(cfg.mp3_kbps)))])
            ops.append({"op": "channel", "kind": kind, "kbps": kbps})
            return codecs.mp3(y, kbps)
        raise ValueError(f"unknown channel kind {kind!r}")
