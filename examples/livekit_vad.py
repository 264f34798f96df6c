"""deeptone-async as a LiveKit agents VAD.

    pip install 'deeptone-async[livekit]'
    python examples/livekit_vad.py [audio file] [--realtime]

In an agent, pass it where Silero's VAD would go (one engine serves every session):

    from deeptone_async.integrations.livekit import DeeptoneVAD
    session = AgentSession(vad=DeeptoneVAD(), stt=..., llm=..., tts=...)

Without a LiveKit server, this example does what an ``AgentSession`` does with it: opens a
VAD stream, pushes a file's audio (by default the bundled sample: two voices, music, noise)
as the 10 ms 48 kHz frames a room delivers, and prints the events.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
import soundfile as sf
from livekit import rtc
from livekit.agents import vad

from deeptone_async.integrations.livekit import DeeptoneVAD

SAMPLE = Path(__file__).resolve().parent.parent / "deeptone_async" / "data" / "sample.ogg"


async def main(path: Path, realtime: bool) -> None:
    detector = DeeptoneVAD()  # loads the models (blocks a moment)
    audio, rate = sf.read(path, dtype="int16", always_2d=True)
    stream = detector.stream()
    n = rate // 100  # 10 ms frames at the file's rate: the stream resamples to 16 kHz

    async def push() -> None:
        for i in range(0, len(audio), n):
            chunk = np.ascontiguousarray(audio[i : i + n, 0])
            stream.push_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
            await asyncio.sleep(0.01 if realtime else 0)
        stream.end_input()

    pusher = asyncio.create_task(push())
    async for ev in stream:
        if ev.type == vad.VADEventType.START_OF_SPEECH:
            print(f"{ev.timestamp:6.2f} s  start of speech ({ev.speech_duration:.2f} s of it so far)")
        elif ev.type == vad.VADEventType.END_OF_SPEECH:
            seconds = sum(f.duration for f in ev.frames)
            print(f"{ev.timestamp:6.2f} s  end of speech: {ev.speech_duration:.2f} s ({seconds:.2f} s of audio for the STT)")
    await pusher
    await stream.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audio", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--realtime", action="store_true", help="push the audio at its real speed")
    args = parser.parse_args()
    asyncio.run(main(args.audio, args.realtime))
