"""The driver of a batch run: find the inputs, skip what is done, hand chunks of files to a
process pool (or a Ray cluster), commit what comes back and show the progress."""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ._options import FORMATS, BatchOptions
from ._store import JsonlStore, ParquetStore
from ._tables import FileRecord, raw_labels
from ._work import ChunkResult, Job, init_process, run_chunk

__all__ = ["BatchReport", "analyse", "chunk_files", "resolve_inputs"]

#: Most files in one chunk (one task of a worker, one part of each table).
MAX_CHUNK_FILES = 32


@dataclass
class BatchReport:
    """What a run did.

    Attributes:
        analysed: files analysed by this run.
        failed: this run's files that failed (their error records are in the output).
        skipped: files already in the output (``resume``), not analysed again.
        skipped_failed: how many of those had failed before.
        audio_s: seconds of audio analysed by this run (per channel).
        elapsed_s: wall-clock seconds of the run.
        failures: this run's error records.
        output: where the results are.
    """

    output: str
    analysed: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_failed: int = 0
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    failures: list[FileRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No file in the output failed (this run's or an earlier one's)."""
        return self.failed == 0 and self.skipped_failed == 0


def resolve_inputs(arguments: Iterable[str], manifests: Iterable[str | os.PathLike[str]] = ()) -> tuple[list[str], list[str]]:
    """The files named by ``arguments`` and ``manifests``, and warnings; blocks on I/O.

    An argument is a file, a directory (searched recursively for audio files, as
    ``deeptone-async file`` searches: :func:`deeptone_async.cli._inputs.expand`), a glob
    pattern (``"calls/**/*.wav"``, ``**`` recursive) or a URI (``s3://bucket/a.wav``,
    read through pyarrow's filesystems). A manifest is a text file with one path per line
    (``#`` comments), or a CSV file whose ``path`` column (else its first column) names
    them; relative paths are relative to the manifest's folder. Order is kept and repeats
    dropped; a path that does not exist is kept (analysing it records the error).

    Raises:
        FileNotFoundError: a manifest does not exist.
    """
    from ..cli._inputs import expand

    names: list[str] = []
    warnings: list[str] = []
    args = list(arguments)
    for manifest in manifests:
        args += _manifest(Path(manifest))
    for arg in args:
        if "://" in arg and not arg.startswith("file://"):
            names.append(arg)
            continue
        if any(c in arg for c in "*?[") and not Path(arg).exists():
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                warnings.append(f"{arg}: no file matches this pattern")
            found, notes = expand(matches)
        else:
            found, notes = expand([arg])
        names += [item.name for item in found]
        warnings += notes
    return list(dict.fromkeys(names)), warnings


def _manifest(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        column = 0
        if rows and "path" in rows[0]:
            column = rows[0].index("path")
            rows = rows[1:]
        entries = [row[column].strip() for row in rows if row and row[column].strip()]
    else:
        entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [e if "://" in e or os.path.isabs(e) else str(path.parent / e) for e in entries]


def probe_seconds(name: str) -> float | None:
    """A file's duration from its header (None for URIs and files that do not open)."""
    from ..cli._inputs import RAW_SUFFIXES

    if "://" in name:
        return None
    try:
        if Path(name).suffix.lower() in RAW_SUFFIXES:
            return os.path.getsize(name) / 32_000
        import soundfile as sf

        return float(sf.info(name).duration)
    except Exception:  # noqa: BLE001 - a file that does not open is reported when analysed
        return None


def chunk_files(names: Sequence[str], seconds: Sequence[float | None], workers: int) -> list[list[str]]:
    """Consecutive files grouped into chunks of about equal audio: about eight chunks per
    worker (so the last ones balance), at most :data:`MAX_CHUNK_FILES` files each."""
    known = [s for s in seconds if s is not None]
    fallback = sum(known) / len(known) if known else 1.0
    durations = [fallback if s is None else s for s in seconds]
    target = sum(durations) / max(1, workers * 8)
    chunks: list[list[str]] = []
    current: list[str] = []
    filled = 0.0
    for name, s in zip(names, durations):
        current.append(name)
        filled += s
        if filled >= target or len(current) >= MAX_CHUNK_FILES:
            chunks.append(current)
            current, filled = [], 0.0
    if current:
        chunks.append(current)
    return chunks


class _Progress:
    """A tqdm bar over hours of audio (the ETA follows), with files done and failed."""

    def __init__(self, show: bool, total_s: float, files: int) -> None:
        self._files = files
        self._done = self._failed = 0
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            total = round(total_s / 3600, 4)
            known = "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} h [{elapsed}<{remaining}] {postfix}"
            self._bar = tqdm(  # durations unknown (URIs): hours done and elapsed time, no ETA
                total=total or None, unit="h", desc="audio", file=sys.stderr, dynamic_ncols=True,
                bar_format=known if total else "{desc}: {n:.2f} h [{elapsed}] {postfix}",
            )
            self._post()

    def _post(self) -> None:
        self._bar.set_postfix_str(f"files {self._done}/{self._files}, {self._failed} failed", refresh=True)

    def update(self, records: Sequence[FileRecord]) -> None:
        self._done += len(records)
        self._failed += sum(not r.ok for r in records)
        if self._bar is not None:
            self._bar.update(round(sum(r.duration_s or 0.0 for r in records) / 3600, 4))
            self._post()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def analyse(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    options: BatchOptions | None = None,
    fmt: str | None = None,
    workers: int | None = None,
    ray: str | bool | None = None,
    resume: bool = False,
    manifests: Iterable[str | os.PathLike[str]] = (),
    progress: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> BatchReport:
    """Analyse many files on every core (or a Ray cluster) into a Parquet dataset or JSONL.

    Blocks until every file is done. Each worker process has its own engine with one ONNX
    thread; files go to them in chunks of about equal audio, and each chunk's results are
    committed as it comes back, so an interrupted run loses at most the chunks in flight
    and ``resume=True`` goes on from there. A file that fails (missing, not audio, ...)
    becomes an error record (``report.failures``, the ``files`` table or a JSONL error
    document) and the others go on.

    Args:
        inputs: files, directories, glob patterns or URIs (:func:`resolve_inputs`).
        output: a folder (Parquet) or a ``.jsonl`` file; a pyarrow filesystem URI for a
            Parquet output on a cluster (``s3://bucket/run1``).
        options: ``process_file``'s options (:class:`BatchOptions`).
        fmt: ``"parquet"`` or ``"jsonl"`` (default: ``jsonl`` when ``output`` ends with
            ``.jsonl``, else ``parquet``).
        workers: worker processes (default: every core; with ``ray``, the cluster's CPUs).
        ray: run on Ray Data instead of a local pool: ``True`` starts a local cluster,
            ``"auto"`` or an address (``"ray://head:10001"``) joins one. Needs
            ``pip install 'deeptone-async[ray]'``.
        resume: go on with an output that holds an earlier run of the same options,
            skipping the files it holds (failed ones too).
        manifests: files listing inputs (:func:`resolve_inputs`).
        progress: show a progress bar (hours of audio, files, ETA) on stderr.
        on_warning: called with each warning (a directory without audio, a truncated
            file...); default: ignored.

    Raises:
        ParameterError: bad options, no input found, or an output that holds another run
            (or one of other options), or one without ``resume``.
        UnknownModelError: a model name that is not registered.
        ImportError: pyarrow (``batch`` extra) or Ray (``ray`` extra) is missing.
        OSError: the output cannot be written.
    """
    start = time.perf_counter()
    options = options or BatchOptions()
    out = str(output)
    fmt = fmt or ("jsonl" if out.lower().endswith(".jsonl") else "parquet")
    if fmt not in FORMATS:
        raise ParameterError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if workers is not None and workers < 1:
        raise ParameterError(f"workers must be at least 1, got {workers}")
    warn = on_warning or (lambda message: None)
    if fmt == "parquet":
        _need("pyarrow", "batch")
    names, notes = resolve_inputs([str(i) for i in inputs], manifests)
    for note in notes:
        warn(note)
    if not names:
        raise ParameterError("no audio files to analyse: give files, folders with audio, patterns or manifests")
    job = Job(options, fmt, out, _raw_labels(options))
    store = ParquetStore(job) if fmt == "parquet" else JsonlStore(job)
    done = store.open(resume)
    report = BatchReport(out)
    try:
        todo = [n for n in names if n not in done]
        before = [done[n] for n in names if n in done]
        report.skipped = len(before)
        report.skipped_failed = sum(not r.ok for r in before)
        seconds = [probe_seconds(n) for n in todo]
        n_workers = workers or (os.cpu_count() or 1)
        bar = _Progress(progress, sum(s or 0.0 for s in seconds), len(todo))

        def commit(result: ChunkResult) -> None:
            store.commit(result.records, result.lines)
            for record in result.records:
                if record.ok:
                    report.analysed += 1
                    report.audio_s += record.duration_s or 0.0
                    if record.warning:
                        warn(f"{record.file}: {record.warning}")
                else:
                    report.failed += 1
                    report.failures.append(record)
            bar.update(result.records)

        try:
            if todo:
                if ray:
                    from ._ray import run_on_ray

                    address = None if ray is True else str(ray)
                    run_on_ray(address, job, todo, seconds, workers, commit)
                else:
                    _run_local(job, chunk_files(todo, seconds, n_workers), n_workers, commit)
            store.tidy()  # parts of a chunk whose worker died after writing them
        finally:
            bar.close()
    finally:
        store.close()
    report.elapsed_s = time.perf_counter() - start
    return report


def _raw_labels(options: BatchOptions) -> tuple[str, ...] | None:
    """The run's raw-value columns; checks the options with an engine (models, period,
    threshold) before any worker starts. Blocks while the engine loads."""
    from ..engine import Deeptone, check_output_period
    from ..gate import check_volume_threshold

    check_output_period(options.output_period)
    check_volume_threshold(options.volume_threshold)
    specs, _ = Deeptone(threads_per_model=1).plan(list(options.models) if options.models is not None else None)
    return tuple(raw_labels([s.labels for s in specs])) if options.include_raw_values else None


def _need(module: str, extra: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"batch output needs {module}: pip install 'deeptone-async[{extra}]'") from exc


#: Times a file may be in a worker that died before it is recorded as an error.
MAX_CRASHES = 3


def crashed(job: Job, name: str, what: str) -> ChunkResult:
    """The error record (and JSONL line) of a file that killed every worker given it."""
    message = f"{what} (killed for memory, or a crash)"
    lines = [json.dumps({"file": name, "error": {"type": "WorkerCrashed", "message": message}})]
    return ChunkResult([FileRecord(name, "error", "WorkerCrashed", message)], lines if job.fmt == "jsonl" else [])


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL the live worker processes of a broken pool.

    A broken ``ProcessPoolExecutor`` only SIGTERMs its other workers and then waits for
    them without a timeout; a worker that does not die of SIGTERM (one CI run saw it: the
    pool's shutdown then hung for ever) would hang the run. ``_processes`` is the executor's
    own table (private, the same from Python 3.8 to 3.13); without it this does nothing.
    """
    processes = getattr(pool, "_processes", None) or {}
    for proc in list(processes.values()):
        if proc.is_alive():
            proc.kill()


def _run_local(job: Job, chunks: list[list[str]], workers: int, commit: Callable[[ChunkResult], None]) -> None:
    """Run ``chunks`` on a pool of ``workers`` processes (spawned: no fork of a threaded
    parent), at most two chunks queued per worker so that finished results do not pile up.

    A worker that dies (killed for memory, a crash in a native library) breaks the pool,
    failing every chunk in flight: the pool is started again and those chunks are retried,
    split into single files; a file in flight at :data:`MAX_CRASHES` deaths becomes an
    error record (``WorkerCrashed``) and the run goes on.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures.process import BrokenProcessPool

    queue: deque[tuple[list[str], int]] = deque((chunk, 0) for chunk in chunks)  # (files, deaths seen)

    def died(chunk: list[str], deaths: int) -> None:
        if len(chunk) > 1:
            queue.extendleft(([name], deaths) for name in reversed(chunk))
        elif deaths < MAX_CRASHES:
            queue.appendleft((chunk, deaths))
        else:
            commit(crashed(job, chunk[0], f"the worker process died while analysing it, {deaths} times"))

    while queue:
        size = min(workers, len(queue))
        pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_process, initargs=(job,))
        pending: dict[Future[ChunkResult], tuple[list[str], int]] = {}
        broken = False
        try:
            while (queue or pending) and not broken:
                while len(pending) < 2 * size and queue:
                    chunk, deaths = queue.popleft()
                    pending[pool.submit(run_chunk, chunk)] = (chunk, deaths)
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    chunk, deaths = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        died(chunk, deaths + 1)
                        continue
                    commit(result)
        finally:
            if broken:
                _kill_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
        for future, (chunk, deaths) in pending.items():  # the pool broke: what was in flight
            if future.cancelled():
                queue.appendleft((chunk, deaths))
            elif future.exception() is None:
                commit(future.result())  # finished before the pool broke
            else:
                died(chunk, deaths + 1)
