"""Agreement of deeptone-async's speech segments with silero-vad's ``get_speech_timestamps``.

For each recording, silero-vad's own package (its default model and parameters) gives the
reference speech segments; deeptone-async's Vad gives transitions, smoothed by
``deeptone_async.segments.segments`` with several settings. Measured on a 10 ms grid:

- frame agreement: share of 10 ms cells where both say speech or both say not;
- speech IoU: speech time both found / speech time either found;
- boundary F1: segment starts and ends matched one-to-one within +-200 ms;
- segments: our count / silero's.

Sets (the corpus audio is read from $DEEPTONE_DATA or ../shared/data; nothing is written):

- ``librispeech-val``: the 54 LibriSpeech validation clips (read speech with its pauses);
- ``mixed-val``: 30 recordings of 4-7 pieces each from the validation splits of
  commonvoice, speechocean (speech), noise and music, with 0.2-2 s gaps of silence or
  quiet noise between them (seeded);
- ``espeak``: 12 espeak-ng recordings of three sentences with 0.15-1.5 s pauses (needs
  espeak-ng and sox).

Needs the ``silero-vad`` package and torch (``pip install torch==2.13.0`` from the local
wheel, then ``pip install silero-vad --no-deps``)::

    python benchmarks/bench_segments.py [--limit N] [--sets librispeech-val,mixed-val,espeak]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf

from deeptone_async import Deeptone
from deeptone_async.segments import Smoothing, segments

SR = 16_000
GRID_MS = 10
TOLERANCE_MS = 200
REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEEPTONE_DATA", REPO.parent / "shared" / "data"))

#: (name, smoothing, volume_threshold); the first row is the raw transitions, unsmoothed.
SETTINGS: list[tuple[str, Smoothing, float]] = [
    ("raw transitions", Smoothing(min_duration_ms=0, min_gap_ms=0, pad_ms=0), 0.005),
    ("250/100/30 (silero-vad's own)", Smoothing(min_duration_ms=250, min_gap_ms=100, pad_ms=30), 0.005),
    ("250/100/0", Smoothing(min_duration_ms=250, min_gap_ms=100, pad_ms=0), 0.005),
    ("250/100/64", Smoothing(min_duration_ms=250, min_gap_ms=100, pad_ms=64), 0.005),
    ("128/100/30", Smoothing(min_duration_ms=128, min_gap_ms=100, pad_ms=30), 0.005),
    ("250/200/30 (the default)", Smoothing(min_duration_ms=250, min_gap_ms=200, pad_ms=30), 0.005),
    ("250/200/64", Smoothing(min_duration_ms=250, min_gap_ms=200, pad_ms=64), 0.005),
    ("250/300/30", Smoothing(min_duration_ms=250, min_gap_ms=300, pad_ms=30), 0.005),
    ("250/100/30, volume_threshold=0", Smoothing(min_duration_ms=250, min_gap_ms=100, pad_ms=30), 0.0),
    ("250/200/30, volume_threshold=0", Smoothing(min_duration_ms=250, min_gap_ms=200, pad_ms=30), 0.0),
    ("250/200/64, volume_threshold=0", Smoothing(min_duration_ms=250, min_gap_ms=200, pad_ms=64), 0.0),
]

ESPEAK = [
    ("en+f3", "Turn left at the next junction.", "The meeting starts at nine tomorrow.", "Please bring the blue folder."),
    ("en+m3", "Voice analytics finds speech in audio.", "It should ignore the pauses.", "Then it reports the segments."),
    ("en+f4", "One, two, three.", "Four, five, six, seven.", "Eight nine ten."),
    ("en-us+m1", "Could you send me the report?", "I need it before lunch.", "Thanks a lot."),
]


def read(path: Path) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SR, path
    return audio.mean(axis=1)


def manifest(corpus: str, split: str = "val", label: str | None = None) -> list[Path]:
    path = DATA / corpus / "manifest.csv"
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split and (label is None or r["label"] == label)]
    return [DATA / corpus / r["file"] for r in rows]


def librispeech_val(limit: int | None) -> Iterator[tuple[str, np.ndarray]]:
    for path in manifest("librispeech")[:limit]:
        yield path.stem, read(path)


def mixed_val(limit: int | None, count: int = 30) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(18)
    speech = manifest("commonvoice") + manifest("speechocean")
    other = manifest("noise") + manifest("music")
    for i in range(count if limit is None else min(count, limit)):
        parts: list[np.ndarray] = []
        for _ in range(int(rng.integers(4, 8))):
            gap = int(rng.uniform(0.2, 2.0) * SR)
            quiet = rng.random() < 0.5
            parts.append((rng.standard_normal(gap) * 0.003).astype(np.float32) if quiet else np.zeros(gap, np.float32))
            if rng.random() < 0.7:
                parts.append(read(speech[int(rng.integers(len(speech)))]))
            else:
                clip = read(other[int(rng.integers(len(other)))])
                parts.append(clip[: int(rng.uniform(2, 6) * SR)])
        parts.append(np.zeros(SR // 2, np.float32))
        yield f"mixed-{i:02d}", np.concatenate(parts)


def espeak(limit: int | None) -> Iterator[tuple[str, np.ndarray]]:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        print("espeak-ng or sox missing: espeak set skipped", file=sys.stderr)
        return
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for rep in range(3):
            for voice, *sentences in ESPEAK:
                if limit is not None and n >= limit:
                    return
                parts = [np.zeros(int(rng.uniform(0.2, 1.0) * SR), np.float32)]
                for k, text in enumerate(sentences):
                    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(150 + 20 * rep), "--stdout", text],
                                         check=True, capture_output=True).stdout
                    out = Path(tmp) / f"{n}-{k}.wav"
                    subprocess.run(["sox", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", str(out)], input=wav, check=True)
                    parts += [read(out) * 0.5, np.zeros(int(rng.uniform(0.15, 1.5) * SR), np.float32)]
                n += 1
                yield f"espeak-{voice}-{rep}", np.concatenate(parts)


def grid(spans: list[tuple[float, float]], n: int) -> np.ndarray:
    """Speech mask on the 10 ms grid from spans in ms."""
    mask = np.zeros(n, bool)
    for start, end in spans:
        mask[int(round(start / GRID_MS)) : int(round(end / GRID_MS))] = True
    return mask


def boundary_f1(ours: list[tuple[float, float]], ref: list[tuple[float, float]]) -> tuple[int, int, int]:
    """(matched, ours, reference) boundaries: starts with starts, ends with ends, greedy
    one-to-one within the tolerance."""
    matched = 0
    for k in (0, 1):
        free = sorted(r[k] for r in ref)
        for b in sorted(o[k] for o in ours):
            best = min(range(len(free)), key=lambda i: abs(free[i] - b), default=None)
            if best is not None and abs(free[best] - b) <= TOLERANCE_MS:
                matched += 1
                free.pop(best)
    return matched, 2 * len(ours), 2 * len(ref)


class Totals:
    def __init__(self) -> None:
        self.agree = self.cells = self.inter = self.union = self.matched = self.ours_b = self.ref_b = 0
        self.ours_n = self.ref_n = 0

    def add(self, ours: list[tuple[float, float]], ref: list[tuple[float, float]], n: int) -> None:
        a, b = grid(ours, n), grid(ref, n)
        self.agree += int((a == b).sum())
        self.cells += n
        self.inter += int((a & b).sum())
        self.union += int((a | b).sum())
        m, o, r = boundary_f1(ours, ref)
        self.matched, self.ours_b, self.ref_b = self.matched + m, self.ours_b + o, self.ref_b + r
        self.ours_n += len(ours)
        self.ref_n += len(ref)

    def row(self) -> tuple[float, float, float, float]:
        p = self.matched / self.ours_b if self.ours_b else 1.0
        r = self.matched / self.ref_b if self.ref_b else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return self.agree / self.cells, self.inter / max(1, self.union), f1, self.ours_n / max(1, self.ref_n)


async def run(sets: list[str], limit: int | None) -> None:
    from importlib.metadata import version

    import silero_vad
    import torch

    torch.set_num_threads(1)
    model = silero_vad.load_silero_vad()
    engine = Deeptone()
    makers = {"librispeech-val": librispeech_val, "mixed-val": mixed_val, "espeak": espeak}
    print(f"silero-vad {version('silero-vad')} (its default model), torch {torch.__version__}; 10 ms grid, "
          f"boundaries within +-{TOLERANCE_MS} ms\n")
    for name in sets:
        totals = [Totals() for _ in SETTINGS]
        seconds = 0.0
        count = 0
        t0 = time.perf_counter()
        for _clip, audio in makers[name](limit):
            n = int(np.ceil(len(audio) * 1000 / SR / GRID_MS))
            seconds += len(audio) / SR
            count += 1
            ref = [(s["start"] * 1000 / SR, s["end"] * 1000 / SR)
                   for s in silero_vad.get_speech_timestamps(torch.from_numpy(audio), model, sampling_rate=SR)]
            results = {}
            for threshold in {t for _, _, t in SETTINGS}:
                results[threshold] = await engine.process_audio_bytes(audio, ["vad"], include_transitions=True,
                                                                      volume_threshold=threshold)
            for total, (_, rules, threshold) in zip(totals, SETTINGS):
                ours = [(float(s.start_ms), float(s.end_ms)) for s in segments(results[threshold], smoothing=rules)]
                total.add(ours, ref, n)
        print(f"### {name}: {count} recordings, {seconds / 60:.1f} min ({time.perf_counter() - t0:.0f} s)\n")
        print("| setting (min duration / min gap / pad, ms) | frame agreement | speech IoU | boundary F1 | segments ours/silero |")
        print("|---|---|---|---|---|")
        for (label, _, _), total in zip(SETTINGS, totals):
            agree, iou, f1, ratio = total.row()
            print(f"| {label} | {agree:.3f} | {iou:.3f} | {f1:.3f} | {ratio:.2f} ({total.ours_n}/{total.ref_n}) |")
        print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="librispeech-val,mixed-val,espeak")
    parser.add_argument("--limit", type=int, default=None, help="at most N recordings per set")
    args = parser.parse_args()
    anyio.run(run, args.sets.split(","), args.limit)


if __name__ == "__main__":
    main()
