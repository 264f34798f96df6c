"""The worker side of a batch run: one engine per worker process (or Ray actor), one ONNX
thread, analysing a chunk of files and writing their rows as Parquet parts.

Imports here stay light (no numpy, ONNX Runtime) until :class:`Worker` is built, so that
a worker can pin its math libraries to one thread before they load.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._options import BatchOptions
from ._tables import FileRecord, result_tables, schemas

if TYPE_CHECKING:
    import pyarrow as pa

    from ..sync import Deeptone

__all__ = ["ChunkResult", "Job", "Worker", "error_parts"]

#: Rows a worker holds before writing a part: with the file being analysed, this bounds
#: its memory (about 100 bytes a row in Arrow).
MAX_PART_ROWS = 500_000
#: Libraries whose thread pools a worker pins to one thread: one core per worker.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Job:
    """What every worker needs: the options, the output and its format.

    Attributes:
        options: ``process_file``'s options.
        fmt: ``"parquet"`` or ``"jsonl"``.
        output: the Parquet dataset's folder (a path or a pyarrow filesystem URI); unused
            for JSONL, which the driver writes.
        raw: the raw-value labels (the ``raw_<label>`` columns), None without raw values.
        threads: ONNX Runtime threads per model session.
    """

    options: BatchOptions
    fmt: str
    output: str
    raw: tuple[str, ...] | None
    threads: int = 1


@dataclass
class ChunkResult:
    """A chunk's outcome: a record per file, and for JSONL a document (one line) per file."""

    records: list[FileRecord]
    lines: list[str]


def error_parts(exc: BaseException) -> tuple[str, str]:
    """``(error type, message)`` of one failed file, the message without its name."""
    from ..cli._files import describe

    kind, _, message = describe(exc).partition(": ")
    return kind, message


def open_filesystem(location: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path in it)`` for a local path or a URI (``s3://...``)."""
    from pyarrow import fs

    if "://" in location:
        found: tuple[Any, str] = fs.FileSystem.from_uri(location)
        return found
    return fs.LocalFileSystem(), str(Path(location).resolve())


class Worker:
    """One engine analysing chunks of files; build one per process (or actor).

    Construction blocks while the models load and pins the process's numeric libraries
    to ``job.threads`` threads (before numpy and ONNX Runtime are first imported).
    """

    def __init__(self, job: Job) -> None:
        for name in _THREAD_VARIABLES:
            os.environ.setdefault(name, str(job.threads))
        from ..sync import Deeptone

        self.job = job
        self.engine: Deeptone = Deeptone(threads_per_model=job.threads, max_inference_threads=1)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._schema = schemas(job.raw)
        self._fs: Any = None
        self._root = ""
        if job.fmt == "parquet":
            self._fs, self._root = open_filesystem(job.output)

    def run(self, files: Sequence[str]) -> ChunkResult:
        """Analyse ``files`` in turn; blocks. A file that fails becomes an error record.

        For Parquet its rows are written as parts (``results/part-<id>.parquet``, ...)
        before this returns; the driver then commits the records (the ``files`` table).
        Rows of short files are gathered into shared parts of up to :data:`MAX_PART_ROWS`;
        a file with more than :data:`SPILL_ROWS` rows is written out as it is analysed,
        into a part of its own, so a worker's memory stays bounded whatever the file's length.

        Raises:
            OSError: a part could not be written (the whole chunk is then retried or
                reported by the driver).
        """
        out = ChunkResult([], [])
        pending: list[tuple[int, list[dict[str, pa.Table]]]] = []  # (record index, its tables)
        rows = 0
        for name in files:
            spill = _Spill(self, name) if self.job.fmt == "parquet" else None
            try:
                record, result = self.analyse(name, spill)
            except BaseException:
                if spill is not None:
                    spill.abort()
                raise
            out.records.append(record)
            if self.job.fmt == "jsonl":
                doc = {"file": name, **result} if result is not None else {
                    "file": name, "error": {"type": record.error_type, "message": record.error},
                }
                out.lines.append(json.dumps(doc))
                continue
            assert spill is not None
            if result is None:
                spill.abort()
                continue
            tables = [*spill.held, result_tables(name, result, self._schema)]
            if spill.part is not None:  # written as it came: finish its own part
                out.records[-1] = _with_part(record, spill.finish(tables[-1]))
                continue
            pending.append((len(out.records) - 1, tables))
            rows += sum(t["results"].num_rows for t in tables)
            if rows >= MAX_PART_ROWS:
                self._flush(pending, out.records)
                pending, rows = [], 0
        if pending:
            self._flush(pending, out.records)
        return out

    def analyse(self, name: str, spill: _Spill | None = None) -> tuple[FileRecord, dict[str, Any] | None]:
        """One file's record and result (None when it failed); blocks, never raises for
        the file's own faults (missing, not audio, a channel it lacks...). With ``spill``,
        the time series goes to it as it is made (the result's time series stay empty)."""
        from ..cli._inputs import RAW_SUFFIXES, truncation

        start = time.perf_counter()
        o = self.job.options
        frames = [0]
        try:
            with _local_copy(name) as path:
                expected = truncation(path)
                rate, channels = (expected.sample_rate, _channels(path)) if expected else (16_000, 1)
                if expected is None and path.suffix.lower() not in RAW_SUFFIXES:
                    rate = 0  # did not open: process_file reports why
                result = self.engine.process_file(
                    path, list(o.models) if o.models is not None else None, o.output_period,
                    channel=o.channel,
                    include_summary=o.include_summary or self.job.fmt == "parquet",
                    include_transitions=o.include_transitions,
                    include_raw_values=o.include_raw_values,
                    use_chunking=o.use_chunking,
                    volume_threshold=o.volume_threshold,
                    progress=lambda done, total: frames.__setitem__(0, done),
                    on_time_series=spill.take if spill is not None else None,
                )
        except Exception as exc:  # one bad file is an error record and the others go on
            kind, message = error_parts(exc)
            return FileRecord(name, "error", kind, message, elapsed_s=time.perf_counter() - start, worker=self.name), None
        if self.job.fmt == "jsonl" and not o.include_summary:
            for entry in result["channels"].values():
                entry.pop("summary", None)
        warning = expected.check(frames[0]) if expected else None
        record = FileRecord(
            name, "ok", warning=warning, duration_s=frames[0] / rate if rate else None, channels=channels,
            sample_rate=rate or None, elapsed_s=time.perf_counter() - start, worker=self.name,
        )
        return record, dict(result)

    def _flush(self, pending: list[tuple[int, list[dict[str, pa.Table]]]], records: list[FileRecord]) -> None:
        import pyarrow as pa

        part = uuid.uuid4().hex
        for table in ("results", "summary", "transitions"):
            if table == "transitions" and not self.job.options.include_transitions:
                continue
            write_part(self._fs, self._root, table, part, pa.concat_tables([t[table] for _, ts in pending for t in ts]))
        for index, _ in pending:
            records[index] = _with_part(records[index], part)


#: Rows of one file held in memory before they are written out as they come (a part of
#: the file's own): about 100 bytes a row in Arrow, so ~10 MB.
SPILL_ROWS = 100_000


class _Spill:
    """One file's time-series rows as ``process_file`` makes them (``on_time_series``):
    held until :data:`SPILL_ROWS`, then streamed into a part of the file's own through a
    Parquet writer (one row group per batch), so memory stays bounded on long files.
    Runs on the engine's event loop (the worker has nothing else on it)."""

    def __init__(self, worker: Worker, name: str) -> None:
        self.worker, self.name = worker, name
        self.held: list[dict[str, pa.Table]] = []
        self.rows = 0
        self.part: str | None = None
        self._writer: Any = None
        self._tmp = self._final = ""

    def take(self, channel: str, items: list[dict[str, Any]]) -> None:
        tables = result_tables(self.name, {"channels": {channel: {"time_series": items}}}, self.worker._schema)
        if self._writer is None:
            self.held.append(tables)
            self.rows += tables["results"].num_rows
            if self.rows < SPILL_ROWS:
                return
            writer = self._open()
            for held in self.held:
                writer.write_table(held["results"])
            self.held = []
        else:
            self._writer.write_table(tables["results"])

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        w = self.worker
        self.part = uuid.uuid4().hex
        self._tmp, self._final = _part_paths(w._fs, w._root, "results", self.part)
        self._writer = pq.ParquetWriter(self._tmp, w._schema["results"], filesystem=w._fs, compression="zstd")
        return self._writer

    def finish(self, last: dict[str, pa.Table]) -> str:
        """Write ``last`` (the file's summary and transitions) and move the part into place."""
        assert self.part is not None and self._writer is not None
        w = self.worker
        self._writer.close()
        w._fs.move(self._tmp, self._final)
        for table in ("summary", "transitions"):
            if table != "transitions" or w.job.options.include_transitions:
                write_part(w._fs, w._root, table, self.part, last[table])
        return self.part

    def abort(self) -> None:
        """The file failed: drop what was written (its part was never referenced)."""
        self.held = []
        if self._writer is not None:
            self._writer.close()
            self.worker._fs.delete_file(self._tmp)
            self._writer = None


def _with_part(record: FileRecord, part: str) -> FileRecord:
    from dataclasses import replace

    return replace(record, part=part)


def write_part(fs: Any, root: str, table_name: str, part: str, table: pa.Table) -> None:
    """Write ``table`` as ``root/table_name/part-<part>.parquet``, atomically where the
    filesystem renames atomically: written under a hidden name, then moved into place."""
    import pyarrow.parquet as pq

    tmp, final = _part_paths(fs, root, table_name, part)
    pq.write_table(table, tmp, filesystem=fs, compression="zstd")
    fs.move(tmp, final)


def _part_paths(fs: Any, root: str, table_name: str, part: str) -> tuple[str, str]:
    """``(hidden name to write under, final name)`` of a part; makes its table's folder.
    ``ParquetStore.tidy`` removes hidden leftovers of a worker that died while writing."""
    folder = f"{root}/{table_name}"
    fs.create_dir(folder, recursive=True)
    return f"{folder}/.part-{part}.parquet.tmp", f"{folder}/part-{part}.parquet"


def _channels(path: Path) -> int:
    import soundfile as sf

    return int(sf.info(str(path)).channels)


class _local_copy:
    """The file as a local path: itself, or for a URI (``s3://``, ``gs://``...) a temporary
    copy made through pyarrow's filesystems and removed afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tmp: str | None = None

    def __enter__(self) -> Path:
        if "://" not in self.name or self.name.startswith("file://"):
            return Path(self.name.removeprefix("file://"))
        from pyarrow import fs

        source, path = fs.FileSystem.from_uri(self.name)
        handle, self._tmp = tempfile.mkstemp(suffix=Path(path).suffix, prefix="deeptone-")
        with os.fdopen(handle, "wb") as out, source.open_input_stream(path) as src:
            while block := src.read(1 << 20):
                out.write(block)
        return Path(self._tmp)

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            os.unlink(self._tmp)


# -- the process pool's side ------------------------------------------------------------

_worker: Worker | None = None


def init_process(job: Job) -> None:
    """A pool process's initializer: ignore Ctrl-C (the driver stops the pool) and build
    the process's engine."""
    import signal

    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Worker(job)


def run_chunk(files: Sequence[str]) -> ChunkResult:
    """A pool task: analyse ``files`` with this process's engine."""
    if _worker is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("run_chunk called outside a batch worker process")
    return _worker.run(files)
