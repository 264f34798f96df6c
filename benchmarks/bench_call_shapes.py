"""Cost of one inference call by its shape: streams per call and frames per stream (issue 21).

For each model alone (no speech detector), ``InferencePlan.run`` on ``B`` streams of ``n``
frames each, with carried per-stream state, timed for ``--seconds`` per shape (CPU time of
this process, pinned to one core, one ONNX thread). Prints microseconds per call and per
stream-frame: what a round of live frames (n = 1) costs against a round of whole periods
(n = 16), and how much of a call is a fixed cost.

    python benchmarks/bench_call_shapes.py [--models vad,speech,...] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import pin_one_core  # noqa: E402

SHAPES = [(1, 1), (1, 16), (16, 1), (16, 16), (64, 1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="vad,speech,speech-rt,gender,arousal,emotions")
    p.add_argument("--seconds", type=float, default=0.5, help="CPU time per shape")
    args = p.parse_args(argv)
    pin_one_core()
    from deeptone_async import Deeptone
    from deeptone_async.inference import InferencePlan

    engine = Deeptone(max_inference_threads=1)
    rng = np.random.default_rng(0)
    print("| model | " + " | ".join(f"B={b} n={n}" for b, n in SHAPES) + " |")
    print("|---|" + "---|" * len(SHAPES))
    for key in args.models.split(","):
        _, full = engine.plan([key])
        plan = InferencePlan(full.runners, None)  # the model alone
        cells = []
        for b, n in SHAPES:
            states = [plan.new_stream() for _ in range(b)]
            frames = (rng.standard_normal((b, n, 1024)) * 0.1).astype(np.float32)
            for _ in range(3):
                plan.run(frames, states)
            calls, t0 = 0, time.process_time()
            while time.process_time() - t0 < args.seconds:
                plan.run(frames, states)
                calls += 1
            per_call = 1e6 * (time.process_time() - t0) / calls
            cells.append(f"{per_call:.0f} us ({per_call / (b * n):.0f} per stream-frame)")
        print(f"| {key} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
