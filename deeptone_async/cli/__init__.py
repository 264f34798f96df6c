"""The ``deeptone-async`` command line.

``deeptone-async file PATH...``   analyse files (json, jsonl, csv or an Audacity label track)
``deeptone-async mic``            print live results from the microphone
``deeptone-async serve``          WebSocket server with DeepTone's cloud protocol
``deeptone-async models``         list the models with their labels, receptive field and card
``deeptone-async demo``           analyse the bundled sample with every model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import anyio

from . import __version__
from .engine import DEFAULT_VOLUME_THRESHOLD, Deeptone
from .errors import DeeptoneError
from .results import AnalysisResult
from .sinks import CsvSink, StdoutSink, audacity_labels, drain, format_result
from .sources.mic import MicrophoneSource

__all__ = ["main", "sample_path"]


def sample_path() -> Path:
    """The bundled demo sample (generated speech, notes and noise; 20 s, Ogg Opus)."""
    return Path(str(resources.files("deeptone_async") / "data" / "sample.ogg"))


def _models(engine: Deeptone, names: list[str] | None) -> list[str] | None:
    if not names:
        return None
    return [n.strip() for arg in names for n in arg.split(",") if n.strip()]


def _progress_bar(path: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(desc=Path(path).name, unit=" samples", unit_scale=True, leave=False, file=sys.stderr)

    last = 0

    def update(done: int, total: int | None) -> None:
        nonlocal last
        if total and bar.total is None:
            bar.total = total
        bar.update(done - last)
        last = done

    update.bar = bar  # type: ignore[attr-defined]
    return update


async def _run_files(args: argparse.Namespace, out: TextIO) -> int:
    engine = Deeptone()
    models = _models(engine, args.models)
    results: list[tuple[str, AnalysisResult]] = []
    for path in args.paths:
        show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
        progress = _progress_bar(path, show)
        try:
            res = await engine.process_file(
                path,
                models,
                output_period=args.output_period,
                channel=args.channel,
                include_summary=args.summary,
                include_transitions=args.transitions or args.format == "audacity",
                include_raw_values=args.raw,
                volume_threshold=args.volume_threshold,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.bar.close()
        results.append((path, res))
    if args.format == "json":
        doc: Any = results[0][1] if len(results) == 1 else {path: res for path, res in results}
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif args.format == "jsonl":
        for path, res in results:
            for channel, entry in res["channels"].items():
                for item in entry["time_series"]:
                    out.write(json.dumps({"file": path, "channel": channel, **item}) + "\n")
                extra = {k: v for k, v in entry.items() if k != "time_series"}
                if extra:
                    out.write(json.dumps({"file": path, "channel": channel, **extra}) + "\n")
    elif args.format == "csv":
        rows = []
        for path, res in results:
            for channel, entry in res["channels"].items():
                rows += [({"file": path, "channel": channel}, item) for item in entry["time_series"]]
        _write_csv(rows, out)
    else:  # audacity
        for _, res in results:
            for entry in res["channels"].values():
                out.write(audacity_labels(entry["transitions"]))
    return 0


def _write_csv(rows: list[tuple[dict[str, Any], dict[str, Any]]], out: TextIO) -> None:
    import csv

    writer = csv.writer(out)
    writer.writerow(["file", "channel", *CsvSink.FIELDS])
    for meta, item in rows:
        raw = item.get("raw", {})
        for model, res in item["results"].items():
            raw_json = json.dumps(raw[model]) if model in raw else ""
            writer.writerow([meta["file"], meta["channel"], item["timestamp"], model, res["result"], res["confidence"], raw_json])


async def _run_mic(args: argparse.Namespace) -> int:
    engine = Deeptone()
    device: int | str | None = args.device
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    source = MicrophoneSource(device, sample_rate=args.sample_rate)
    stream = engine.process_stream(
        source,
        _models(engine, args.models),
        output_period=args.output_period,
        include_raw_values=args.raw,
        volume_threshold=args.volume_threshold,
    )
    print(f"listening on {device if device is not None else 'the default input'}; Ctrl-C stops", file=sys.stderr)
    with anyio.move_on_after(args.duration):
        async with stream:
            await drain(stream, StdoutSink(args.format))
    print(
        f"stopped: {stream.stats.results} results, {stream.stats.dropped_ms:.0f} ms of audio dropped, "
        f"lag {stream.stats.lag_ms:.0f} ms",
        file=sys.stderr,
    )
    return 0


def _run_models() -> int:
    engine = Deeptone()
    for spec in engine.models:
        print(f"{spec.name} (key {spec.key!r})")
        print(f"  labels:           {', '.join(spec.output_labels)}")
        print(f"  receptive field:  {spec.receptive_field_ms} ms")
        if spec.description:
            print(f"  about:            {spec.description}")
        print(f"  card:             {spec.card if spec.card and spec.card.exists() else '-'}")
    return 0


async def _run_demo(out: TextIO) -> int:
    engine = Deeptone()
    path = sample_path()
    res = await engine.process_file(path, None, include_summary=True, include_transitions=True)
    print(f"{path.name}: generated speech (two voices), plucked notes, noise and pauses", file=out)
    print("\ntime series (one result per 1024 ms):", file=out)
    for item in res["time_series"]:
        print("  " + format_result(item), file=out)
    print("\nsummary:", file=out)
    for model, fractions in res["summary"].items():
        shares = ", ".join(f"{k.removesuffix('_fraction')} {v:.0%}" for k, v in fractions.items() if v > 0)
        print(f"  {model}: {shares}", file=out)
    print("\ntransitions:", file=out)
    for model, segments in res["transitions"].items():
        for seg in segments:
            print(
                f"  {model}: {seg['timestamp_start'] / 1000:6.3f}-{seg['timestamp_end'] / 1000:6.3f} s  {seg['result']}",
                file=out,
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeptone-async", description="Real-time voice analytics with open models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", "-m", action="append", help="model names, comma-separated (default: all)")
        p.add_argument("--output-period", type=int, default=1024, help="ms between results, a multiple of 64")
        p.add_argument("--raw", action="store_true", help="include raw model probabilities")
        p.add_argument("--volume-threshold", type=float, default=DEFAULT_VOLUME_THRESHOLD, help="RMS below which a frame is silence")

    f = sub.add_parser("file", help="analyse audio files")
    f.add_argument("paths", nargs="+", metavar="PATH")
    common(f)
    f.add_argument("--summary", action="store_true", help="include label fractions")
    f.add_argument("--transitions", action="store_true", help="include label segments")
    f.add_argument("--format", choices=["json", "jsonl", "csv", "audacity"], default="json")
    f.add_argument("--output", "-o", help="write here instead of standard output")
    f.add_argument("--channel", type=int, help="analyse only this channel")
    f.add_argument("--progress", choices=["auto", "always", "never"], default="auto", help="progress bar on stderr")

    m = sub.add_parser("mic", help="print live results from the microphone")
    common(m)
    m.add_argument("--device", help="input device name or index")
    m.add_argument("--sample-rate", type=int, default=16_000)
    m.add_argument("--format", choices=["text", "json"], default="text")
    m.add_argument("--duration", type=float, default=None, help="stop after this many seconds")

    s = sub.add_parser("serve", help="run the WebSocket streaming server (needs deeptone-async[server])")
    from .server import cli as server_cli  # argument definitions only; heavy imports happen in run()

    server_cli.add_arguments(s)

    sub.add_parser("models", help="list the models")
    sub.add_parser("demo", help="analyse the bundled sample with every model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 on a DeeptoneError or missing file)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            return _run_models()
        if args.command == "demo":
            return anyio.run(_run_demo, sys.stdout)
        if args.command == "serve":
            from .server import cli as server_cli

            return server_cli.run(args)
        if args.command == "mic":
            return anyio.run(_run_mic, args)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as fh:
                return anyio.run(_run_files, args, fh)
        return anyio.run(_run_files, args, sys.stdout)
    except (DeeptoneError, FileNotFoundError, ImportError) as exc:
        print(f"deeptone-async: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `deeptone-async demo | head`: stop quietly, like other CLIs
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
