"""The ``deeptone-async`` command line.

``deeptone-async file PATH...``   analyse files and directories (json, jsonl, csv or Audacity labels)
``deeptone-async batch INPUT...``  analyse an archive on every core or a Ray cluster (Parquet, JSONL)
``deeptone-async mic``            print live results from the microphone
``deeptone-async serve``          WebSocket server with DeepTone's cloud protocol
``deeptone-async models``         list the models with their labels, receptive field and card
``deeptone-async demo``           analyse the bundled sample with every model

Start-up is kept short: this package imports argparse and the model specs only; the engine,
numpy, ONNX Runtime and soundfile are imported by the command that needs them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..errors import DeeptoneError
from ._demo import sample_path
from ._parser import build_parser

__all__ = ["build_parser", "main", "sample_path"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status.

    0 success; 1 a file failed or a DeeptoneError (bad model, period, device...); 2 a usage
    error (argparse exits with 2 itself, raising SystemExit); 130 interrupted; 141 the
    reader of standard output went away.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "models":
            from ._demo import run_models

            return run_models(sys.stdout)
        if args.command == "serve":
            from ..server import cli as server_cli

            return server_cli.run(args)
        if args.command == "batch":
            from ._batch import run_batch

            return run_batch(args)
        import anyio

        if args.command == "demo":
            from ._demo import run_demo

            return anyio.run(run_demo, sys.stdout)
        if args.command == "mic":
            from ._mic import run_mic

            return anyio.run(run_mic, args)
        from ._files import UsageError, run_files

        try:
            return anyio.run(run_files, args)
        except UsageError as exc:
            args.command_parser.error(str(exc))  # exits with status 2
            raise  # pragma: no cover - error() does not return
    except BrokenPipeError:  # e.g. `deeptone-async demo | head`: stop quietly, like other CLIs
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (DeeptoneError, OSError, ImportError) as exc:  # OSError: e.g. --output in a missing folder
        print(f"deeptone-async: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
