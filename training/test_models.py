"""Contract tests for the bundled logmel models: ``python -m pytest training/test_models.py``.

For every model folder that has been exported: the spec loads through the engine's
``ModelSpec``, the ONNX is <= 5 MB with the right input/output names and shapes, a long
sequence equals the same sequence run in random pieces with the context carried. Speed is
measured by benchmarks (``benchmarks/bench_engine.py rtf``), not here. Skipped without torch
(the training extra).
"""

from __future__ import annotations

import numpy as np
import pytest

from deeptone_async.spec import ModelSpec

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")

from .evaluate import MODELS_DIR  # noqa: E402
from .export import check_streaming, session  # noqa: E402

FOLDERS = [p for p in ("speech", "speech_rt", "gender") if (MODELS_DIR / p / "model.onnx").exists()]


@pytest.mark.parametrize("name", FOLDERS)
def test_spec_and_shapes(name: str) -> None:
    spec = ModelSpec.from_folder(MODELS_DIR / name)
    assert spec.kind == "logmel"
    assert spec.receptive_field_ms == 64 * (spec.context_frames + 1)
    assert spec.onnx.stat().st_size <= 5 * 1024 * 1024
    s = session(spec.onnx)
    assert [i.name for i in s.get_inputs()] == ["features"]
    assert [o.name for o in s.get_outputs()] == ["probs"]
    for b, n in ((1, 1), (4, 37)):
        x = np.full((b, 4 * (spec.context_frames + n), 64), -8.0, np.float32)
        p = s.run(["probs"], {"features": x})[0]
        assert p.shape == (b, n, len(spec.labels))
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", FOLDERS)
def test_streaming_equals_whole(name: str) -> None:
    spec = ModelSpec.from_folder(MODELS_DIR / name)
    assert check_streaming(spec.onnx, spec.context_frames) < 1e-5
