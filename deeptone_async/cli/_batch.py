"""``deeptone-async batch``: :func:`deeptone_async.batch.analyse` from the command line."""

from __future__ import annotations

import argparse
import sys

from ._parser import model_names

__all__ = ["run_batch"]

PROG = "deeptone-async"


def run_batch(args: argparse.Namespace) -> int:
    """Run a batch; returns the exit status: 0 when every file in the output was analysed,
    1 when any failed (this run or an earlier one that ``--resume`` went on with).

    Blocks until done. Each failed file is reported on stderr as it comes back
    (``deeptone-async: FILE: ErrorType: message``), then a count of the files.

    Raises:
        DeeptoneError: bad options (model, period, threshold), an output that holds
            another run. ImportError: a missing extra (pyarrow, Ray).
    """
    from ..batch import BatchOptions, analyse

    if not args.paths and not args.manifest:
        args.command_parser.error("give at least one INPUT or --manifest")
    models = model_names(args.models)
    options = BatchOptions(
        models=tuple(models) if models is not None else None,
        output_period=args.output_period,
        channel=args.channel,
        include_summary=args.summary,
        include_transitions=args.transitions,
        include_raw_values=args.raw,
        use_chunking=not args.no_chunking,
        volume_threshold=args.volume_threshold,
    )
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    ray: str | bool | None = None if args.ray is None else (True if args.ray == "local" else args.ray)
    report = analyse(
        args.paths, args.output, options=options, fmt=args.format, workers=args.workers, ray=ray,
        resume=args.resume, manifests=args.manifest, progress=show,
        on_warning=lambda message: print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True),
    )
    for record in report.failures:
        print(f"{PROG}: {record.file}: {record.error_type}: {record.error}", file=sys.stderr)
    hours = report.audio_s / 3600
    speed = report.audio_s / report.elapsed_s if report.elapsed_s else 0.0
    counts = f"{report.analysed} files analysed, {report.failed} failed"
    if report.skipped:
        counts += f", {report.skipped} skipped (already in the output; {report.skipped_failed} of them had failed)"
    print(f"{PROG}: {counts}; {hours:.2f} h of audio in {report.elapsed_s:.1f} s ({speed:.0f}x real time)",
          file=sys.stderr, flush=True)
    return 0 if report.ok else 1
