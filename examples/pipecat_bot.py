"""deeptone-async in a pipecat pipeline: our Vad as the bot's VAD, and live analytics as frames.

    pip install 'deeptone-async[pipecat]'
    python examples/pipecat_bot.py [audio file] [--realtime]

A real bot gets its audio from a transport (``transport.input()``, with
``vad_analyzer=DeeptoneVADAnalyzer(engine)`` in its params); here a file (by default the
bundled sample: two voices, music, noise) is played into the pipeline as the 20 ms
``InputAudioRawFrame``s a transport sends, and a last processor prints what a bot would act on:

    pipeline = Pipeline([
        VADProcessor(vad_analyzer=DeeptoneVADAnalyzer(engine)),       # user turns
        DeeptoneAnalytics(engine, models=["vad", "gender", "arousal"]),  # results and events
        Printer(),
    ])
"""

from __future__ import annotations

import argparse
import asyncio
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

with warnings.catch_warnings():  # pipecat 1.14 imports audioop (deprecated since Python 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        InputAudioRawFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.audio.vad_processor import VADProcessor
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner

from deeptone_async import Deeptone
from deeptone_async.events import LabelChanged, SpeechEnded, SpeechStarted
from deeptone_async.integrations.pipecat import DeeptoneAnalytics, DeeptoneEventFrame, DeeptoneVADAnalyzer

SAMPLE = Path(__file__).resolve().parent.parent / "deeptone_async" / "data" / "sample.ogg"
RATE = 16_000
CHUNK = RATE // 50  # 20 ms, as transports send


class Printer(FrameProcessor):
    """The bot's end of the pipeline: prints turns and analytics events as they arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_s = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.audio_s += frame.num_frames / frame.sample_rate
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            print(f"{self.audio_s:6.2f} s  user started speaking (pipecat VAD)")
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            print(f"{self.audio_s:6.2f} s  user stopped speaking (pipecat VAD)")
        elif isinstance(frame, DeeptoneEventFrame):
            ev = frame.event
            if isinstance(ev, SpeechStarted):
                print(f"{self.audio_s:6.2f} s  speech started at {ev.timestamp_ms / 1000:.2f} s")
            elif isinstance(ev, SpeechEnded):
                print(f"{self.audio_s:6.2f} s  speech ended: {ev.start_ms / 1000:.2f}-{ev.timestamp_ms / 1000:.2f} s")
            elif isinstance(ev, LabelChanged):
                print(f"{self.audio_s:6.2f} s  {ev.model}: {ev.label} (from {ev.timestamp_ms / 1000:.2f} s)")
        await self.push_frame(frame, direction)


def load(path: Path) -> np.ndarray:
    """The file's first channel as 16 kHz int16."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = soxr.resample(audio[:, 0], rate, RATE) if rate != RATE else audio[:, 0]
    return (np.clip(mono, -1, 1) * 32767).astype(np.int16)


async def main(path: Path, realtime: bool) -> None:
    engine = Deeptone()  # loads the models once; both plug-ins share it
    pipeline = Pipeline([
        VADProcessor(vad_analyzer=DeeptoneVADAnalyzer(engine, params=VADParams(stop_secs=0.5))),
        DeeptoneAnalytics(engine, models=["vad", "gender", "arousal"], output_period=256),
        Printer(),
    ])
    worker = PipelineWorker(pipeline, cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    async def play() -> None:
        audio = load(path)
        await started.wait()
        for i in range(0, len(audio), CHUNK):
            await worker.queue_frame(InputAudioRawFrame(audio=audio[i : i + CHUNK].tobytes(), sample_rate=RATE, num_channels=1))
            await asyncio.sleep(CHUNK / RATE if realtime else 0)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), play())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audio", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--realtime", action="store_true", help="play the file at its real speed")
    args = parser.parse_args()
    from loguru import logger  # pipecat logs every step at DEBUG; keep the example's output readable

    logger.remove()
    logger.add(lambda m: print(m, end=""), level="WARNING")
    asyncio.run(main(args.audio, args.realtime))
