"""Talk time per speaker in a recorded meeting, with SpeakerMap.

    python examples/meeting_talk_time.py [PATH]   # without PATH: a short meeting spoken by espeak-ng

SpeakerMap numbers the voices it hears in order of appearance (``speaker_1``, ``speaker_2``,
...). Each one's talk time is its summary fraction times the file's duration; its turns are
its label's runs in the transitions, those separated only by pauses joined into one turn
(runs under 0.5 s, where the map is still deciding, are left out). The map is causal: the first ~0.5-1 s
of each new turn still carries the previous speaker's label.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf

from deeptone_async import Deeptone

SR = 16_000
MEETING = [
    ("en+m3", "Good morning everyone. Let us start with the numbers for the second quarter, which look better than we expected."),
    ("en+f3", "Thanks. Sales grew in every region, and the northern team doubled its orders since the spring."),
    ("en+m3", "That is good news. What about the costs of the new warehouse?"),
    ("en+f3", "They are within the budget. We should still check the transport contracts before the end of the month."),
    ("en+m3", "Agreed. Let us meet again next week to decide."),
]


def speak_meeting(folder: Path) -> Path:
    """The MEETING lines spoken by two espeak-ng voices, 0.7 s apart, as a 16 kHz WAV."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        sys.exit("give a recording's path, or install espeak-ng and sox to make a sample meeting")
    parts = []
    for i, (voice, text) in enumerate(MEETING):
        wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
        out = folder / f"{i}.wav"
        subprocess.run(["sox", "-R", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", str(out)], input=wav, check=True)
        x, _ = sf.read(out, dtype="int16")
        parts += [x, np.zeros(int(0.7 * SR), np.int16)]
    path = folder / "meeting.wav"
    sf.write(path, np.concatenate(parts), SR, subtype="PCM_16")
    return path


def count_turns(transitions: list[dict], speakers: set[str], min_ms: int = 500) -> dict[str, int]:
    """Turns per speaker: runs of its label of at least ``min_ms``, a run of the speaker who
    spoke last (with only pauses between) continuing that speaker's turn."""
    turns: dict[str, int] = {}
    last = None
    for t in transitions:
        if t["result"] in speakers and t["timestamp_end"] - t["timestamp_start"] >= min_ms and t["result"] != last:
            turns[t["result"]] = turns.get(t["result"], 0) + 1
            last = t["result"]
    return turns


async def main(path: Path) -> None:
    engine = Deeptone()
    out = await engine.process_file(path, [engine.models.SpeakerMap], include_summary=True, include_transitions=True)
    for channel, entry in out["channels"].items():
        duration = entry["transitions"]["speaker-map"][-1]["timestamp_end"] / 1000 if entry["transitions"]["speaker-map"] else 0.0
        count = entry["time_series"][-1]["results"]["speaker-map"]["speaker_count"] if entry["time_series"] else 0
        print(f"channel {channel}: {duration:.1f} s, {count} speaker(s)")
        fractions = entry["summary"]["speaker-map"]
        speakers = [k.removesuffix("_fraction") for k in fractions if k.startswith("speaker_")]
        turns = count_turns(entry["transitions"]["speaker-map"], set(speakers))
        for speaker in speakers:
            share = fractions[f"{speaker}_fraction"]
            print(f"  {speaker}: {share * duration:5.1f} s talking ({share:.0%}), {turns.get(speaker, 0)} turn(s)")
        rest = {k.removesuffix("_fraction"): v for k, v in fractions.items() if not k.startswith("speaker_")}
        print("  not attributed: " + ", ".join(f"{k} {v * duration:.1f} s" for k, v in rest.items()))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, speak_meeting(Path(tmp)))
