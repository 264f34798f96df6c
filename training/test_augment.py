"""The augmentation chain: ``python -m pytest training/test_augment.py``.

Each op keeps length, dtype and finite values; the telephone band really ends at 4 kHz; codecs
change the signal but keep it correlated; SNRs, levels and room decay land where asked; a seed
fixes every draw; the label policies hold. Fixtures are synthetic speech made in code. Tests
that need a codec this machine's libsndfile lacks, or pyroomacoustics, skip and say why.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.signal import welch

from training import augment as A
from training.augment import codecs, filters, levels, rooms
from training.augment.chain import SMO, VAD, VOICE, Backgrounds, Chain, ChainConfig
from training.data import Clip

SR = 16_000


def speechlike(seconds: float = 2.0, seed: int = 0, f0: float = 120.0) -> np.ndarray:
    """Voiced syllables (a gliding pulse train through two formant resonators, 4 Hz syllable
    envelope), fricative bursts with energy up to 8 kHz, and pauses; about -20 dBFS."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    phase = np.cumsum(f0 * (1 + 0.2 * np.sin(2 * np.pi * 1.5 * t)) / SR)
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    y = pulses
    for fc, bw in ((700, 130), (1200, 150)):
        r = np.exp(-np.pi * bw / SR)
        y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], y)
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    env[int(0.75 * n) :] = 0  # a pause at the end
    fric = rng.standard_normal(n) * (np.sin(2 * np.pi * 4 * t + 2.5) > 0.9)
    fric = np.diff(fric, prepend=0)  # tilt towards high frequencies
    x = y / (np.abs(y).max() + 1e-9) * env + 0.15 * fric * (t < 0.75 * seconds)
    return levels.set_level(x.astype(np.float32), -20.0)


def need(codec: str) -> None:
    why = codecs.codec_available(codec)
    if why is not None:
        pytest.skip(f"codec {codec} unavailable: {why}")


def need_pra() -> None:
    pytest.importorskip("pyroomacoustics", reason="room simulation needs pyroomacoustics (the train extra)")


def fake_clip(cls: str, split: str, speaker: str = "", label: str | None = None, seed: int = 0) -> Clip:
    x = speechlike(1.5, seed) if cls == "speech" else np.random.default_rng(seed).standard_normal(24000) * 0.05
    return Clip(corpus="fake", file=f"{seed}.wav", label=label or cls, cls=cls, gender="", language="",
                speaker=speaker, split=split, license="", audio=(np.clip(x, -1, 1) * 32767).astype(np.int16))


def backgrounds() -> Backgrounds:
    clips = [fake_clip("speech", "train", f"s{i}", seed=i) for i in range(8)]
    clips += [fake_clip("other", "train", seed=20), fake_clip("music", "train", seed=21)]
    return Backgrounds.from_clips(clips)


def full_config(**kw: object) -> ChainConfig:
    """Every step on, with the codecs this machine has (and the simple room model without
    pyroomacoustics)."""
    try:
        import pyroomacoustics  # noqa: F401

        room = "ism"
    except ImportError:
        room = "diffuse"
    tel = tuple(c for c in ("mulaw", "alaw", "gsm") if codecs.codec_available(c) is None) + (None,)
    weights = {"telephone": 1.0} | {k: 1.0 for k in ("opus", "mp3") if codecs.codec_available(k) is None}
    base = dict(p_reverb=1.0, p_background=1.0, p_eq=1.0, p_clipping=1.0, p_level=1.0, p_channel=1.0,
                room_model=room, telephone_codecs=tel, channel_weights=weights)
    return ChainConfig(**(base | kw))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- every op

X = speechlike()
BG = np.random.default_rng(5).standard_normal(len(X)).astype(np.float32) * 0.1


def _ops() -> list[tuple[str, Callable[[np.ndarray], np.ndarray], str | None]]:
    rir = rooms.diffuse_rir(rooms.Room((6, 5, 3), 0.6, (2, 2, 1.5), (4, 3, 1.2)), np.random.default_rng(0))
    bands, lo, hi = filters.draw_eq(np.random.default_rng(1))
    return [
        ("set_level", lambda x: levels.set_level(x, -35), None),
        ("clip", lambda x: levels.clip(x, 0.05), None),
        ("mix_at_snr", lambda x: levels.mix_at_snr(x, levels.fit_length(BG, len(x)), 5.0, levels.active_mask(x)), None),
        ("babble", lambda x: levels.mix_at_snr(x, levels.babble([speechlike(1, 3), speechlike(3, 4)], len(x)), 5), None),
        ("eq", lambda x: filters.colour(x, bands, lo, hi), None),
        ("bandpass", lambda x: filters.bandpass(x, 300, 3400), None),
        ("reverb_diffuse", lambda x: rooms.reverb(x, rir), None),
        ("narrowband", lambda x: codecs.telephone(x, None, band=False), None),
        ("telephone_mulaw", lambda x: codecs.telephone(x, "mulaw"), "mulaw"),
        ("telephone_alaw", lambda x: codecs.telephone(x, "alaw"), "alaw"),
        ("telephone_gsm", lambda x: codecs.telephone(x, "gsm"), "gsm"),
        ("opus_6k", lambda x: codecs.opus(x, 6.0), "opus"),
        ("mp3_8k", lambda x: codecs.mp3(x, 8), "mp3"),
    ]


@pytest.mark.parametrize("name,op,codec", _ops(), ids=[o[0] for o in _ops()])
def test_op_keeps_length_dtype_finite(name: str, op: Callable[[np.ndarray], np.ndarray], codec: str | None) -> None:
    if codec:
        need(codec)
    for x in (X, X[:1000], np.zeros(3000, np.float32)):
        y = op(x)
        assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all(), name


def test_reverb_ism_keeps_length_dtype_finite() -> None:
    need_pra()
    rng = np.random.default_rng(0)
    y = rooms.reverb(X, rooms.ism_rir(rooms.draw_room(rng), rng))
    assert y.dtype == np.float32 and y.shape == X.shape and np.isfinite(y).all()


def test_chain_keeps_length_dtype_finite_and_range() -> None:
    chain = Chain(full_config(), backgrounds(), SMO)
    for seed in range(4):
        y, ops = chain(X, np.random.default_rng(seed), "speech", "fake:s0")
        assert y.dtype == np.float32 and y.shape == X.shape and np.isfinite(y).all()
        assert np.abs(y).max() <= 1.0
        assert [o["op"] for o in ops][0] == "reverb" and ops[-1]["op"] == "channel"


# ---------------------------------------------------------------------------------------- telephone, codecs


def _power_above(x: np.ndarray, hz: float) -> float:
    f, p = welch(x.astype(np.float64), SR, nperseg=1024)
    return float(p[f > hz].sum())


@pytest.mark.parametrize("codec", ["mulaw", "alaw", "gsm", None])
def test_telephone_removes_energy_above_4k(codec: str | None) -> None:
    if codec:
        need(codec)
    y = codecs.telephone(X, codec)
    before, after = _power_above(X, 4100), _power_above(y, 4100)
    assert before > 1e-3 * _power_above(X, 0)  # the fixture has high-frequency energy to lose
    assert after < 1e-4 * before
    assert _power_above(y, 0) > 0.1 * _power_above(X, 0)  # the band itself survives
    y8 = codecs.telephone(X, codec, out_sr=8000)
    assert len(y8) == len(X) // 2 and y8.dtype == np.float32


@pytest.mark.parametrize("name,op,codec,min_corr", [
    ("mulaw", lambda x: codecs.g711(x, "mulaw"), "mulaw", 0.99),
    ("alaw", lambda x: codecs.g711(x, "alaw"), "alaw", 0.99),
    ("gsm", codecs.gsm, "gsm", 0.8),
    ("opus_12k", lambda x: codecs.opus(x, 12.0, 8000), "opus", 0.8),
], ids=["mulaw", "alaw", "gsm", "opus_12k"])
def test_narrowband_codecs_change_signal_keep_correlation(name: str, op: Callable[[np.ndarray], np.ndarray],
                                                          codec: str, min_corr: float) -> None:
    need(codec)
    x8 = codecs.resample(X, SR, 8000)
    y = op(x8)
    assert len(y) == len(x8)
    assert np.abs(y - x8).max() > 1e-3, f"{name} left the signal unchanged"
    assert np.corrcoef(x8, y)[0, 1] > min_corr


@pytest.mark.parametrize("kbps", [8, 16, 24, 32])
def test_mp3_bitrate_changes_signal_keeps_correlation(kbps: int) -> None:
    need("mp3")
    y = codecs.mp3(X, kbps)
    assert np.abs(y - X).max() > 1e-3
    lp = filters.bandpass(X, None, 3000)  # low bitrates keep the low band only
    assert np.corrcoef(lp, filters.bandpass(y, None, 3000))[0, 1] > 0.8
    size = len(codecs._encode(X, SR, "MP3", "MPEG_LAYER_III", compression_level=codecs.MP3_LEVELS[kbps],
                              bitrate_mode="CONSTANT"))
    assert abs(size * 8 / (len(X) / SR) / 1000 - kbps) < 0.25 * kbps + 1


@pytest.mark.parametrize("kbps", [6.0, 12.0])
def test_opus_bitrate_changes_signal_keeps_correlation(kbps: float) -> None:
    need("opus")
    y = codecs.opus(X, kbps)
    assert np.abs(y - X).max() > 1e-3
    assert np.corrcoef(X, y)[0, 1] > 0.7
    size = len(codecs._encode(X, SR, "OGG", "OPUS", compression_level=1 - (kbps - 6) / 250))
    assert size * 8 / (len(X) / SR) / 1000 < kbps + 4  # Ogg framing adds ~1 kbit/s on 2 s


def test_missing_codec_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codecs, "codec_available", lambda name: "not built in" if name == "opus" else None)
    with pytest.raises(codecs.CodecUnavailable, match="not built in"):
        codecs.opus(X, 8.0)
    with pytest.raises(codecs.CodecUnavailable, match="opus: not built in"):
        Chain(ChainConfig(channel_weights={"opus": 1.0}))
    Chain(ChainConfig(channel_weights={"telephone": 1.0}))  # a chain that never draws it is fine


# ---------------------------------------------------------------------------------------- SNR, level, reverb


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_mix_at_snr_hits_the_snr(snr: float) -> None:
    mask = levels.active_mask(X)
    y = levels.mix_at_snr(X, BG[:1000].repeat(len(X) // 1000 + 1)[: len(X)], snr, mask)
    got = levels.db_power(X[mask]) - levels.db_power(y - X)
    assert abs(got - snr) < 0.5


def test_chain_background_hits_the_reported_snr() -> None:
    cfg = ChainConfig(p_reverb=0, p_background=1, p_eq=0, p_clipping=0, p_level=0, p_channel=0)
    chain = Chain(cfg, backgrounds(), SMO)
    seen = set()
    for seed in range(12):
        y, ops = chain(X, np.random.default_rng(seed), "speech", "fake:s1")
        (op,) = ops
        seen.add(op["op"])
        got = levels.db_power(X[levels.active_mask(X)]) - levels.db_power(y - X)
        assert abs(got - op["snr_db"]) < 0.5 and 0 <= op["snr_db"] <= 20
    assert seen == {"noise", "music", "babble"}


@pytest.mark.parametrize("db", [-50.0, -27.5, -5.0])
def test_level_lands_on_the_requested_dbfs(db: float) -> None:
    assert abs(levels.level_dbfs(levels.set_level(X, db)) - db) < 0.1
    cfg = ChainConfig(p_reverb=0, p_background=0, p_eq=0, p_clipping=0, p_level=1, p_channel=0, level_dbfs=(db, db))
    y, _ = Chain(cfg)(X, np.random.default_rng(0))
    if db <= -20:
        assert abs(levels.level_dbfs(y) - db) < 0.1
    else:  # the peaks of a hot recording clip at full scale, taking some of its level
        assert db - 3 < levels.level_dbfs(y) <= db + 0.1


def test_chain_levels_stay_in_range() -> None:
    cfg = ChainConfig(p_reverb=0, p_background=0, p_eq=0, p_clipping=0, p_level=1, p_channel=0)
    for seed in range(10):
        y, ops = Chain(cfg)(X, np.random.default_rng(seed))
        assert -50 <= ops[0]["dbfs"] <= -5
        assert -50.1 <= levels.level_dbfs(y) <= -4.9


def test_clipping_clips_the_requested_fraction() -> None:
    c = levels.ceiling_for_fraction(X, 0.02)
    assert abs(np.mean(np.abs(X) >= c) - 0.02) < 0.005
    assert np.abs(levels.clip(X, c)).max() <= c


def _tail_db(y: np.ndarray, end: int) -> float:
    """Energy from 50 to 300 ms after ``end`` relative to the 100 ms before it, in dB."""
    return levels.db_power(y[end + 800 : end + 4800]) - levels.db_power(y[end - 1600 : end])


@pytest.mark.parametrize("model", ["diffuse", "ism"])
def test_reverb_lengthens_decay(model: str) -> None:
    if model == "ism":
        need_pra()
    t = np.arange(SR) / SR
    burst = (np.sin(2 * np.pi * 440 * t) * (t < 0.4) * 0.3).astype(np.float32)
    rng = np.random.default_rng(3)
    room = rooms.Room((7.0, 5.0, 3.0), 0.7, (2.0, 2.0, 1.5), (4.5, 3.0, 1.2))
    rir = rooms.ism_rir(room, rng) if model == "ism" else rooms.diffuse_rir(room, rng)
    assert abs(rooms.rt60_of(rir) - 0.7) < 0.15
    wet = rooms.reverb(burst, rir)
    end = int(0.4 * SR)
    assert _tail_db(burst, end) < -100
    assert _tail_db(wet, end) > -30
    short = rooms.reverb(burst, rooms.diffuse_rir(rooms.Room((7.0, 5.0, 3.0), 0.25, room.source, room.mic), rng))
    assert _tail_db(wet, end) > _tail_db(short, end) + 5  # a longer RT60 decays more slowly


def test_draw_room_respects_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        r = rooms.draw_room(rng, (0.3, 0.8), (1.0, 3.0))
        assert 0.3 <= r.rt60 <= 0.8 and 1.0 <= r.distance <= 3.0 and 0 < r.absorption() < 1


# ---------------------------------------------------------------------------------------- seeds, policies


def test_same_seed_same_output() -> None:
    chain = Chain(full_config(), backgrounds(), VOICE)
    a = chain(X, np.random.default_rng(7), "speech", "fake:s2")
    b = chain(X, np.random.default_rng(7), "speech", "fake:s2")
    c = chain(X, np.random.default_rng(8), "speech", "fake:s2")
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.ops == b.ops
    assert not np.array_equal(a.audio, c.audio)


def test_policies_say_which_backgrounds_keep_labels() -> None:
    assert SMO.allows("music", "speech") and SMO.allows("babble", "speech")
    assert not SMO.allows("music", "other") and not SMO.allows("babble", "other")
    assert SMO.allows("noise", "music") and not SMO.allows("babble", "music")
    assert VAD.allows("music", "other") and not VAD.allows("babble", "other")
    assert all(p.allows(op, c) for p in (SMO, VAD, VOICE) for op in ("reverb", "channel", "level")
               for c in ("speech", "music", "other"))
    assert A.policy_for("speech_rt") is SMO and A.policy_for("gender") is VOICE
    with pytest.raises(ValueError):
        SMO.allows("music", "cat")


@pytest.mark.parametrize("policy,content,allowed", [
    (SMO, "other", {"noise"}), (SMO, "music", {"noise", "music"}), (VAD, "other", {"noise", "music"}),
    (SMO, "speech", {"noise", "music", "babble"}),
])
def test_chain_adds_only_what_the_policy_allows(policy: A.Policy, content: str, allowed: set[str]) -> None:
    cfg = ChainConfig(p_reverb=0, p_background=1, p_eq=0, p_clipping=0, p_level=0, p_channel=0)
    chain = Chain(cfg, backgrounds(), policy)
    seen = {chain(X, np.random.default_rng(s), content, "fake:s0").ops[0]["op"] for s in range(30)}
    assert seen == allowed


def test_babble_for_voice_models_stays_under_the_talker_and_excludes_them() -> None:
    cfg = ChainConfig(p_reverb=0, p_background=1, p_eq=0, p_clipping=0, p_level=0, p_channel=0,
                      background_weights={"babble": 1.0})
    bgs = backgrounds()
    chain = Chain(cfg, bgs, VOICE)
    for s in range(10):
        (op,) = chain(X, np.random.default_rng(s), "speech", "fake:s0").ops
        assert op["op"] == "babble" and op["snr_db"] >= 5 and 3 <= op["talkers"] <= 7
    assert "fake:s0" not in {sp for sp, _ in chain._voices("fake:s0")}


def test_backgrounds_come_from_the_training_split() -> None:
    clips = [fake_clip("speech", "train", "a"), fake_clip("speech", "val", "b", seed=1),
             fake_clip("other", "val", seed=2), fake_clip("other", "train", seed=3),
             fake_clip("other", "train", label="children_playing", seed=4), fake_clip("music", "train", seed=5)]
    bg = Backgrounds.from_clips(clips)
    assert [s for s, _ in bg.voices] == ["fake:a"] and len(bg.noise) == 1 and len(bg.music) == 1
