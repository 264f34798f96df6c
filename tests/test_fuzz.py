"""Hostile and careless input (benchmarks/fuzz_inputs.py): every generated case ends in a typed
error or a valid result (finite confidences in [0, 1], summaries adding up to 1), and peak
memory stays bounded. Timings are the script's to record (benchmarks/RESULTS.md), not a test's."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

#: Address-space cap of the fuzzing process: the engine with its ONNX sessions maps about
#: 0.5 GB; a case that tried to allocate what the reported attacks did (0.8-2.5 GB) fails.
MEMORY_CAP = 1280 << 20


def _memory_cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_hostile_inputs_end_in_typed_errors_or_valid_results(tmp_path: Path, seed: int) -> None:
    out = tmp_path / "fuzz.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fuzz_inputs.py"), "--cases", "120", "--seed", str(seed), "--json", str(out)],
        capture_output=True, text=True, timeout=300, preexec_fn=_memory_cap,
    )
    report = json.loads(out.read_text())
    assert report["failures"] == [], report["failures"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds = report["kinds"]
    assert sum(k["cases"] for k in kinds.values()) == 120
    # both outcomes occur for the mutated files and the arrays: the generator is not trivial
    for kind in ("file", "array"):
        assert kinds[kind]["valid"] > 0 and sum(kinds[kind]["errors"].values()) > 0, kinds[kind]
    assert report["peak_rss_growth_mb"] < 200, report
