"""Call-centre flags: a child on the line, laughter or crying in a recording, with timestamps.

    python examples/call_centre_flags.py CALL.wav [CALL2.wav ...]   # the bundled sample by default

For each file it runs AudioEvent (and UnderageSpeaker, when this install has it) once over the
whole recording and reads the *transitions*: contiguous stretches of one label at 64 ms
resolution. A flag is a stretch of a watched label that lasts at least ``MIN_MS`` (short
blips are dropped), with its start and end time and mean confidence:

* ``child``          UnderageSpeaker says ``child`` (a caller who sounds under age);
* ``laughter``       AudioEvent says ``pos_human_sounds``;
* ``crying``         AudioEvent says ``neg_human_sounds`` (crying, screaming).

AudioEvent's scores are independent (laughter over speech is both), and its ``result`` is a
human sound whenever one is above its threshold, so laughter during talk is flagged too.
Prints one line per flag and returns the flags, so the recipe can be imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import anyio

from deeptone_async import Deeptone
from deeptone_async.cli import sample_path

#: model key -> {label: flag name}
WATCH = {
    "underage-speaker": {"child": "child"},
    "audio-event": {"pos_human_sounds": "laughter", "neg_human_sounds": "crying"},
}
#: shortest stretch reported, per flag (a child's voice needs a little longer to be sure of)
MIN_MS = {"child": 1000, "laughter": 256, "crying": 256}
#: stretches of one flag closer than this are merged into one
MERGE_MS = 500


@dataclass
class Flag:
    file: str
    channel: str
    flag: str
    start_ms: int
    end_ms: int
    confidence: float

    def __str__(self) -> str:
        return (f"{self.file} ch{self.channel}: {self.flag:8s} {_clock(self.start_ms)} - {_clock(self.end_ms)} "
                f"(confidence {self.confidence:.2f})")


def _clock(ms: int) -> str:
    m, s = divmod(ms / 1000, 60)
    return f"{int(m):02d}:{s:05.2f}"


def flags_from_transitions(file: str, channel: str, transitions: dict[str, list[dict]]) -> list[Flag]:
    """Flags from one channel's transitions (``{model key: [segments]}``), in time order."""
    out: list[Flag] = []
    for key, watched in WATCH.items():
        spans: dict[str, list[Flag]] = {}
        for seg in transitions.get(key, []):
            name = watched.get(seg["result"])
            if name is None:
                continue
            prev = spans.setdefault(name, [])
            if prev and seg["timestamp_start"] - prev[-1].end_ms <= MERGE_MS:  # merge near neighbours
                last = prev[-1]
                dur_a, dur_b = last.end_ms - last.start_ms, seg["timestamp_end"] - seg["timestamp_start"]
                last.confidence = (last.confidence * dur_a + seg["confidence"] * dur_b) / max(dur_a + dur_b, 1)
                last.end_ms = seg["timestamp_end"]
            else:
                prev.append(Flag(file, channel, name, seg["timestamp_start"], seg["timestamp_end"], seg["confidence"]))
        for name, found in spans.items():
            out += [f for f in found if f.end_ms - f.start_ms >= MIN_MS[name]]
    return sorted(out, key=lambda f: (f.start_ms, f.flag))


async def flag_file(engine: Deeptone, path: str) -> list[Flag]:
    """Analyse one recording (every channel) and return its flags."""
    handles = [engine.models.AudioEvent]
    if "UnderageSpeaker" in dir(engine.models):
        handles.insert(0, engine.models.UnderageSpeaker)
    out = await engine.process_file(path, handles, include_transitions=True)
    flags: list[Flag] = []
    for channel, entry in out["channels"].items():
        flags += flags_from_transitions(path, channel, entry["transitions"])
    return flags


async def main(paths: list[str]) -> list[Flag]:
    engine = Deeptone()
    if "UnderageSpeaker" not in dir(engine.models):
        print("(UnderageSpeaker is not in this install: flagging laughter and crying only)")
    flags: list[Flag] = []
    for path in paths:
        found = await flag_file(engine, path)
        print(f"{path}: {len(found)} flag(s)")
        for f in found:
            print("  " + str(f))
        flags += found
    return flags


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:] or [str(sample_path())])
