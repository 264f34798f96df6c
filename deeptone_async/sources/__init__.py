"""Audio sources: files, the microphone, TCP, in-memory audio and any iterable of chunks."""

from .base import IterableSource as IterableSource
from .base import Source as Source
from .base import as_source as as_source
from .file import FileSource as FileSource
from .memory import ArraySource as ArraySource
from .mic import MicrophoneSource as MicrophoneSource
from .tcp import TcpSource as TcpSource

__all__ = ["ArraySource", "FileSource", "IterableSource", "MicrophoneSource", "Source", "TcpSource", "as_source"]
