"""``deeptone-async file``: analyse many files, writing each result as soon as it is done.

One output schema whatever the number of files: every JSON document, JSONL line and CSV row
names its file. A file that fails is reported on stderr and the rest go on.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import DecodeError
from ._inputs import RAW_SUFFIXES, Input, expand, truncation
from ._parser import FORMAT_SUFFIXES, model_names

if TYPE_CHECKING:
    from ..engine import Deeptone
    from ..results import AnalysisResult

__all__ = ["DirectoryOutput", "StreamOutput", "UsageError", "render", "run_files", "write_atomically"]

PROG = "deeptone-async"


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


# -- rendering --------------------------------------------------------------------------


def render(fmt: str, name: str, result: AnalysisResult, *, header: bool = True) -> str:
    """One file's result as text in ``fmt`` (``json``, ``jsonl`` or ``csv``)."""
    if fmt == "json":
        return json.dumps({"file": name, **result}, indent=2) + "\n"
    lines: list[str] = []
    if fmt == "jsonl":
        for channel, entry in result["channels"].items():
            lines += [json.dumps({"file": name, "channel": channel, **item}) for item in entry["time_series"]]
            extra = {k: v for k, v in entry.items() if k != "time_series"}
            if extra:
                lines.append(json.dumps({"file": name, "channel": channel, **extra}))
        return "".join(line + "\n" for line in lines)
    if fmt == "csv":
        from ..sinks import CsvSink

        buf = io.StringIO()
        writer = csv.writer(buf)
        if header:
            writer.writerow(["file", "channel", *CsvSink.FIELDS])
        for channel, entry in result["channels"].items():
            for item in entry["time_series"]:
                raw = item.get("raw", {})
                for model, res in item["results"].items():
                    raw_json = json.dumps(raw[model]) if model in raw else ""
                    writer.writerow([name, channel, item["timestamp"], model, res["result"], res["confidence"], raw_json])
        return buf.getvalue()
    raise ValueError(f"no text rendering for format {fmt!r}")


def label_tracks(result: AnalysisResult) -> dict[str, str]:
    """An Audacity label track per channel of ``result``: ``{channel: text}``."""
    from ..sinks import audacity_labels

    return {channel: audacity_labels(entry["transitions"]) for channel, entry in result["channels"].items()}


# -- outputs ----------------------------------------------------------------------------


class UsageError(Exception):
    """Arguments that cannot work together; reported like argparse's errors (status 2)."""


class StreamOutput:
    """Every file's records to one text stream (standard output or ``--output FILE``),
    flushed as each file is done; the CSV header comes once."""

    def __init__(self, fmt: str, channel: int | None) -> None:
        self._fmt = fmt
        self._channel = channel
        self._header = True
        self.out: TextIO = sys.stdout

    def check(self, inputs: list[Input]) -> list[Input]:
        if self._fmt != "audacity":
            return inputs
        hint = "use --output-dir DIR for one label file per file and channel"
        if len(inputs) > 1:
            raise UsageError(f"an Audacity label track holds one stream, not {len(inputs)} files: {hint}")
        if self._channel is None and inputs:
            channels = _channels(inputs[0].path)
            if channels > 1:
                raise UsageError(
                    f"an Audacity label track holds one stream, and {inputs[0].name} has {channels} channels: "
                    f"choose one with --channel N, or {hint}"
                )
        return inputs

    def done(self, item: Input) -> bool:
        return False

    def write(self, item: Input, result: AnalysisResult) -> None:
        if self._fmt == "audacity":
            tracks = label_tracks(result)
            if len(tracks) > 1:  # _channels could not tell beforehand (e.g. it did not open)
                raise UsageError(f"{item.name} has {len(tracks)} channels; one label track holds one: use --channel or --output-dir")
            text = "".join(tracks.values())
        else:
            text = render(self._fmt, item.name, result, header=self._header)
        self.out.write(text)
        self.out.flush()
        self._header = False


def _channels(path: Path) -> int:
    """Channels of an audio file from its header (1 for raw PCM or when it does not open)."""
    if path.suffix.lower() in RAW_SUFFIXES:
        return 1
    import soundfile as sf

    try:
        return int(sf.info(str(path)).channels)
    except Exception:  # noqa: BLE001 - the analysis reports the file's error
        return 1


class DirectoryOutput:
    """One output per input under ``root``, at the input's relative path with the format's
    extension; Audacity labels get one file per channel (``name.ch0.txt``, ...) when there
    are several or ``--channel`` picked one.

    Every file is written to a hidden temporary file beside it and renamed into place, so a
    file that exists is complete; a label set is complete when its first channel's file
    exists (written last).
    """

    def __init__(self, root: Path, fmt: str, channel: int | None) -> None:
        self._root = root
        self._fmt = fmt
        self._channel = channel

    def target(self, item: Input) -> Path:
        return self._root / item.relative.with_suffix(FORMAT_SUFFIXES[self._fmt])

    def _channel_target(self, item: Input, channel: str) -> Path:
        target = self.target(item)
        return target.with_name(f"{target.stem}.ch{channel}{target.suffix}")

    def check(self, inputs: list[Input]) -> list[Input]:
        seen: dict[Path, Input] = {}
        keep: list[Input] = []
        for item in inputs:
            target = self.target(item)
            other = seen.get(target)
            if other is None:
                seen[target] = item
                keep.append(item)
            elif other.path.resolve() != item.path.resolve():
                raise UsageError(
                    f"{other.name} and {item.name} would both be written to {target}: "
                    "analyse them in separate runs, each with its own --output-dir"
                )
        return keep

    def done(self, item: Input) -> bool:
        if self.target(item).exists():
            return True
        return self._fmt == "audacity" and self._channel_target(item, str(self._channel or 0)).exists()

    def write(self, item: Input, result: AnalysisResult) -> None:
        if self._fmt != "audacity":
            write_atomically(self.target(item), render(self._fmt, item.name, result))
            return
        tracks = label_tracks(result)
        if len(tracks) == 1 and self._channel is None:
            write_atomically(self.target(item), next(iter(tracks.values())))
            return
        first, *rest = tracks
        for channel in [*rest, first]:  # the first channel's file last: it marks the set complete
            write_atomically(self._channel_target(item, channel), tracks[channel])


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a hidden temporary file beside ``path``, then rename it to ``path``.

    An interrupted write leaves no file at ``path`` (at most ``.NAME.PID.part``, removed
    unless the process is killed), so a file that exists is complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- the command ------------------------------------------------------------------------


class _Progress:
    """Counts the frames decoded (for the truncation check) and drives a tqdm bar."""

    def __init__(self, label: str | None) -> None:
        self.frames = 0
        self._bar: Any = None
        if label is not None:
            from tqdm import tqdm

            self._bar = tqdm(desc=label, unit=" samples", unit_scale=True, leave=False, file=sys.stderr)

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is not None:
            if total and self._bar.total is None:
                self._bar.total = total
            self._bar.update(done - self.frames)
        self.frames = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def describe(exc: BaseException) -> str:
    """``Type: message`` for one failed file, without repeating its name."""
    if isinstance(exc, DecodeError):
        message = exc.reason
    elif isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        message = str(exc)
    return f"{type(exc).__name__}: {message}"


async def run_files(args: argparse.Namespace) -> int:
    """Analyse every input of ``args`` in turn; returns the exit status (1 if any failed).

    Raises:
        UsageError: options that cannot work together (several streams into one label
            track, two inputs with one output path).
        DeeptoneError: a bad model name, output period or volume threshold (before any file).
    """
    if args.skip_existing and not args.output_dir:
        raise UsageError("--skip-existing needs --output-dir")
    inputs, notes = expand(args.paths)
    for message in notes:
        warn(message)
    if not inputs:
        raise UsageError("no audio files to analyse")
    output: StreamOutput | DirectoryOutput
    if args.output_dir:
        output = DirectoryOutput(Path(args.output_dir), args.format, args.channel)
    else:
        output = StreamOutput(args.format, args.channel)
    inputs = output.check(inputs)

    from ..engine import Deeptone, check_output_period
    from ..gate import check_volume_threshold

    engine = Deeptone()
    models = model_names(args.models)
    engine.plan(models)  # an unknown model fails here, not once per file
    check_output_period(args.output_period)
    check_volume_threshold(args.volume_threshold)
    with contextlib.ExitStack() as stack:
        if isinstance(output, StreamOutput) and args.output:
            output.out = stack.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
        analysed = failed = skipped = 0
        for index, item in enumerate(inputs, 1):
            if args.skip_existing and output.done(item):
                skipped += 1
                continue
            try:
                result, note = await _analyse(engine, item, models, args, f"[{index}/{len(inputs)}] {item.path.name}")
                output.write(item, result)
            except (BrokenPipeError, UsageError):
                raise
            except Exception as exc:  # one bad file is reported and the others go on
                print(f"{PROG}: {item.name}: {describe(exc)}", file=sys.stderr, flush=True)
                failed += 1
                continue
            if note:
                warn(f"{item.name}: {note}")
            analysed += 1
    counts = f"{analysed} file{'s' if analysed != 1 else ''} analysed, {failed} failed"
    if skipped:
        counts += f", {skipped} skipped (their output exists)"
    print(f"{PROG}: {counts}", file=sys.stderr, flush=True)
    return 1 if failed else 0


async def _analyse(
    engine: Deeptone, item: Input, models: list[str] | None, args: argparse.Namespace, label: str
) -> tuple[AnalysisResult, str | None]:
    """The result for one file and a warning when it was truncated."""
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    expected = truncation(item.path)
    progress = _Progress(label if show else None)
    try:
        result = await engine.process_file(
            item.path,
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
        progress.close()
    return result, expected.check(progress.frames) if expected else None
