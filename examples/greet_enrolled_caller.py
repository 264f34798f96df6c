"""A voice bot that greets a caller whose voice it has enrolled.

    python examples/greet_enrolled_caller.py [ENROL.wav CALL.wav]   # default: espeak-ng voices

Once, at sign-up, the bot enrols the caller: ``create_voice_signatures`` turns 1-10 s of their
voice into a signature (store it with the account: it is a small JSON-able dict). On a later
call it passes the signature to ``process_stream``; SpeakerMap then reports the caller's id
instead of ``speaker_1`` as soon as it has heard enough of the voice (about 1 s of speech:
the map needs speech in its 2.1 s receptive field first), and the bot greets them by name.
A voice it does not know is numbered (``speaker_1``; ``unknown`` while the map is still
deciding): after 3 s of such speech, the bot asks who is calling.

The call is streamed in 64 ms pieces as a telephony stack would deliver it (here faster
than real time), and results come every 256 ms.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import soundfile as sf

from deeptone_async import Deeptone

SR = 16_000


def espeak(text: str, voice: str, path: Path) -> Path:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        sys.exit("give ENROL.wav and CALL.wav, or install espeak-ng and sox to make samples")
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    subprocess.run(["sox", "-R", "-t", "wav", "-", "-r", str(SR), "-c", "1", "-b", "16", str(path)], input=wav, check=True)
    return path


def call_audio(path: Path) -> Iterator[bytes]:
    """The call as 64 ms pieces of 16-bit PCM (what a telephony stack would deliver)."""
    x, sr = sf.read(path, dtype="int16")
    if sr != SR or x.ndim != 1:
        sys.exit(f"{path}: this example takes 16 kHz mono audio")
    for lo in range(0, len(x), 1024):
        yield x[lo : lo + 1024].tobytes()


async def greet(engine: Deeptone, call: Path, signatures: dict, names: dict[str, str]) -> str | None:
    """Listen to the call; return the greeting the bot says (or ``None``)."""
    unknown_ms = 0
    stream = engine.process_stream(call_audio(call), [engine.models.SpeakerMap], 256, voice_signatures=signatures)
    async with stream:
        async for result in stream:
            who = result["results"]["speaker-map"]["result"]
            if who in names:
                return f"[{result['timestamp'] / 1000:.1f} s] Hello {names[who]}, welcome back!"
            if who.startswith("speaker_") or who == "unknown":  # speech, but not a known caller's
                unknown_ms += 256
            if unknown_ms >= 3000:
                return f"[{result['timestamp'] / 1000:.1f} s] Hello! May I ask who is calling?"
    return None


async def main(enrol: Path, calls: list[Path]) -> None:
    engine = Deeptone()
    # at sign-up: enrol the caller (1-10 s of their voice)
    signatures = await engine.create_voice_signatures([{"speaker_id": "customer-0042", "audio": str(enrol)}])
    names = {"customer-0042": "Alice"}
    for call in calls:
        print(f"{call.name}: {await greet(engine, call, signatures, names) or '(no greeting: nobody spoke long enough)'}")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        anyio.run(main, Path(sys.argv[1]), [Path(sys.argv[2])])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            enrol = espeak("Hello, my name is Alice. I would like to open an account for my small bakery in town.", "en+f3", d / "enrol.wav")
            alice = espeak("Hi, it is me again. I am calling about the delivery of my order from last week.", "en+f3", d / "alice_call.wav")
            other = espeak("Good afternoon. I saw your advertisement in the newspaper yesterday and I have a question about your prices for large orders.", "en+m3", d / "other_call.wav")
            anyio.run(main, enrol, [alice, other])
