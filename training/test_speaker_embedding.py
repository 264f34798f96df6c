"""Contract tests of the SpeakerMap embedding: ``python -m pytest training/test_speaker_embedding.py``.

The exported graph (skipped when ``deeptone_async/models/speaker_map/model.onnx`` is missing):
one input ``features`` (batch, 4 * (context_frames + n), 64), one output (batch, n, dim) of unit
vectors; a stream run in blocks with the context carried gives what the whole file gives; at most
5 MB; ``embedding.json`` agrees with the graph. The network code (needs torch): causal and valid,
so a frame's embedding does not change with audio after it, and the crop sampler's targets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deeptone_async.features import N_MELS, SILENCE_FLOOR, SUBFRAMES

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")
ort = pytest.importorskip("onnxruntime")

from .speaker_embedding import FOLDER  # noqa: E402

ONNX = FOLDER / "model.onnx"
needs_model = pytest.mark.skipif(not ONNX.exists(), reason="no exported speaker_map model")


def _meta() -> dict:
    return json.loads((FOLDER / "embedding.json").read_text())


def _session():
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(str(ONNX), o, providers=["CPUExecutionProvider"])


def _feats(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    return (rng.standard_normal((batch, SUBFRAMES * frames, N_MELS)) * 3 - 8).astype(np.float32)


@needs_model
def test_shape_unit_norm_and_metadata() -> None:
    meta, s = _meta(), _session()
    ctx, dim = meta["context_frames"], meta["dim"]
    assert meta["receptive_field_ms"] == 64 * (ctx + 1)
    assert 0 < dim <= 256 and isinstance(meta["version"], int)
    assert [i.name for i in s.get_inputs()] == ["features"] and len(s.get_outputs()) == 1
    rng = np.random.default_rng(0)
    for b, n in ((1, 1), (3, 37)):
        out = s.run(None, {"features": _feats(rng, b, ctx + n)})[0]
        assert out.shape == (b, n, dim) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-4)
    assert -1.0 < meta["threshold_utterance_eer"] < 1.0


def _stream(s, feats: np.ndarray, ctx: int, pieces: list[int]) -> np.ndarray:
    """``feats`` (4T, 64) run in pieces of the given frame counts with ``ctx`` frames carried
    (the silence floor before the start), as the engine's LogMelRunner does."""
    hist = np.full((SUBFRAMES * ctx, N_MELS), SILENCE_FLOOR, np.float32)
    outs, pos = [], 0
    for n in pieces:
        chunk = feats[SUBFRAMES * pos : SUBFRAMES * (pos + n)]
        if not len(chunk):
            break
        inp = np.concatenate([hist, chunk])
        outs.append(s.run(None, {"features": inp[None]})[0][0])
        hist, pos = inp[len(inp) - SUBFRAMES * ctx :], pos + n
    return np.concatenate(outs)


@needs_model
def test_stream_in_blocks_equals_whole() -> None:
    s, ctx = _session(), _meta()["context_frames"]
    rng = np.random.default_rng(2)
    feats = _feats(rng, 1, 200)[0]
    whole = _stream(s, feats, ctx, [200])
    assert whole.shape[0] == 200
    for pieces in (list(rng.integers(1, 40, size=200)), [1] * 200):
        np.testing.assert_allclose(_stream(s, feats, ctx, pieces), whole, atol=1e-5)


@needs_model
def test_size() -> None:
    assert ONNX.stat().st_size <= 5 * 1024 * 1024


@needs_model
def test_two_voices_are_told_apart() -> None:
    """Two synthetic 'voices' (harmonic tones with different pitch and formant-like spectra) give
    embeddings closer within a voice than across: a model that ignores its input fails."""
    from deeptone_async.features import logmel

    s, ctx = _session(), _meta()["context_frames"]
    rng = np.random.default_rng(1)
    t = np.arange(1024 * 47) / 16000  # 3 s of whole frames

    def voice(f0: float, tilt: float) -> np.ndarray:
        vib = 1 + 0.03 * np.sin(2 * np.pi * 5 * t + rng.uniform(0, 6))
        phase = 2 * np.pi * f0 * np.cumsum(vib) / 16000
        x = sum(np.sin(k * phase) / k**tilt for k in range(1, 30) if k * f0 < 7500)
        return (0.1 * x / np.abs(x).max() + 0.003 * rng.standard_normal(len(t))).astype(np.float32)

    def emb(x: np.ndarray) -> np.ndarray:
        rows = np.concatenate([np.full((SUBFRAMES * ctx, N_MELS), SILENCE_FLOOR, np.float32), logmel(x)])
        e = s.run(None, {"features": rows[None, : len(rows) // SUBFRAMES * SUBFRAMES]})[0][0][ctx:]
        m = e.mean(0)
        return m / np.linalg.norm(m)

    a1, a2, b1 = emb(voice(110, 0.8)), emb(voice(112, 0.8)), emb(voice(240, 2.0))
    assert a1 @ a2 > a1 @ b1


def test_network_is_causal_and_valid() -> None:
    import torch

    from .speaker_embedding import SpeakerNet

    torch.manual_seed(0)
    net = SpeakerNet(5, channels=16, dim=8).eval()
    x = torch.randn(1, SUBFRAMES * (net.context_frames + 10), N_MELS) * 3 - 8
    with torch.no_grad():
        a = net(x)
        y = x.clone()
        y[:, -SUBFRAMES:] += 5.0  # change only the last frame
        b = net(y)
    assert a.shape == (1, 10, 8)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_eer_of_known_scores() -> None:
    from .evaluate_speaker import eer

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    target = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    e, thr = eer(scores, target)
    assert e == pytest.approx(0.25) and 0.5 <= thr <= 0.6
    assert eer(scores, np.array([1, 1, 1, 1, 0, 0, 0, 0], bool))[0] == 0.0
