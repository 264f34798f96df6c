"""Results as tables: pandas DataFrames and Arrow tables, tidy (one row per result and model).

``pip install 'deeptone-async[tables]'`` installs pandas and pyarrow; each is imported by
the first function that needs it, and a missing one is an ``ImportError`` naming the extra.
Everything here is synchronous; nothing blocks on I/O.

Columns of :func:`to_pandas` / :func:`to_arrow`:

=============  ==================  ==================================================
column         dtype               meaning
=============  ==================  ==================================================
file           category            the ``file`` argument (or the mapping's key)
channel        int64               the channel number
timestamp_ms   int64               start of the result's period, ms
model          category            the model's output key (``vad``)
result         category            the label
confidence     float64             the model's confidence in it
raw_<label>    float64             mean probability of each label, with
                                   ``include_raw_values`` (NaN for another model's)
=============  ==================  ==================================================

:func:`summary_table` has ``file, channel, model, label, fraction`` (one row per label);
:func:`segments_table` has ``file, channel, model, label, start_ms, end_ms, duration_ms,
confidence``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ParameterError
from .segments import Segment

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["segments_table", "summary_table", "to_arrow", "to_pandas"]

_CATEGORIES = ("file", "model", "result")


def _need(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for tables: pip install 'deeptone-async[tables]' (or pip install {module})") from exc


def _named(results: Mapping[str, Any], file: str | None) -> list[tuple[str, Mapping[str, Any]]]:
    """``[(file, result)]`` from one result or a ``{file: result}`` mapping."""
    if "channels" in results:
        return [(file or "", results)]
    out = []
    for name, result in results.items():
        if not isinstance(result, Mapping) or "channels" not in result:
            raise ParameterError(f"expected a process_file result or a {{file: result}} mapping; {name!r} is neither")
        out.append((str(name), result))
    return out


def _long(results: Mapping[str, Any], file: str | None) -> tuple[dict[str, list[Any]], list[str]]:
    cols: dict[str, list[Any]] = {k: [] for k in ("file", "channel", "timestamp_ms", "model", "result", "confidence")}
    raw: dict[str, list[float]] = {}
    n = 0
    for name, result in _named(results, file):
        for channel, entry in result["channels"].items():
            for item in entry.get("time_series", []):
                raws = item.get("raw", {})
                for model, res in item["results"].items():
                    cols["file"].append(name)
                    cols["channel"].append(int(channel))
                    cols["timestamp_ms"].append(int(item["timestamp"]))
                    cols["model"].append(model)
                    cols["result"].append(res["result"])
                    cols["confidence"].append(float(res["confidence"]))
                    for label, p in raws.get(model, {}).items():
                        raw.setdefault(label, [float("nan")] * n).append(float(p))
                    n += 1
                    for values in raw.values():
                        if len(values) < n:
                            values.append(float("nan"))
    names = []
    for label, values in raw.items():
        cols[f"raw_{label}"] = values
        names.append(f"raw_{label}")
    return cols, names


def to_pandas(results: Mapping[str, Any], *, file: str | None = None) -> pd.DataFrame:
    """One row per result and model (the columns above).

    Args:
        results: a :meth:`~deeptone_async.Deeptone.process_file` result, or a mapping
            ``{file name: result}`` for several files.
        file: the ``file`` column for a single result (default ``""``).

    Raises:
        ImportError: pandas is not installed.
        ParameterError: ``results`` is neither a result nor a mapping of results.
    """
    pd = _need("pandas")
    cols, raw = _long(results, file)
    frame = pd.DataFrame(cols)
    types: dict[str, Any] = {"channel": "int64", "timestamp_ms": "int64", "confidence": "float64"}
    types |= dict.fromkeys(_CATEGORIES, "category")
    types |= dict.fromkeys(raw, "float64")
    return frame.astype(types)


def to_arrow(results: Mapping[str, Any], *, file: str | None = None) -> pa.Table:
    """:func:`to_pandas`'s table as a ``pyarrow.Table`` (dictionary-encoded categories), built
    without pandas.

    Raises:
        ImportError: pyarrow is not installed.
    """
    pa = _need("pyarrow")
    cols, raw = _long(results, file)
    types = {"channel": pa.int64(), "timestamp_ms": pa.int64(), "confidence": pa.float64()}
    types |= {k: pa.dictionary(pa.int32(), pa.string()) for k in _CATEGORIES}
    types |= {k: pa.float64() for k in raw}
    arrays = {k: pa.array(v, type=pa.string()).dictionary_encode() if k in _CATEGORIES else pa.array(v, type=types[k])
              for k, v in cols.items()}
    return pa.table(arrays)


def summary_table(results: Mapping[str, Any], *, file: str | None = None) -> pd.DataFrame:
    """Each label's share of the time: ``file, channel, model, label, fraction``.

    Needs results analysed with ``include_summary=True``.

    Raises:
        ImportError: pandas is not installed.
        ParameterError: a result without a summary.
    """
    pd = _need("pandas")
    rows = []
    for name, result in _named(results, file):
        for channel, entry in result["channels"].items():
            summary = entry.get("summary")
            if summary is None:
                raise ParameterError(f"{name or 'the result'} has no summary: analyse it with include_summary=True")
            for model, shares in summary.items():
                for key, fraction in shares.items():
                    rows.append((name, int(channel), model, key.removesuffix("_fraction"), float(fraction)))
    frame = pd.DataFrame(rows, columns=["file", "channel", "model", "label", "fraction"])
    return frame.astype({"file": "category", "channel": "int64", "model": "category", "label": "category", "fraction": "float64"})


def segments_table(segs: Iterable[Segment] | Mapping[str, Iterable[Segment]]) -> pd.DataFrame:
    """Segments as rows: ``file, channel, model, label, start_ms, end_ms, duration_ms, confidence``.

    Args:
        segs: segments, or ``{file name: segments}``.

    Raises:
        ImportError: pandas is not installed.
    """
    pd = _need("pandas")
    named = segs.items() if isinstance(segs, Mapping) else [("", segs)]
    rows = [
        (name, int(s.channel), s.model, s.label, s.start_ms, s.end_ms, s.duration_ms, s.confidence)
        for name, group in named
        for s in group
    ]
    frame = pd.DataFrame(rows, columns=["file", "channel", "model", "label", "start_ms", "end_ms", "duration_ms", "confidence"])
    return frame.astype({"file": "category", "channel": "int64", "model": "category", "label": "category",
                         "start_ms": "int64", "end_ms": "int64", "duration_ms": "int64", "confidence": "float64"})
