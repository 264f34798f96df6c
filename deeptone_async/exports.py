"""Segments to the formats other tools read: RTTM, Praat TextGrid, SRT, WebVTT, Audacity.

Each format is written by a maintained library, imported when first used:

- RTTM through pyannote.core (``Annotation.write_rttm``; :func:`to_annotation` gives the
  ``Annotation`` itself, for pyannote.metrics and notebooks);
- Praat TextGrid through praatio (one interval tier per model and channel);
- SRT and WebVTT through webvtt-py;
- Audacity labels through this package's :func:`~deeptone_async.sinks.audacity_labels`
  (a tab-separated text no library writes).

``pip install 'deeptone-async[exports]'`` installs the three libraries; a missing one is
an ``ImportError`` naming that extra. Every function here is synchronous and pure but for
:func:`write`, which blocks while it writes the file.

Labels: with segments of one model a cue or RTTM name is the label (``speech``); with
several models it is ``model:label`` (``gender:female``). TextGrid tiers are named by model,
and Audacity labels are always ``model: label``, as the project's label sink writes them.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ParameterError
from .segments import Segment, Smoothing, segments

if TYPE_CHECKING:
    from pyannote.core import Annotation

__all__ = [
    "FORMATS",
    "audacity",
    "export",
    "result_segments",
    "rttm",
    "srt",
    "textgrid",
    "to_annotation",
    "webvtt",
    "write",
]

#: Export format -> file extension.
FORMATS = {"rttm": ".rttm", "textgrid": ".TextGrid", "srt": ".srt", "vtt": ".vtt", "audacity": ".txt"}


def _need(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{package} is needed for this export: pip install 'deeptone-async[exports]' (or pip install {package})"
        ) from exc


def result_segments(
    result: Mapping[str, Any],
    models: Sequence[str] | None = None,
    *,
    smoothing: Smoothing | Mapping[str, Smoothing] | None = None,
    channel: int | str | None = None,
) -> list[Segment]:
    """Every model's segments of a file result, in channel, model and time order.

    Args:
        result: a :meth:`~deeptone_async.Deeptone.process_file` result (with transitions
            for 64 ms resolution; its time series otherwise).
        models: output keys (default: every model in the result).
        smoothing: one :class:`~deeptone_async.segments.Smoothing` for all, or one per
            model key (default: the defaults, each model's labels but silence, no_speech and
            unknown).
        channel: one channel (default: all).

    Raises:
        ParameterError: an unknown model or channel.
    """
    channels = result.get("channels")
    if not isinstance(channels, Mapping) or not channels:
        raise ParameterError("result must be a process_file / process_audio_bytes result")
    first = next(iter(channels.values()))
    found = list(first.get("transitions") or {}) or list((first.get("time_series") or [{}])[0].get("results", {}))
    out: list[Segment] = []
    for key in models or found:
        rules = smoothing.get(key) if isinstance(smoothing, Mapping) else smoothing
        out += segments(result, key, smoothing=rules, channel=channel)
    out.sort(key=lambda s: (int(s.channel) if s.channel.isdigit() else 0, s.channel))
    return out


def _name(seg: Segment, several: bool) -> str:
    return f"{seg.model}:{seg.label}" if several else seg.label


def _several_models(segs: Sequence[Segment]) -> bool:
    return len({s.model for s in segs}) > 1


def to_annotation(segs: Iterable[Segment], uri: str | None = None) -> Annotation:
    """A ``pyannote.core.Annotation`` of the segments (times in seconds; one track each).

    Raises:
        ImportError: pyannote.core is not installed.
    """
    items = list(segs)
    return _annotation(items, uri, _several_models(items))


def _annotation(items: Sequence[Segment], uri: str | None, several: bool) -> Annotation:
    core = _need("pyannote.core", "pyannote.core")
    annotation = core.Annotation(uri=uri)
    for k, seg in enumerate(items):
        annotation[core.Segment(seg.start, seg.end), k] = _name(seg, several)
    return annotation


def _file_id(name: str) -> str:
    stem = Path(name).stem if name else "audio"
    return "_".join(stem.split()) or "audio"


def rttm(segs: Iterable[Segment], file_id: str = "audio") -> str:
    """RTTM ``SPEAKER`` lines: file id, start and duration in seconds, the label as name.

    RTTM has no spaces in a field, so spaces in ``file_id`` become ``_``, and pyannote.core
    writes channel 1 for every line: segments of several channels get the file id
    ``<id>_ch<N>``.

    Raises:
        ImportError: pyannote.core is not installed.
    """
    import io

    items = list(segs)
    base = _file_id(file_id)
    by_channel: dict[str, list[Segment]] = {}
    for seg in items:
        by_channel.setdefault(seg.channel, []).append(seg)
    several = _several_models(items)
    buf = io.StringIO()
    for ch, group in by_channel.items():
        uri = base if len(by_channel) == 1 else f"{base}_ch{ch}"
        _annotation(group, uri, several).write_rttm(buf)
    return buf.getvalue()


def textgrid(segs: Iterable[Segment], duration_ms: int | None = None) -> str:
    """A Praat TextGrid (long text form): one interval tier per model (``vad``), or per
    model and channel (``vad ch1``) when there are several channels; gaps are empty
    intervals, as Praat expects.

    Args:
        duration_ms: the end of the grid (default: the last segment's end).

    Raises:
        ImportError: praatio is not installed.
    """
    tg_mod = _need("praatio.textgrid", "praatio")
    items = list(segs)
    end = max([s.end for s in items] + [0.0 if duration_ms is None else duration_ms / 1000.0]) or 0.001
    channels = {s.channel for s in items}
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    for seg in items:
        name = seg.model if len(channels) == 1 else f"{seg.model} ch{seg.channel}"
        tiers.setdefault(name, []).append((seg.start, seg.end, seg.label))
    grid = tg_mod.Textgrid(0.0, end)
    for name, entries in tiers.items():
        grid.addTier(tg_mod.IntervalTier(name, entries, 0.0, end))
    with tempfile.TemporaryDirectory() as tmp:  # praatio writes files; its string form is private
        path = os.path.join(tmp, "grid.TextGrid")
        grid.save(path, format="long_textgrid", includeBlankSpaces=True)
        with open(path, encoding="utf-8") as fh:
            return fh.read()


def _captions(segs: Iterable[Segment]) -> Any:
    vtt = _need("webvtt", "webvtt-py")
    items = sorted(segs, key=lambda s: (s.start_ms, s.end_ms))
    several = _several_models(items)
    doc = vtt.WebVTT()
    for seg in items:
        start = str(vtt.models.Timestamp.from_seconds(seg.start))
        end = str(vtt.models.Timestamp.from_seconds(seg.end))
        doc.captions.append(vtt.Caption(start, end, _name(seg, several)))
    return doc


def webvtt(segs: Iterable[Segment]) -> str:
    """A WebVTT subtitle track, one cue per segment (in start order) with its label.

    Raises:
        ImportError: webvtt-py is not installed.
    """
    return str(_captions(segs).content) + "\n"


def srt(segs: Iterable[Segment]) -> str:
    """An SRT subtitle track, one numbered cue per segment with its label.

    Raises:
        ImportError: webvtt-py is not installed.
    """
    import io

    buf = io.StringIO()
    _captions(segs).write(buf, format="srt")
    return buf.getvalue()


def audacity(segs: Iterable[Segment]) -> str:
    """An Audacity label track (``start<TAB>end<TAB>model: label`` in seconds), as
    :func:`~deeptone_async.sinks.audacity_labels` writes transitions."""
    from .sinks.files import audacity_labels

    track: dict[str, list[dict[str, Any]]] = {}
    for seg in sorted(segs, key=lambda s: (s.start_ms, s.end_ms)):
        track.setdefault(seg.model, []).append(seg.to_dict())
    return audacity_labels(track)


def export(segs: Iterable[Segment], format: str, *, file_id: str = "audio", duration_ms: int | None = None) -> str:
    """Segments as text in ``format`` (one of :data:`FORMATS`).

    Raises:
        ParameterError: an unknown format.
        ImportError: the format's library is not installed.
    """
    if format == "rttm":
        return rttm(segs, file_id)
    if format == "textgrid":
        return textgrid(segs, duration_ms)
    if format == "srt":
        return srt(segs)
    if format == "vtt":
        return webvtt(segs)
    if format == "audacity":
        return audacity(segs)
    raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")


def write(segs: Iterable[Segment], path: str | os.PathLike[str], format: str | None = None, **kwargs: Any) -> Path:
    """Write segments to ``path`` in ``format`` (default: from the extension). Blocks.

    Raises:
        ParameterError: no format given and the extension is not one of :data:`FORMATS`'s.
        ImportError: the format's library is not installed.
        OSError: the file cannot be written.
    """
    target = Path(path)
    if format is None:
        by_suffix = {v.lower(): k for k, v in FORMATS.items()}
        format = by_suffix.get(target.suffix.lower())
        if format is None:
            raise ParameterError(f"cannot tell the format of {str(target)!r}: use one of {', '.join(FORMATS.values())}")
    kwargs.setdefault("file_id", target.stem)
    target.write_text(export(segs, format, **kwargs), encoding="utf-8")
    return target
