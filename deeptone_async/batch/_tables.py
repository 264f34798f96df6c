"""A file's result as Arrow tables in the batch output's fixed schemas (pure, synchronous).

Every part of a run has the same schema, whatever its files held, so a Parquet dataset of
many parts reads as one table: the raw-value columns are fixed by the run's models (the
union of their labels, null in another model's rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TABLES", "FileRecord", "files_schema", "raw_labels", "result_tables", "schemas"]

#: The tables of a Parquet output, each a folder of parts: ``files`` is written last and
#: marks its files done; ``transitions`` only with ``include_transitions``.
TABLES = ("results", "summary", "transitions", "files")


@dataclass(frozen=True)
class FileRecord:
    """One input's outcome: a row of the ``files`` table.

    Attributes:
        file: the path as given (or found under a directory argument).
        status: ``"ok"`` or ``"error"``.
        error_type: the exception's class name (``DecodeError``, ``FileNotFoundError``...).
        error: its message.
        warning: e.g. a WAV cut short (``truncated: read 2.00 s of the 6.00 s ...``).
        duration_s: audio seconds decoded (per channel).
        channels: the file's channels.
        sample_rate: its sample rate.
        elapsed_s: wall-clock seconds spent on it (decode and inference).
        part: the id of the parts holding its rows (``part-<id>.parquet``); None in JSONL.
        worker: ``host:pid`` of the process that analysed it.
    """

    file: str
    status: str
    error_type: str | None = None
    error: str | None = None
    warning: str | None = None
    duration_s: float | None = None
    channels: int | None = None
    sample_rate: int | None = None
    elapsed_s: float | None = None
    part: str | None = None
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_labels(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """The union of the models' labels, in order of first appearance (the raw columns)."""
    seen: dict[str, None] = {}
    for labels in label_sets:
        seen.update(dict.fromkeys(labels))
    return list(seen)


def schemas(raw: Sequence[str] | None) -> dict[str, pa.Schema]:
    """The schema of each table; ``raw`` the raw-value labels (None: no raw columns)."""
    import pyarrow as pa

    s, i64, f64 = pa.string(), pa.int64(), pa.float64()
    results = [("file", s), ("channel", i64), ("timestamp_ms", i64), ("model", s), ("result", s), ("confidence", f64)]
    results += [(f"raw_{label}", f64) for label in raw or ()]
    return {
        "results": pa.schema(results),
        "summary": pa.schema([("file", s), ("channel", i64), ("model", s), ("label", s), ("fraction", f64)]),
        "transitions": pa.schema([
            ("file", s), ("channel", i64), ("model", s), ("start_ms", i64), ("end_ms", i64), ("result", s), ("confidence", f64),
        ]),
        "files": files_schema(),
    }


def files_schema() -> pa.Schema:
    import pyarrow as pa

    s = pa.string()
    return pa.schema([
        ("file", s), ("status", s), ("error_type", s), ("error", s), ("warning", s), ("duration_s", pa.float64()),
        ("channels", pa.int32()), ("sample_rate", pa.int32()), ("elapsed_s", pa.float64()), ("part", s), ("worker", s),
    ])


def result_tables(name: str, result: Mapping[str, Any], schema: Mapping[str, pa.Schema]) -> dict[str, pa.Table]:
    """``result`` (a ``process_file`` result) as rows of the ``results``, ``summary`` and
    ``transitions`` tables, the ``file`` column set to ``name``.

    Confidences and raw values are the result's own numbers (4 decimals); a raw value of a
    label the row's model does not have is null.
    """
    import pyarrow as pa

    raw_names = [f.name[4:] for f in schema["results"] if f.name.startswith("raw_")]
    rows: dict[str, list[Any]] = {f.name: [] for f in schema["results"]}
    summary: dict[str, list[Any]] = {f.name: [] for f in schema["summary"]}
    trans: dict[str, list[Any]] = {f.name: [] for f in schema["transitions"]}
    for channel_key, entry in result["channels"].items():
        channel = int(channel_key)
        for item in entry.get("time_series", ()):
            raws = item.get("raw", {})
            for model, res in item["results"].items():
                rows["file"].append(name)
                rows["channel"].append(channel)
                rows["timestamp_ms"].append(int(item["timestamp"]))
                rows["model"].append(model)
                rows["result"].append(res["result"])
                rows["confidence"].append(float(res["confidence"]))
                probs = raws.get(model, {})
                for label in raw_names:
                    p = probs.get(label)
                    rows[f"raw_{label}"].append(None if p is None or math.isnan(p) else float(p))
        for model, shares in (entry.get("summary") or {}).items():
            for key, fraction in shares.items():
                for col, value in zip(summary, (name, channel, model, key.removesuffix("_fraction"), float(fraction))):
                    summary[col].append(value)
        for model, runs in (entry.get("transitions") or {}).items():
            for run in runs:
                values = (name, channel, model, run["timestamp_start"], run["timestamp_end"], run["result"], run["confidence"])
                for col, value in zip(trans, values):
                    trans[col].append(value)
    return {
        "results": pa.table(rows, schema=schema["results"]),
        "summary": pa.table(summary, schema=schema["summary"]),
        "transitions": pa.table(trans, schema=schema["transitions"]),
    }
