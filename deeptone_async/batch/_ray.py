"""Batch analysis on Ray Data: the chunks of files as a dataset, one engine per actor
(``map_batches`` with an actor pool), each actor writing its rows as Parquet parts and
returning its files' records, which the driver commits as a local run does.

Ray retries a task whose actor died (its process crashed, was killed for memory, or its node
went away) on a new actor, at most ``MAX_CRASHES - 1`` times; a chunk still failing then is
dropped by Ray Data (``max_errored_blocks``) and its files are tried again one per task, so
that one file that kills every actor becomes a ``WorkerCrashed`` error record and the others
are analysed, as in a local run. A file that fails on its own is an error record too. Every node needs
deeptone-async installed (the same version), and a Parquet output every node can reach
(a shared folder, or an object store URI such as ``s3://bucket/run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._run import MAX_CRASHES, chunk_files, crashed
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
        ctx.max_errored_blocks = -1  # a chunk that kills its actor every time: its files come back below
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        missing = _run_chunks(ray, job, chunk_files(files, seconds, actors), actors, commit, in_flight=None)
        if missing:  # chunks lost after Ray's retries: each file again on its own
            missing = _run_chunks(ray, job, [[name] for name in missing], actors, commit, in_flight=1)
        for name in missing:
            commit(crashed(job, name, f"a Ray actor died while analysing it, {MAX_CRASHES} times"))
    finally:
        if started:
            ray.shutdown()


def _run_chunks(
    ray: Any,
    job: Job,
    chunks: list[list[str]],
    actors: int,
    commit: Callable[[ChunkResult], None],
    in_flight: int | None,
) -> list[str]:
    """One Ray Data pass over ``chunks``; commits what comes back and returns the files of
    the chunks Ray gave up on (in input order). Blocks.

    ``in_flight`` caps the tasks queued on one actor (None: Ray's default). The pass over
    single files uses 1: when an actor dies, every task queued on it fails with it and
    counts a retry, so with more in flight a good file queued behind the one that kills
    the actor would be lost with it."""
    import warnings

    ds = ray.data.from_items([{"files": chunk} for chunk in chunks], override_num_blocks=len(chunks))
    with warnings.catch_warnings():
        # Ray's default retries a task on a new actor forever. ``max_task_retries`` has no
        # named parameter yet, and Ray 2.60 deprecates the ``**ray_remote_args`` that carry
        # it (removal announced for 2.64, hence the extra's ``ray<2.64``).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        results = ds.map_batches(
            RayWorker,
            fn_constructor_args=(job,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(
                size=min(actors, len(chunks)), max_tasks_in_flight_per_actor=in_flight
            ),
            num_cpus=1,
            max_task_retries=MAX_CRASHES - 1,
        )
    seen: set[str] = set()
    for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows = batch.to_pylist()
        lines = [row.pop("line") for row in rows]
        seen.update(row["file"] for row in rows)
        commit(ChunkResult([FileRecord(**row) for row in rows], [x for x in lines if x is not None]))
    return [name for chunk in chunks for name in chunk if name not in seen]
