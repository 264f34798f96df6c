"""Augmentation for real-world audio: one chain for every model we train.

* :mod:`.levels`  -- active level, gain, mixing at an SNR, babble, clipping
* :mod:`.codecs`  -- telephone band (8 kHz, G.712 band-pass), G.711 mu/A-law, GSM 06.10, Opus, MP3
  (in process, through the libsndfile bundled with soundfile)
* :mod:`.filters` -- microphone colouration: random EQ and band limits
* :mod:`.rooms`   -- room impulse responses (image sources + diffuse tail) and reverberation
* :mod:`.chain`   -- :class:`Chain`: the random per-example chain, its :class:`ChainConfig`
  (documented defaults) and the label :class:`Policy` of each task

Every op is a pure function on float32 16 kHz mono arrays; the chain draws their parameters from a
seeded ``numpy.random.Generator``. ``channel`` is the older effect set the shipped models were
trained with (:mod:`._legacy`), kept so their recipes reproduce.

    from training.augment import Backgrounds, Chain, policy_for
    chain = Chain(backgrounds=Backgrounds.from_clips(train_clips), policy=policy_for("gender"))
    y, ops = chain(x, np.random.default_rng(seed), content="speech", speaker="librispeech:1089")
"""

import soxr as soxr  # the trainers call ``augment.soxr.resample``

from ._legacy import channel as channel
from .chain import ADDS as ADDS
from .chain import POLICIES as POLICIES
from .chain import Augmented as Augmented
from .chain import Backgrounds as Backgrounds
from .chain import Chain as Chain
from .chain import ChainConfig as ChainConfig
from .chain import Policy as Policy
from .chain import policy_for as policy_for
from .codecs import CodecUnavailable as CodecUnavailable
from .codecs import codec_available as codec_available
from .codecs import mp3 as mp3
from .codecs import opus as opus
from .codecs import telephone as telephone
from .filters import bandpass as bandpass
from .filters import eq as eq
from .levels import SR as SR
from .levels import babble as babble
from .levels import clip as clip
from .levels import db_power as db_power
from .levels import gain as gain
from .levels import level_dbfs as level_dbfs
from .levels import mix_at_snr as mix_at_snr
from .levels import set_level as set_level
from .rooms import reverb as reverb

__all__ = [
    "ADDS", "POLICIES", "SR", "Augmented", "Backgrounds", "Chain", "ChainConfig", "CodecUnavailable", "Policy",
    "babble", "bandpass", "channel", "clip", "codec_available", "db_power", "eq", "gain", "level_dbfs",
    "mix_at_snr", "mp3", "opus", "policy_for", "reverb", "set_level", "soxr", "telephone",
]
