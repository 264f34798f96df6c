"""What a live stream holds does not grow with its length, and is released when it ends
(issue 21). Memory, measured with tracemalloc by ``benchmarks/bench_stream_memory.py``, not
time: the figures do not depend on what else the machine runs."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_stream_memory import measure  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("models", [["vad"], ["vad", "gender", "speech"]])
def test_a_stream_holds_the_same_memory_after_40_s_as_after_8_s_and_none_once_it_ended(models: list[str]) -> None:
    out = anyio.run(measure, models, 4, 8.0, 40.0, 1024)
    early, late, ended = (m["traced_kb"] for m in out.values())
    assert 20 < early < 1024  # a period's frames (64 KB at 1024 ms) and the models' states
    # 32 s more audio (500 frames) adds nothing: 16 bytes kept per frame would add 8 KB
    assert late - early < 8
    assert ended < 16  # KB per stream (of ~150): a finished stream leaves nothing behind
