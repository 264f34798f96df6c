"""Sinks that write files: JSON Lines, CSV and Audacity label tracks.

Files are written with aiofiles (the writes run in worker threads), opened at the first
result and closed by ``aclose``. aiofiles (and asyncio behind it) is imported then too.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Result, SinkBase

if TYPE_CHECKING:
    from aiofiles.threadpool.text import AsyncTextIOWrapper

__all__ = ["AudacityLabelSink", "CsvSink", "JsonlSink", "audacity_labels"]


class _FileSink(SinkBase):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: AsyncTextIOWrapper | None = None

    async def _write(self, text: str) -> None:
        if self._file is None:
            import aiofiles

            self._file = await aiofiles.open(self.path, "w", encoding="utf-8", newline="")
        await self._file.write(text)

    async def aclose(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await f.close()


class JsonlSink(_FileSink):
    """One JSON object per line, exactly as the stream yields it."""

    async def send(self, result: Result) -> None:
        await self._write(json.dumps(result) + "\n")


class CsvSink(_FileSink):
    """One row per result and model: ``timestamp,model,result,confidence,raw``.

    ``raw`` holds the model's raw values as JSON when the stream includes them.
    """

    FIELDS = ("timestamp", "model", "result", "confidence", "raw")

    def __init__(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(path)
        self._extra = dict(extra or {})
        self._header = False

    async def send(self, result: Result) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not self._header:
            writer.writerow([*self._extra, *self.FIELDS])
            self._header = True
        raw = result.get("raw", {})
        for model, res in result["results"].items():
            raw_json = json.dumps(raw[model]) if model in raw else ""
            row = [result.get("timestamp", ""), model, res["result"], res["confidence"], raw_json]
            writer.writerow([*self._extra.values(), *row])
        await self._write(buf.getvalue())


def audacity_labels(transitions: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """An Audacity label track (``start<TAB>end<TAB>label`` in seconds) from transitions.

    Every model's segments go into the one track, labelled ``"<model>: <result>"``; import
    it in Audacity with File > Import > Labels.
    """
    lines = []
    for model, segments in transitions.items():
        for seg in segments:
            start = seg["timestamp_start"] / 1000.0
            end = seg["timestamp_end"] / 1000.0
            lines.append(f"{start:.6f}\t{end:.6f}\t{model}: {seg['result']}")
    return "".join(line + "\n" for line in lines)


class AudacityLabelSink(_FileSink):
    """Write an Audacity label track of a stream's transitions when it closes.

    Consecutive results with the same label are merged into one segment per model, so
    the segments have the stream's ``output_period`` resolution.

    Args:
        path: the ``.txt`` label file.
        output_period: the stream's output period in ms (the length of the last segment).
    """

    def __init__(self, path: str | Path, output_period: int = 1024) -> None:
        super().__init__(path)
        self._period = output_period
        self._segments: dict[str, list[dict[str, Any]]] = {}

    async def send(self, result: Result) -> None:
        ts = int(result["timestamp"])
        for model, res in result["results"].items():
            segs = self._segments.setdefault(model, [])
            if segs and segs[-1]["result"] == res["result"] and segs[-1]["timestamp_end"] == ts:
                segs[-1]["timestamp_end"] = ts + self._period
            else:
                segs.append({"timestamp_start": ts, "timestamp_end": ts + self._period, "result": res["result"]})

    async def aclose(self) -> None:
        if self._segments:
            await self._write(audacity_labels(self._segments))
        await super().aclose()
