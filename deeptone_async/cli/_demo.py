"""``deeptone-async demo`` and ``deeptone-async models``: what the bundled models do."""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from ._parser import bundled_models

__all__ = ["WIDTH", "label_letters", "render_demo", "run_demo", "run_models", "sample_path"]

#: The terminal width the demo's output fits.
WIDTH = 100
#: Labels every voice model shares keep one symbol across models.
_FIXED = {"silence": ".", "no_speech": "-", "unknown": "?"}
_DESCRIPTION = "generated speech (two voices), plucked notes, noise and pauses"


def sample_path() -> Path:
    """The bundled demo sample (generated speech, notes and noise; 20 s, Ogg Opus)."""
    return Path(str(resources.files("deeptone_async") / "data" / "sample.ogg"))


def run_models(out: TextIO) -> int:
    """Describe every bundled model (reads their specs; loads no ONNX session)."""
    for spec in bundled_models():
        print(f"{spec.name} (key {spec.key!r})", file=out)
        print(f"  labels:           {', '.join(spec.output_labels)}", file=out)
        print(f"  receptive field:  {spec.receptive_field_ms} ms", file=out)
        if spec.description:
            print(f"  about:            {spec.description}", file=out)
        print(f"  card:             {spec.card if spec.card and spec.card.exists() else '-'}", file=out)
    return 0


def label_letters(labels: Sequence[str]) -> dict[str, str]:
    """One character per label of a model: ``.`` silence, ``-`` no_speech, ``?`` unknown,
    and for the others the first letter of the label not yet taken in this model."""
    out: dict[str, str] = {}
    used = set(_FIXED.values())
    for label in labels:
        if label in _FIXED:
            out[label] = _FIXED[label]
            continue
        candidates = label.lower() + label.upper() + "abcdefghijklmnopqrstuvwxyz0123456789"
        out[label] = next(c for c in candidates if c.isalnum() and c not in used)
        used.add(out[label])
    return out


def _wrap(head: str, parts: list[str], width: int) -> list[str]:
    """``head`` then ``parts`` separated by two spaces, continued under the first part."""
    lines: list[str] = []
    line = head
    for part in parts:
        if len(line) > len(head) and len(line) + 2 + len(part) > width:
            lines.append(line)
            line = " " * len(head)
        line = line + ("  " if len(line) > len(head) else "") + part
    return [*lines, line]


def _axis(indent: int, cells: int, period_ms: int, width: int) -> str:
    """Tick labels (``0 s``, ``5 s``, ...) over the timeline's columns."""
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 10**9) if s * 1000 / period_ms >= 8)
    line = ""
    t = 0
    while (col := round(t * 1000 / period_ms)) < cells:
        text = f"{t} s"
        if indent + col + len(text) > width:
            break
        line = line.ljust(indent + col) + text
        t += step
    return line


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def render_demo(result: Any, models: Sequence[Any], period_ms: int, seconds: float, name: str, width: int = WIDTH) -> str:
    """The demo's report: a timeline row per model, then each model's summary with the
    letters of its labels; no line is wider than ``width``."""
    entry = result["channels"]["0"]
    indent = max(len(spec.key) for spec in models) + 2
    lines = [
        f"{name} ({seconds:.1f} s): {_DESCRIPTION}",
        "",
        f"Timeline: one character per {period_ms} ms, the label that covers most of it;",
        "the letters are in the summary below (. silence, - no_speech, ? unknown).",
        "",
        _axis(indent, len(entry["time_series"]), period_ms, width),
    ]
    letters = {spec.key: label_letters(spec.output_labels) for spec in models}
    for spec in models:
        row = "".join(letters[spec.key][item["results"][spec.key]["result"]] for item in entry["time_series"])
        lines.append(f"{spec.key:<{indent}}{row}")
    lines += ["", "Summary: each label's letter and share of the time"]
    for spec in models:
        shares = entry["summary"][spec.key]
        seen = {item["results"][spec.key]["result"] for item in entry["time_series"]}
        parts = [
            f"{letters[spec.key][label]} {label} {_percent(shares.get(f'{label}_fraction', 0.0))}"
            for label in spec.output_labels
            if shares.get(f"{label}_fraction", 0.0) > 0 or label in seen
        ]
        lines += _wrap(f"{spec.key:<{indent}}", parts, width)
    return "".join(line.rstrip() + "\n" for line in lines)


async def run_demo(out: TextIO, width: int = WIDTH) -> int:
    """Analyse the bundled sample with every model and print :func:`render_demo`."""
    import soundfile as sf

    from ..engine import Deeptone

    engine = Deeptone()
    models = list(engine.models)
    path = sample_path()
    seconds = float(sf.info(str(path)).duration)
    cells = width - (max(len(spec.key) for spec in models) + 2)
    period = 64 * max(1, math.ceil(seconds * 1000 / cells / 64))
    result = await engine.process_file(path, None, output_period=period, include_summary=True)
    out.write(render_demo(result, models, period, seconds, path.name, width))
    return 0
