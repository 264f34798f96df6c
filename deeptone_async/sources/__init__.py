"""Audio sources: files, the microphone, TCP, in-memory audio and any iterable of chunks.

The sources are imported when first used (``deeptone_async.sources.MicrophoneSource``...),
so that the engine, which needs only the base protocol, does not import them all.
"""

import typing

from .._lazy import lazy_names as _lazy_names

if typing.TYPE_CHECKING:
    from .base import IterableSource as IterableSource
    from .base import Source as Source
    from .base import as_source as as_source
    from .file import FileSource as FileSource
    from .memory import ArraySource as ArraySource
    from .mic import MicrophoneSource as MicrophoneSource
    from .tcp import TcpSource as TcpSource

__all__ = ["ArraySource", "FileSource", "IterableSource", "MicrophoneSource", "Source", "TcpSource", "as_source"]

_LAZY = {
    "IterableSource": ".base",
    "Source": ".base",
    "as_source": ".base",
    "FileSource": ".file",
    "ArraySource": ".memory",
    "MicrophoneSource": ".mic",
    "TcpSource": ".tcp",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
