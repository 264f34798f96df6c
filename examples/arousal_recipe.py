"""DeepTone's arousal recipe: how much of the *speech* in a file is high / neutral / low arousal.

    python examples/arousal_recipe.py [PATH]      # the bundled sample by default

The summary fractions are shares of the whole file's duration, and they include the stretches
where nobody speaks (``no_speech``: the engine's speech detector) and where the audio is below
the volume gate (``silence``). Arousal is only defined for speech, so each affect fraction is
divided by the share of the file that is speech.
"""

from __future__ import annotations

import sys

import anyio

from deeptone_async import Deeptone
from deeptone_async.cli import sample_path


def speech_share(fractions: dict[str, float], label: str) -> float | None:
    """``label``'s share of the speech in the file; ``None`` when the file holds no speech.

    DeepTone's recipe divides by ``1 - no_speech_fraction``. We also leave out
    ``silence``: silent frames are not speech either (the volume gate reports them as
    ``silence`` *instead of* ``no_speech``, so with the plain recipe a file with long silent
    pauses would get affect shares that add up to less than 1).
    """
    speech = 1.0 - fractions.get("no_speech_fraction", 0.0) - fractions.get("silence_fraction", 0.0)
    if speech <= 1e-9:  # no speech at all: the shares are undefined, not zero
        return None
    return fractions.get(f"{label}_fraction", 0.0) / speech


async def main(path: str) -> None:
    engine = Deeptone()
    out = await engine.process_file(path, [engine.models.Arousal], include_summary=True)
    for channel, entry in out["channels"].items():
        fractions = entry["summary"]["arousal"]
        print(f"channel {channel}: " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
        for label in ("high", "neutral", "low"):
            share = speech_share(fractions, label)
            text = "n/a (no speech)" if share is None else f"{share:.1%}"
            print(f"  {label} arousal: {text} of the speech")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else str(sample_path()))
