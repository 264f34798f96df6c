"""Batch analysis of archives of recordings, on every core or on a Ray cluster.

>>> from deeptone_async import batch
>>> report = batch.analyse(["calls/"], "calls.parquet", options=batch.BatchOptions(models=("vad", "gender")))
>>> report.analysed, report.failed, report.audio_s

Also ``deeptone-async batch INPUT... --output OUT`` (``deeptone-async batch --help``).
``pip install 'deeptone-async[batch]'`` (pyarrow) for Parquet output, and
``'deeptone-async[ray]'`` (Ray Data) for ``ray=``; each is imported when first used.

Output, Parquet: a folder of tables, each a folder of parts (``results/part-<id>.parquet``;
``pandas.read_parquet("OUT/results")``, ``duckdb "SELECT ... FROM 'OUT/results/*.parquet'"``):

``results``      one row per file, channel, period and model: ``file`` (string),
                 ``channel`` (int64), ``timestamp_ms`` (int64, the period's start),
                 ``model``, ``result`` (strings), ``confidence`` (float64), and with raw
                 values ``raw_<label>`` (float64) for every label of the run's models
                 (null in another model's rows)
``summary``      one row per file, channel, model and label: ``file, channel, model,
                 label, fraction`` (each model's fractions add up to 1)
``transitions``  with ``include_transitions``: ``file, channel, model, start_ms, end_ms,
                 result, confidence``
``files``        one row per input: ``file, status`` (``ok``/``error``), ``error_type,
                 error, warning, duration_s, channels, sample_rate, elapsed_s, part,
                 worker``
``_batch.json``  the run's options, checked by ``resume``

Rows are in the order chunks finished, not the input order. Output, JSONL: one line per
file, ``{"file": ..., "channels": {...}}`` as ``process_file`` returns it, or
``{"file": ..., "error": {"type": ..., "message": ...}}``.
"""

from ._options import FORMATS as FORMATS
from ._options import BatchOptions as BatchOptions
from ._run import BatchReport as BatchReport
from ._run import analyse as analyse
from ._run import chunk_files as chunk_files
from ._run import resolve_inputs as resolve_inputs
from ._tables import FileRecord as FileRecord

__all__ = ["FORMATS", "BatchOptions", "BatchReport", "FileRecord", "analyse", "chunk_files", "resolve_inputs"]
