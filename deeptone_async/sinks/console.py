"""Sinks that hand results to code or print them."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .base import Result, SinkBase

__all__ = ["CallbackSink", "StdoutSink", "format_result"]


class CallbackSink(SinkBase):
    """Call ``callback(result)`` for every result; an async callback is awaited.

    A synchronous callback runs on the event loop: keep it quick, or make it async.
    """

    def __init__(self, callback: Callable[[Result], Awaitable[Any] | Any]) -> None:
        self._callback = callback

    async def send(self, result: Result) -> None:
        out = self._callback(result)
        if inspect.isawaitable(out):
            await out


def format_result(result: Result) -> str:
    """One human-readable line: ``  1.024 s  vad: speech (0.99)  gender: female (0.87)``."""
    parts = [f"{model}: {res['result']} ({res['confidence']:.2f})" for model, res in result["results"].items()]
    ts = result.get("timestamp")
    head = f"{ts / 1000:8.3f} s  " if ts is not None else ""
    return head + "  ".join(parts)


class StdoutSink(SinkBase):
    """Print each result, as a readable line (``"text"``) or as JSON (``"json"``).

    Args:
        style: ``"text"`` or ``"json"``.
        stream: where to print (standard output by default).
    """

    def __init__(self, style: str = "text", stream: TextIO | None = None) -> None:
        if style not in ("text", "json"):
            raise ValueError(f"style must be 'text' or 'json', got {style!r}")
        self._style = style
        self._stream = stream

    async def send(self, result: Result) -> None:
        line = json.dumps(result) if self._style == "json" else format_result(result)
        print(line, file=self._stream or sys.stdout, flush=True)
