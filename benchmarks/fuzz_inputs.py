"""Hostile and careless input, generated and run against the engine: every case must end in a
typed error or a valid result, within bounded memory and time, without blocking the loop.

Cases (seeded, so a failure reproduces with its seed and index):

- files: WAV (16-bit, float), FLAC, Ogg Vorbis and MP3 of a short tone and noise, then
  truncated at a random point, with random bytes flipped, or with crafted WAV headers
  (absurd sample rates, channel counts, block sizes, data sizes);
- headerless ``.raw`` files of random length;
- arrays of every dtype (supported or not) and shape (empty, mono, stereo, channels-first,
  3-D), with NaN, inf, huge and tiny values; bytes of odd lengths.

Each case runs ``process_file`` / ``process_audio_bytes`` (a few models, summary,
transitions, raw values) under a 10 s timeout while a heartbeat task measures the longest
time the event loop went without running it. Printed, and with ``--json`` written as JSON:
per kind the number of cases, typed errors and valid results, and over all cases the
worst wall time, the worst loop block and the growth of peak RSS.

    python benchmarks/fuzz_inputs.py --cases 600 --seed 0          # the figures in RESULTS.md
    python benchmarks/fuzz_inputs.py --cases 150 --json out.json    # what tests/test_fuzz.py runs
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import soundfile as sf

from deeptone_async import Deeptone, DeeptoneError

SR = 16_000
MODELS = ["vad", "speech", "gender"]


@dataclass
class Case:
    kind: str
    label: str
    path: Path | None = None
    data: Any = None
    rate: int = SR


@dataclass
class Tally:
    cases: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    valid: int = 0
    failures: list[str] = field(default_factory=list)


def _base_audio(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(SR // 4, 2 * SR))
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _encode(x: np.ndarray, fmt: str, subtype: str | None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt, subtype=subtype)
    return buf.getvalue()


BASES = [("wav", "WAV", "PCM_16"), ("wav", "WAV", "FLOAT"), ("flac", "FLAC", None), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", None)]


def _crafted_wav(rng: np.random.Generator, x: np.ndarray) -> tuple[bytes, str]:
    data = bytearray(_encode(x, "WAV", "PCM_16"))
    field_name, offset, fmt, values = [
        ("rate", 24, "<I", [0, 1, 7, 100, 3_999, 384_001, 2**31 - 1, 2**32 - 1]),
        ("channels", 22, "<H", [0, 2, 33, 1000, 65_535]),
        ("block_align", 32, "<H", [0, 1, 3, 65_535]),
        ("bits", 34, "<H", [0, 1, 7, 24, 64, 65_535]),
        ("data_size", 40, "<I", [0, 1, 2**31, 2**32 - 1]),
        ("riff_size", 4, "<I", [0, 2**32 - 1]),
    ][int(rng.integers(6))]
    value = values[int(rng.integers(len(values)))]
    struct.pack_into(fmt, data, offset, value)
    return bytes(data), f"{field_name}={value}"


def cases(seed: int, n: int, folder: Path) -> Iterator[Case]:
    """``n`` cases from ``seed``; files are written into ``folder``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        pick = i % 4
        x = _base_audio(rng)
        if pick == 0:  # a mutated encoded file
            suffix, fmt, subtype = BASES[int(rng.integers(len(BASES)))]
            blob = _encode(x, fmt, subtype)
            how = int(rng.integers(3))
            if how == 0:
                cut = int(rng.integers(0, len(blob)))
                blob, label = blob[:cut], f"{suffix} truncated at {cut}/{len(blob)}"
            elif how == 1:
                b = bytearray(blob)
                for pos in rng.integers(0, len(b), size=int(rng.integers(1, 64))):
                    b[int(pos)] = int(rng.integers(256))
                blob, label = bytes(b), f"{suffix} with flipped bytes"
            else:
                blob, what = _crafted_wav(rng, x)
                suffix, label = "wav", f"wav header {what}"
            path = folder / f"case{i}.{suffix}"
            path.write_bytes(blob)
            yield Case("file", label, path=path)
        elif pick == 1:  # headerless PCM
            path = folder / f"case{i}.raw"
            path.write_bytes(rng.bytes(int(rng.integers(0, 200_000))))
            yield Case("raw", f"raw {path.stat().st_size} bytes", path=path)
        elif pick == 2:  # an array of any dtype and shape
            others = ["int8", "int16", "int32", "uint8", "uint16", "uint32", "float16", "int64", "bool", "complex64", "object"]
            dtype = ["float32", "float64"][int(rng.integers(2))] if rng.random() < 0.5 else others[int(rng.integers(len(others)))]
            n_frames = int(rng.integers(0, SR))
            shape = [(n_frames,), (n_frames, 1), (n_frames, 2), (2, n_frames), (1, n_frames), (4, 3, n_frames // 12 + 1),
                     (0,), (1,)][int(rng.integers(8))]
            size = int(np.prod(shape))
            if dtype in ("float32", "float64", "float16", "complex64", "object"):
                values = rng.standard_normal(size) * [1e-30, 0.5, 3.0, 1e4, 1e20, 3e38][int(rng.integers(6))]
                if size and rng.random() < 0.3:
                    values[int(rng.integers(size))] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
                with np.errstate(over="ignore"):  # 3e38 overflows float16: inf, one more hostile value
                    arr = values.astype(dtype if dtype != "object" else np.float64)
                if dtype == "object":
                    arr = arr.astype(object)
            elif dtype == "bool":
                arr = rng.random(size) < 0.5
            else:
                info = np.iinfo(dtype)
                arr = rng.integers(info.min, info.max, size=size, dtype=dtype, endpoint=True)
            rate = [SR, 8_000, 44_100][int(rng.integers(3))] if rng.random() < 0.8 else [1, 3_999, 10**6][int(rng.integers(3))]
            yield Case("array", f"{dtype} {shape} at {rate} Hz", data=arr.reshape(shape), rate=rate)
        else:  # bytes of any length
            blob = rng.bytes(int(rng.integers(0, 100_000)))
            yield Case("bytes", f"{len(blob)} bytes", data=blob)


def _valid(result: Any) -> str | None:
    """Why ``result`` is not a valid DeepTone result, or None."""
    for name, channel in result["channels"].items():
        for item in channel["time_series"]:
            for model, res in item["results"].items():
                c = res["confidence"]
                if not (isinstance(c, float) and math.isfinite(c) and 0.0 <= c <= 1.0):
                    return f"channel {name} {model} confidence {c!r}"
            for model, raw in item.get("raw", {}).items():
                if not all(isinstance(v, float) and math.isfinite(v) for v in raw.values()):
                    return f"channel {name} {model} raw {raw!r}"
        for model, shares in channel.get("summary", {}).items():
            total = sum(shares.values())
            if channel["time_series"] and abs(total - 1) > 1e-6:
                return f"channel {name} {model} summary adds up to {total}"
    return None


async def _run(engine: Deeptone, case: Case) -> Any:
    kw = {"include_summary": True, "include_transitions": True, "include_raw_values": True}
    if case.path is not None:
        return await engine.process_file(case.path, MODELS, **kw)
    return await engine.process_audio_bytes(case.data, MODELS, rate_in=case.rate, **kw)


async def fuzz(seed: int, n: int) -> dict[str, Any]:
    engine = Deeptone()
    tallies: dict[str, Tally] = {}
    worst_s, worst_block_s, worst_block_case = 0.0, 0.0, ""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    block = [0.0]

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.005)
            now = time.perf_counter()
            block[0] = max(block[0], now - last - 0.005)
            last = now

    with tempfile.TemporaryDirectory() as tmp:
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            for i, case in enumerate(cases(seed, n, Path(tmp))):
                tally = tallies.setdefault(case.kind, Tally())
                tally.cases += 1
                block[0] = 0.0
                start = time.perf_counter()
                try:
                    with anyio.fail_after(10):
                        result = await _run(engine, case)
                except (DeeptoneError, FileNotFoundError) as exc:
                    tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
                except TimeoutError:
                    tally.failures.append(f"#{i} {case.label}: no answer within 10 s")
                except Exception as exc:  # an untyped error is what this script looks for
                    tally.failures.append(f"#{i} {case.label}: {type(exc).__name__}: {exc}")
                else:
                    why = _valid(result)
                    if why is None:
                        tally.valid += 1
                    else:
                        tally.failures.append(f"#{i} {case.label}: invalid result: {why}")
                worst_s = max(worst_s, time.perf_counter() - start)
                if block[0] > worst_block_s:
                    worst_block_s, worst_block_case = block[0], f"#{i} {case.label}"
            tg.cancel_scope.cancel()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seed": seed,
        "cases": n,
        "kinds": {k: vars(t) for k, t in tallies.items()},
        "failures": [f for t in tallies.values() for f in t.failures],
        "worst_case_s": round(worst_s, 3),
        "worst_loop_block_ms": round(1000 * worst_block_s, 1),
        "worst_loop_block_case": worst_block_case,
        "peak_rss_growth_mb": round((rss1 - rss0) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cases", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    report = anyio.run(fuzz, args.seed, args.cases)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
