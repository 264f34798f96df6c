"""deeptone-async: asyncio-native real-time voice analytics with open ONNX models.

>>> from deeptone_async import Deeptone
>>> engine = Deeptone()
>>> async for result in engine.process_stream(source, models=[engine.models.Vad]):
...     print(result["timestamp"], result["results"]["vad"])

The errors are imported with the package; the engine and the other names below (numpy,
ONNX Runtime, soundfile behind them) when one of them is first used, so that
``import deeptone_async`` and the command line's ``--help`` start quickly.
"""

import typing

from ._lazy import lazy_names as _lazy_names
from ._version import __version__ as __version__
from .errors import AudioFormatError as AudioFormatError
from .errors import ChannelKeyError as ChannelKeyError
from .errors import DecodeError as DecodeError
from .errors import DeeptoneError as DeeptoneError
from .errors import DeviceError as DeviceError
from .errors import ModelError as ModelError
from .errors import NotEnoughSpeechError as NotEnoughSpeechError
from .errors import ParameterError as ParameterError
from .errors import ServerError as ServerError
from .errors import SignatureVersionError as SignatureVersionError
from .errors import SinkError as SinkError
from .errors import SourceError as SourceError
from .errors import UnknownModelError as UnknownModelError
from .errors import VoiceSignatureError as VoiceSignatureError

if typing.TYPE_CHECKING:
    from .audio import AudioFormat as AudioFormat
    from .engine import DEFAULT_VOLUME_THRESHOLD as DEFAULT_VOLUME_THRESHOLD
    from .engine import Deeptone as Deeptone
    from .limits import Limits as Limits
    from .pipeline import ResultStream as ResultStream
    from .pipeline import StreamStats as StreamStats
    from .results import AnalysisResult as AnalysisResult
    from .spec import ModelSpec as ModelSpec

__all__ = [
    "DEFAULT_VOLUME_THRESHOLD",
    "AnalysisResult",
    "AudioFormat",
    "AudioFormatError",
    "ChannelKeyError",
    "DecodeError",
    "Deeptone",
    "DeeptoneError",
    "DeviceError",
    "Limits",
    "ModelError",
    "ModelSpec",
    "ParameterError",
    "ResultStream",
    "ServerError",
    "SinkError",
    "SourceError",
    "StreamStats",
    "UnknownModelError",
    "NotEnoughSpeechError",
    "SignatureVersionError",
    "VoiceSignatureError",
    "__version__",
]

_LAZY = {
    "AudioFormat": ".audio",
    "DEFAULT_VOLUME_THRESHOLD": ".engine",
    "Deeptone": ".engine",
    "Limits": ".limits",
    "ResultStream": ".pipeline",
    "StreamStats": ".pipeline",
    "AnalysisResult": ".results",
    "ModelSpec": ".spec",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
