"""deeptone-async: asyncio-native real-time voice analytics with open ONNX models.

>>> from deeptone_async import Deeptone
>>> engine = Deeptone()
>>> async for result in engine.process_stream(source, models=[engine.models.Vad]):
...     print(result["timestamp"], result["results"]["vad"])
"""

from ._version import __version__ as __version__
from .audio import AudioFormat as AudioFormat
from .engine import DEFAULT_VOLUME_THRESHOLD as DEFAULT_VOLUME_THRESHOLD
from .engine import Deeptone as Deeptone
from .errors import AudioFormatError as AudioFormatError
from .errors import ChannelKeyError as ChannelKeyError
from .errors import DecodeError as DecodeError
from .errors import DeeptoneError as DeeptoneError
from .errors import DeviceError as DeviceError
from .errors import ModelError as ModelError
from .errors import ParameterError as ParameterError
from .errors import ServerError as ServerError
from .errors import SinkError as SinkError
from .errors import SourceError as SourceError
from .errors import UnknownModelError as UnknownModelError
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
    "ModelError",
    "ModelSpec",
    "ParameterError",
    "ResultStream",
    "ServerError",
    "SinkError",
    "SourceError",
    "StreamStats",
    "UnknownModelError",
    "__version__",
]
