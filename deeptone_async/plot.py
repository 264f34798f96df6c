"""A timeline picture of a result: loudness on top, one coloured band per model, the confidence.

``timeline(result)`` draws, for one channel:

- the loudness (RMS in dBFS per time bin) when the audio is given (``audio=`` a path or a
  16 kHz array); a result holds no audio;
- one row per model: its labels as coloured bands (a legend per row names them), and its
  confidence as a black line on the row's 0-1 scale.

Readable from seconds to hours: when a model has more label runs than ``max_bands``, time
is cut into ``max_bands`` bins and each bin shows the label covering most of it, with the
mean confidence (the title says so).

Static images use matplotlib (``pip install 'deeptone-async[plot]'``) through its
object-oriented API (no pyplot, no GUI backend, safe in threads); an interactive HTML page
uses plotly (``pip install 'deeptone-async[html]'``). Both are imported at the first call
and a missing one is an ``ImportError`` naming the extra. Every function blocks while it
draws (and :func:`save` while it writes; reading ``audio`` from a file reads it in blocks).
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from .errors import ParameterError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COLORS", "Track", "save", "timeline", "timeline_html", "to_png", "tracks"]

#: Colours of the bundled models' labels; other labels take matplotlib's tab10 in turn.
COLORS = {
    "speech": "#1f77b4",
    "no_speech": "#d9d9d9",
    "silence": "#f5f5f5",
    "unknown": "#9e9e9e",
    "music": "#9467bd",
    "other": "#8c564b",
    "male": "#17becf",
    "female": "#e377c2",
    "high": "#d62728",
    "neutral": "#bcbd22",
    "low": "#2ca02c",
    "happy": "#ff7f0e",
    "irritated": "#d62728",
    "tired": "#7f7f7f",
}
_TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
LOUDNESS_FLOOR_DB = -80.0
SR = 16_000

FloatArray = npt.NDArray[np.float64]


def _need(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this plot: pip install 'deeptone-async[{extra}]'") from exc


@dataclass
class Track:
    """One model's row: label runs (possibly binned) and its confidence curve, times in s."""

    model: str
    starts: FloatArray
    ends: FloatArray
    labels: list[str]
    conf_t: FloatArray
    conf: FloatArray
    binned: bool


def _runs(entry: Mapping[str, Any], model: str) -> tuple[FloatArray, FloatArray, list[str], FloatArray, FloatArray]:
    transitions = (entry.get("transitions") or {}).get(model)
    series = entry.get("time_series") or []
    if series and model in series[0].get("results", {}):
        t = np.array([item["timestamp"] for item in series], np.float64) / 1000.0
        step = float(t[1] - t[0]) if len(t) > 1 else 0.064
        conf = np.array([item["results"][model]["confidence"] for item in series], np.float64)
        conf_t = t + step / 2
    else:
        conf_t = conf = np.zeros(0)
    if transitions:
        starts = np.array([x["timestamp_start"] for x in transitions], np.float64) / 1000.0
        ends = np.array([x["timestamp_end"] for x in transitions], np.float64) / 1000.0
        labels = [str(x["result"]) for x in transitions]
        if not len(conf):
            conf_t = (starts + ends) / 2
            conf = np.array([x["confidence"] for x in transitions], np.float64)
        return starts, ends, labels, conf_t, conf
    if not series:
        raise ParameterError(f"the result has neither transitions nor a time series for {model!r}")
    if model not in series[0].get("results", {}):
        raise ParameterError(f"no model {model!r} in the result; it has {', '.join(series[0].get('results', {}))}")
    starts = conf_t - step / 2
    return starts, starts + step, [str(item["results"][model]["result"]) for item in series], conf_t, conf


def _bin(starts: FloatArray, ends: FloatArray, labels: list[str], bins: int) -> tuple[FloatArray, FloatArray, list[str]]:
    """The label covering most of each of ``bins`` equal time bins (runs are contiguous)."""
    edges = np.linspace(starts[0], ends[-1], bins + 1)
    names = sorted(set(labels))
    index = np.array([names.index(x) for x in labels])
    bounds = np.concatenate([starts[:1], ends])
    cover = np.empty((len(names), bins))
    for k in range(len(names)):
        cum = np.concatenate([[0.0], np.cumsum(np.where(index == k, ends - starts, 0.0))])
        at = np.interp(edges, bounds, cum)
        cover[k] = np.diff(at)
    best = cover.argmax(axis=0)
    return edges[:-1], edges[1:], [names[int(b)] for b in best]


def _bin_curve(t: FloatArray, y: FloatArray, lo: float, hi: float, bins: int) -> tuple[FloatArray, FloatArray]:
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
    total = np.bincount(which, weights=y, minlength=bins)
    count = np.bincount(which, minlength=bins)
    keep = count > 0
    return ((edges[:-1] + edges[1:]) / 2)[keep], total[keep] / count[keep]


def _channel(result: Mapping[str, Any], channel: int | str | None) -> tuple[str, Mapping[str, Any]]:
    channels = result.get("channels")
    if not isinstance(channels, Mapping) or not channels:
        raise ParameterError("result must be a process_file / process_audio_bytes result")
    key = next(iter(channels)) if channel is None else str(channel)
    if key not in channels:
        raise ParameterError(f"no channel {channel!r} in the result; it has {', '.join(channels)}")
    return key, channels[key]


def tracks(
    result: Mapping[str, Any], models: Sequence[str] | None = None, *, channel: int | str | None = None, max_bands: int = 2000
) -> list[Track]:
    """The rows :func:`timeline` draws, binned when a model has more than ``max_bands`` runs.

    Raises:
        ParameterError: an unknown model or channel, or a result with neither transitions
            nor a time series.
    """
    _, entry = _channel(result, channel)
    found = list((entry.get("transitions") or {}) or ((entry.get("time_series") or [{}])[0].get("results", {})))
    out = []
    for model in models or found:
        starts, ends, labels, conf_t, conf = _runs(entry, model)
        binned = len(labels) > max_bands
        if binned:
            starts, ends, labels = _bin(starts, ends, labels, max_bands)
        if len(conf) > max_bands and len(ends):
            conf_t, conf = _bin_curve(conf_t, conf, float(starts[0]), float(ends[-1]), max_bands)
        out.append(Track(model, starts, ends, labels, conf_t, conf, binned))
    return out


def loudness(audio: str | os.PathLike[str] | npt.NDArray[Any], bins: int = 2000, sample_rate: int = SR) -> tuple[FloatArray, FloatArray]:
    """``(times in s, RMS in dBFS)`` of ``bins`` equal bins; a file is read in blocks (its
    first channel), so memory stays bounded. Blocks while it reads."""
    if isinstance(audio, np.ndarray):
        x = audio.astype(np.float64)
        x = x if x.ndim == 1 else x[:, 0]
        if np.issubdtype(audio.dtype, np.integer):
            x = x / float(np.iinfo(audio.dtype).max)
        n, sr = len(x), sample_rate
        blocks: Any = [x]
    else:
        import soundfile as sf

        info = sf.info(str(audio))
        n, sr = int(info.frames), int(info.samplerate)
        blocks = (b if b.ndim == 1 else b[:, 0] for b in sf.blocks(str(audio), blocksize=1 << 18, dtype="float64", always_2d=True))
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    energy = np.zeros(bins)
    pos = 0
    for block in blocks:
        which = np.searchsorted(edges, pos + np.arange(len(block)), side="right") - 1
        energy += np.bincount(np.clip(which, 0, bins - 1), weights=block**2, minlength=bins)
        pos += len(block)
    counts = np.maximum(np.diff(edges), 1)
    db = 10 * np.log10(np.maximum(energy / counts, 10 ** (LOUDNESS_FLOOR_DB / 10)))
    return (edges[:-1] + edges[1:]) / 2 / sr, db


def _colour(label: str, seen: dict[str, str]) -> str:
    if label not in seen:
        seen[label] = COLORS.get(label, _TAB10[len([k for k in seen if k not in COLORS]) % len(_TAB10)])
    return seen[label]


def timeline(
    result: Mapping[str, Any],
    models: Sequence[str] | None = None,
    *,
    audio: str | os.PathLike[str] | npt.NDArray[Any] | None = None,
    channel: int | str | None = None,
    title: str | None = None,
    width: float = 12.0,
    row_height: float = 1.1,
    dpi: int = 100,
    max_bands: int = 2000,
) -> Figure:
    """The timeline figure (a ``matplotlib.figure.Figure``, not attached to pyplot).

    Args:
        result: a :meth:`~deeptone_async.Deeptone.process_file` result (with transitions
            for 64 ms bands; its time series otherwise).
        models: output keys to draw (default: all in the result).
        audio: the analysed audio, for the loudness row (a path, or an array at 16 kHz).
        channel: the channel to draw (default: the first).
        title: the figure's title (default: the duration, and whether bands are binned).
        width, row_height: inches; the image is ``width * dpi`` pixels wide.
        max_bands: most bands per row before time is binned.

    Raises:
        ImportError: matplotlib is not installed.
        ParameterError: an unknown model or channel.
    """
    figure_mod = _need("matplotlib.figure", "plot")
    rows = tracks(result, models, channel=channel, max_bands=max_bands)
    has_audio = audio is not None
    n_rows = len(rows) + int(has_audio)
    fig = figure_mod.Figure(figsize=(width, 0.6 + row_height * max(1, n_rows)), dpi=dpi, layout="constrained")
    axes = fig.subplots(max(1, n_rows), 1, sharex=True, squeeze=False)[:, 0]
    end = max([float(r.ends[-1]) for r in rows if len(r.ends)] + [0.0])
    if has_audio:
        assert audio is not None
        t, db = loudness(audio)
        ax = axes[0]
        ax.fill_between(t, LOUDNESS_FLOOR_DB, db, color="#607d8b", linewidth=0)
        ax.set_ylim(LOUDNESS_FLOOR_DB, 0)
        ax.set_ylabel("dBFS", rotation=0, ha="right", va="center")
        ax.set_title("loudness (RMS)", loc="left", fontsize=9)
        end = max(end, float(t[-1]) if len(t) else 0.0)
    colours: dict[str, str] = {}
    for ax, row in zip(axes[int(has_audio):], rows):
        for label in dict.fromkeys(row.labels):
            mask = np.array([x == label for x in row.labels])
            spans = list(zip(row.starts[mask], (row.ends - row.starts)[mask]))
            ax.broken_barh(spans, (0, 1), facecolors=_colour(label, colours), label=label, linewidth=0)
        if len(row.conf):
            ax.plot(row.conf_t, row.conf, color="black", linewidth=0.8, label="confidence")
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, 1])
        ax.set_ylabel(row.model, rotation=0, ha="right", va="center", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    axes[-1].set_xlim(0, end or 1.0)
    axes[-1].set_xlabel(_time_label(end))
    if end >= 600:
        axes[-1].xaxis.set_major_formatter(_minutes_formatter())
    binned = [r.model for r in rows if r.binned]
    fig.suptitle(title or _title(end, binned, max_bands), fontsize=11, x=0.01, ha="left")
    return cast("Figure", fig)


def _time_label(end: float) -> str:
    return "time (min:s)" if end >= 600 else "time (s)"


def _minutes_formatter() -> Any:
    ticker = _need("matplotlib.ticker", "plot")
    return ticker.FuncFormatter(lambda x, _pos: f"{int(x // 60)}:{int(x % 60):02d}")


def _title(end: float, binned: list[str], max_bands: int) -> str:
    text = f"{end:.1f} s" if end < 600 else f"{end / 60:.1f} min"
    if binned:
        text += f"; {', '.join(binned)} in {max_bands} bins (the label covering most of each, mean confidence)"
    return text


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (at its own dpi). Blocks while it renders."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def timeline_html(
    result: Mapping[str, Any],
    models: Sequence[str] | None = None,
    *,
    audio: str | os.PathLike[str] | npt.NDArray[Any] | None = None,
    channel: int | str | None = None,
    title: str | None = None,
    max_bands: int = 2000,
    include_plotlyjs: bool | str = True,
) -> str:
    """The timeline as an interactive plotly page (zoom, hover for label and confidence).

    ``include_plotlyjs=True`` embeds plotly.js (about 4.6 MB; the page works offline);
    ``"cdn"`` links it instead.

    Raises:
        ImportError: plotly is not installed.
        ParameterError: an unknown model or channel.
    """
    go = _need("plotly.graph_objects", "html")
    subplots = _need("plotly.subplots", "html")
    rows = tracks(result, models, channel=channel, max_bands=max_bands)
    has_audio = audio is not None
    names = (["loudness (dBFS)"] if has_audio else []) + [r.model for r in rows]
    fig = subplots.make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04, subplot_titles=names)
    if has_audio:
        assert audio is not None
        t, db = loudness(audio)
        fig.add_trace(go.Scatter(x=t, y=db, fill="tozeroy", mode="lines", line={"color": "#607d8b", "width": 0.5},
                                 name="loudness", showlegend=False), row=1, col=1)
    colours: dict[str, str] = {}
    shown: set[str] = set()
    end = 0.0
    for i, row in enumerate(rows, start=1 + int(has_audio)):
        for label in dict.fromkeys(row.labels):
            mask = np.array([x == label for x in row.labels])
            fig.add_trace(
                go.Bar(
                    x=(row.ends - row.starts)[mask], base=row.starts[mask], y=[0.5] * int(mask.sum()), width=1.0,
                    orientation="h", marker={"color": _colour(label, colours), "line": {"width": 0}}, name=label,
                    legendgroup=label, showlegend=label not in shown,
                    hovertemplate=f"{row.model}: {label}<br>%{{base:.2f}} s + %{{x:.2f}} s<extra></extra>",
                ),
                row=i, col=1,
            )
            shown.add(label)
        if len(row.conf):
            fig.add_trace(go.Scatter(x=row.conf_t, y=row.conf, mode="lines", line={"color": "black", "width": 1},
                                     name="confidence", legendgroup="confidence", showlegend="confidence" not in shown),
                          row=i, col=1)
            shown.add("confidence")
        fig.update_yaxes(range=[0, 1.02], row=i, col=1)
        end = max(end, float(row.ends[-1]) if len(row.ends) else 0.0)
    fig.update_layout(barmode="overlay", bargap=0, title=title or _title(end, [r.model for r in rows if r.binned], max_bands),
                      height=150 + 130 * len(names), template="plotly_white")
    fig.update_xaxes(title_text="time (s)", row=len(names), col=1)
    return str(fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True))


def save(result: Mapping[str, Any], path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Draw the timeline into ``path``: ``.png``, ``.svg`` or ``.pdf`` with matplotlib,
    ``.html`` with plotly. ``kwargs`` go to :func:`timeline` / :func:`timeline_html`.
    Blocks while it draws and writes.

    Raises:
        ParameterError: another extension.
        ImportError: the library for that kind of file is not installed.
        OSError: the file cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".html":
        target.write_text(timeline_html(result, **kwargs), encoding="utf-8")
    elif suffix in (".png", ".svg", ".pdf"):
        timeline(result, **kwargs).savefig(target, format=suffix[1:])
    else:
        raise ParameterError(f"cannot tell how to draw {str(target)!r}: use .png, .svg, .pdf or .html")
    return target
