"""Batch analysis on Ray Data: the chunks of files as a dataset, one engine per actor
(``map_batches`` with an actor pool), each actor writing its rows as Parquet parts and
returning its files' records, which the driver commits as a local run does.

Ray retries a task whose actor died (its process crashed or its node went away) on a new
actor; a file that fails on its own is an error record, as locally. Every node needs
deeptone-async installed (the same version), and a Parquet output every node can reach
(a shared folder, or an object store URI such as ``s3://bucket/run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._tables import FileRecord, files_schema
from ._work import ChunkResult, Job, Worker

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["run_on_ray"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the ray[data] extra's
    except ImportError as exc:
        raise ImportError(f"--ray needs Ray Data ({exc.name} is missing): pip install 'deeptone-async[ray]'") from exc
    return ray


class RayWorker:
    """A Ray actor: one :class:`~deeptone_async.batch._work.Worker` (engine) for its life."""

    def __init__(self, job: Job) -> None:
        self.worker = Worker(job)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        rows: list[dict[str, Any]] = []
        for files in batch.column("files").to_pylist():
            result = self.worker.run(files)
            lines: list[str | None] = list(result.lines) or [None] * len(result.records)
            rows += [{**record.as_dict(), "line": line} for record, line in zip(result.records, lines)]
        return pa.Table.from_pylist(rows, schema=_schema())


def _schema() -> pa.Schema:
    import pyarrow as pa

    return files_schema().append(pa.field("line", pa.string()))


def run_on_ray(
    address: str | None,
    job: Job,
    files: Sequence[str],
    seconds: Sequence[float | None],
    workers: int | None,
    commit: Callable[[ChunkResult], None],
) -> None:
    """Analyse ``files`` on Ray and ``commit`` each chunk's records as it comes back; blocks.

    Args:
        address: None starts a local cluster (``workers`` CPUs, default every core);
            ``"auto"`` or an address joins an existing one. An already initialised Ray
            (``ray.init()`` in the caller) is used as it is.
        workers: actors (default: the cluster's CPUs).

    Raises:
        ImportError: Ray Data is not installed (the message names the extra).
        ray.exceptions.RayError: the cluster failed the run (after Ray's retries).
    """
    import logging

    from ._run import chunk_files

    ray = _ray()
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its plan and timings on every run
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False, log_to_driver=False)
        else:
            ray.init(address=address, configure_logging=False, log_to_driver=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts hours of audio
        ctx.verbose_stats_logs = False
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunks = chunk_files(files, seconds, actors)
        ds = ray.data.from_items([{"files": chunk} for chunk in chunks], override_num_blocks=len(chunks))
        results = ds.map_batches(
            RayWorker,
            fn_constructor_args=(job,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(chunks))),
            num_cpus=1,  # Ray Data's actor pools restart a dead actor and retry its task
        )
        for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows = batch.to_pylist()
            lines = [row.pop("line") for row in rows]
            commit(ChunkResult([FileRecord(**row) for row in rows], [x for x in lines if x is not None]))
    finally:
        if started:
            ray.shutdown()
