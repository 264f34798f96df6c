"""Result sinks: files (JSON Lines, CSV, Audacity labels), callbacks and standard output.

Chain several with :func:`tee` (results pass through, e.g. into another ``async for``) or
:func:`drain` (consume the stream)::

    await drain(engine.process_stream(src), StdoutSink(), JsonlSink("out.jsonl"))
"""

from .base import Sink as Sink
from .base import SinkBase as SinkBase
from .base import drain as drain
from .base import tee as tee
from .console import CallbackSink as CallbackSink
from .console import StdoutSink as StdoutSink
from .console import format_result as format_result
from .files import AudacityLabelSink as AudacityLabelSink
from .files import CsvSink as CsvSink
from .files import JsonlSink as JsonlSink
from .files import audacity_labels as audacity_labels

__all__ = [
    "AudacityLabelSink",
    "CallbackSink",
    "CsvSink",
    "JsonlSink",
    "Sink",
    "SinkBase",
    "StdoutSink",
    "audacity_labels",
    "drain",
    "format_result",
    "tee",
]
