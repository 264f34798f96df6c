"""The argument parser: every subcommand's options, defaults, the models and an example.

Building it imports nothing heavy (no numpy, ONNX Runtime or soundfile), so ``--help`` is
quick: the model list comes from the bundled ``spec.json`` files, not from loaded sessions.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from .._version import __version__
from ..segments import DEFAULT_SMOOTHING
from ..spec import ModelSpec

__all__ = ["DEFAULT_VOLUME_THRESHOLD", "FORMAT_SUFFIXES", "SEGMENT_FORMATS", "build_parser", "bundled_models", "model_names"]

#: The engine's default (``deeptone_async.engine.DEFAULT_VOLUME_THRESHOLD``, which a test
#: keeps equal), repeated here so that ``--help`` does not import the engine.
DEFAULT_VOLUME_THRESHOLD = 0.005
#: ``file --format`` -> the extension of its files under ``--output-dir``.
FORMAT_SUFFIXES = {
    "json": ".json",
    "jsonl": ".jsonl",
    "csv": ".csv",
    "audacity": ".txt",
    "rttm": ".rttm",
    "textgrid": ".TextGrid",
    "srt": ".srt",
    "vtt": ".vtt",
}
#: Formats of smoothed segments (``deeptone_async.exports``), rather than raw results.
SEGMENT_FORMATS = ("rttm", "textgrid", "srt", "vtt")


def bundled_models() -> list[ModelSpec]:
    """The bundled specs in the registry's order (Vad first), read without loading ONNX.

    The same list as ``registry.bundled_specs()`` (a test keeps them equal), which cannot be
    used here: importing the registry imports ONNX Runtime.
    """
    folder = Path(str(resources.files("deeptone_async") / "models"))
    found = sorted(p for p in folder.iterdir() if (p / "spec.json").is_file())
    return [ModelSpec.from_folder(p) for p in sorted(found, key=lambda p: p.name != "vad")]


def model_names(arguments: list[str] | None) -> list[str] | None:
    """``--models`` values (each comma-separated) as one list; ``None`` (every model) when absent."""
    names = [n.strip() for arg in arguments or [] for n in arg.split(",") if n.strip()]
    return names or None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; every option with a default says it (``None``/``False`` do not)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or not action.option_strings or default is None or default is False:
            return text
        if default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)".lstrip()


def _epilog(example: str, models: str) -> str:
    return f"models: {models}\n(`deeptone-async models` describes them)\n\nexample:\n  {example}"


_FILE_DESCRIPTION = """\
Analyse audio files: anything libsndfile decodes (WAV, FLAC, Ogg, MP3, ...) and headerless
16-bit 16 kHz mono .raw/.pcm. A directory is searched recursively for files with those
extensions (hidden files skipped), in sorted order.

Each file's result is written as soon as it is done. A file that fails is reported on stderr
(file, error type, message) and the others go on; the exit status is 1 when any failed, and
the last line on stderr counts the files analysed and failed.

Formats (the same for one file or many; every record names its file):
  json      one JSON document per file, {"file": ..., "channels": {...}}; several files to
            one output give the documents one after the other (jq reads such a stream; use
            jsonl or --output-dir for one JSON value per line or per file)
  jsonl     one line per result, and one per channel for summary/transitions, each with
            "file" and "channel"
  csv       one row per result and model: file,channel,timestamp,model,result,confidence,raw
  audacity  an Audacity label track (the transitions); one track holds one stream only, so
            several files or channels need --output-dir (name.txt, or name.ch0.txt, ...)

Segment formats: each model's labels smoothed into segments (short blips dropped, gaps
shorter than --min-gap bridged, --pad added; no_speech, silence and unknown make none),
written by pyannote.core, praatio and webvtt-py (pip install 'deeptone-async[exports]'):
  rttm      RTTM SPEAKER lines, the label as name (model:label with several models); any
            number of files to one output (the file id is the file's stem)
  textgrid  a Praat TextGrid, one interval tier per model (and channel)
  srt, vtt  subtitles for a player, one cue per segment
TextGrid, SRT and WebVTT hold one file each: several files need --output-dir.

--plot FILE draws each file's timeline (loudness, a band per model, the confidence; the
first channel, or the one --channel picks):
.png, .svg or .pdf with matplotlib (deeptone-async[plot]), .html with plotly
(deeptone-async[html]); with several files FILE's name gets each file's: plot.png ->
plot.talk.png, plot.sub.other.png.

With --output-dir each input gets its own file there, at its path relative to the directory
it was found in (its name for a file given directly) with the format's extension. Outputs
are written to a temporary file and renamed, so an interrupted run leaves no partial
output, and --skip-existing resumes it."""


_BATCH_DESCRIPTION = """\
Analyse many files on every core (a process per core, each with its own engine and one
ONNX thread), or on a Ray cluster with --ray, into a Parquet dataset or one JSONL file.

Inputs: files, directories (searched recursively for audio, as `file` does), glob patterns
(quote them: 'calls/**/*.wav'), URIs that pyarrow reads (s3://...), and --manifest lists.

Parquet output (a folder; pandas, polars and DuckDB read it as is):
  OUT/results/      one row per file, channel, period and model: file, channel,
                    timestamp_ms, model, result, confidence[, raw_<label>...]
  OUT/summary/      one row per file, channel, model and label: ..., label, fraction
  OUT/transitions/  with --transitions: file, channel, model, start_ms, end_ms, result, confidence
  OUT/files/        one row per input: file, status (ok/error), error_type, error, warning,
                    duration_s, channels, sample_rate, elapsed_s, part, worker
JSONL output: one line per file, {"file": ..., "channels": {...}} as `file --format json`
writes it, or {"file": ..., "error": {"type": ..., "message": ...}}.

A file that fails is an error row and the others go on; the exit status is 1 when any
file in the output failed. Results are committed chunk by chunk: an interrupted run
resumes with --resume (the same options), skipping the files already in OUT."""


def build_parser() -> argparse.ArgumentParser:
    """The ``deeptone-async`` parser (imports nothing heavy)."""
    models = ", ".join(spec.key for spec in bundled_models())
    parser = argparse.ArgumentParser(
        prog="deeptone-async",
        description="Real-time voice analytics with open models.",
        formatter_class=_Formatter,
        epilog=_epilog("deeptone-async file talk.wav --models vad,gender --summary", models),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=description or help[0].upper() + help[1:] + ".",
            formatter_class=_Formatter,
            epilog=_epilog(example, models),
        )
        p.set_defaults(command_parser=p)  # for usage errors found after parsing
        return p

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models", "-m", action="append", metavar="NAMES", help="model names, comma-separated (default: all)")
        p.add_argument("--output-period", type=int, default=1024, metavar="MS", help="ms between results, a multiple of 64")
        p.add_argument("--raw", action="store_true", help="include raw model probabilities")
        p.add_argument(
            "--volume-threshold", type=float, default=DEFAULT_VOLUME_THRESHOLD, metavar="RMS",
            help="RMS below which a frame is silence",
        )

    f = command(
        "file", "analyse audio files or directories",
        "deeptone-async file talk.wav recordings/ -m vad,gender --summary --format csv --output-dir results/",
        _FILE_DESCRIPTION,
    )
    f.add_argument("paths", nargs="+", metavar="PATH", help="audio files and directories")
    common(f)
    f.add_argument("--summary", action="store_true", help="include label fractions")
    f.add_argument("--transitions", action="store_true", help="include label segments")
    f.add_argument("--format", choices=list(FORMAT_SUFFIXES), default="json", help="output format")
    out = f.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", metavar="FILE", help="write everything to FILE (default: standard output)")
    out.add_argument("--output-dir", "-d", metavar="DIR", help="write one file per input under DIR")
    f.add_argument("--skip-existing", action="store_true", help="with --output-dir: skip inputs whose output exists")
    f.add_argument("--channel", type=int, metavar="N", help="analyse only channel N (0-based; default: every channel)")
    f.add_argument("--progress", choices=["auto", "always", "never"], default="auto", help="progress bar on stderr (auto: on a terminal)")
    f.add_argument("--plot", metavar="FILE", help="draw the timeline into FILE (.png, .svg, .pdf or .html)")
    seg = f.add_argument_group("segments (rttm, textgrid, srt, vtt)")
    seg.add_argument("--min-duration", type=int, default=DEFAULT_SMOOTHING.min_duration_ms, metavar="MS",
                     help="drop segments shorter than this")
    seg.add_argument("--min-gap", type=int, default=DEFAULT_SMOOTHING.min_gap_ms, metavar="MS",
                     help="bridge gaps shorter than this")
    seg.add_argument("--pad", type=int, default=DEFAULT_SMOOTHING.pad_ms, metavar="MS", help="pad each segment by this")

    b = command(
        "batch", "analyse an archive on every core or a Ray cluster into Parquet or JSONL",
        "deeptone-async batch calls/ 'more/**/*.flac' -m vad,gender --output calls.parquet",
        _BATCH_DESCRIPTION,
    )
    b.add_argument("paths", nargs="*", metavar="INPUT", help="audio files, directories, glob patterns or URIs")
    b.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="a list of inputs: text, one per line, or CSV with a 'path' column")
    b.add_argument("--output", "-o", required=True, metavar="OUT", help="a Parquet folder, or a .jsonl file")
    b.add_argument("--format", choices=["parquet", "jsonl"], default=None,
                   help="output format (default: jsonl for a .jsonl output, else parquet)")
    common(b)
    b.add_argument("--summary", action="store_true", help="JSONL: include label fractions (Parquet always has them)")
    b.add_argument("--transitions", action="store_true", help="include label segments")
    b.add_argument("--channel", type=int, metavar="N", help="analyse only channel N (0-based; default: every channel)")
    b.add_argument("--no-chunking", action="store_true", help="decode each file whole (memory grows with it)")
    b.add_argument("--workers", "-j", type=int, default=None, metavar="N",
                   help="worker processes (default: every core; with --ray: the cluster's CPUs)")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray Data: alone, a local cluster; 'auto' or an address joins one (deeptone-async[ray])")
    b.add_argument("--resume", action="store_true", help="go on with an interrupted run: skip files already in OUT")
    b.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                   help="progress bar on stderr (auto: on a terminal)")

    m = command("mic", "print live results from the microphone", "deeptone-async mic --device 2 -m vad --output-period 512")
    common(m)
    m.add_argument("--device", help="input device name (or part of it) or index (default: the system's default input)")
    m.add_argument("--sample-rate", type=int, default=16_000, metavar="HZ", help="capture rate")
    m.add_argument("--format", choices=["text", "json"], default="text", help="one line of text or JSON per result")
    m.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)")

    s = command(
        "serve", "run the WebSocket streaming server (needs deeptone-async[server])",
        "deeptone-async serve --host 0.0.0.0 --port 8765 --api-key SECRET",
    )
    from ..server import cli as server_cli  # argument definitions only; heavy imports happen in run()

    server_cli.add_arguments(s)
    for action in s._actions:  # options defined without a help text still show their default
        if action.help is None and action.option_strings and action.default not in (None, False):
            action.help = "(default: %(default)s)"

    command("models", "list the models with their labels, receptive field and card", "deeptone-async models")
    command("demo", "analyse the bundled sample with every model", "deeptone-async demo")
    return parser

