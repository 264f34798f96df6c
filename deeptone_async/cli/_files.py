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
from ._parser import FORMAT_SUFFIXES, SEGMENT_FORMATS, model_names

if TYPE_CHECKING:
    from ..engine import Deeptone
    from ..results import AnalysisResult
    from ..segments import Smoothing

__all__ = ["DirectoryOutput", "StreamOutput", "UsageError", "render", "run_files", "write_atomically"]

PROG = "deeptone-async"


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


# -- rendering --------------------------------------------------------------------------


def render(fmt: str, name: str, result: AnalysisResult, *, header: bool = True, smoothing: Smoothing | None = None) -> str:
    """One file's result as text in ``fmt`` (``json``, ``jsonl``, ``csv``, or a segment
    format: ``rttm``, ``textgrid``, ``srt``, ``vtt``)."""
    if fmt in SEGMENT_FORMATS:
        from .. import exports

        segs = exports.result_segments(result, smoothing=smoothing)
        return exports.export(segs, fmt, file_id=Path(name).name, duration_ms=_duration_ms(result))
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


def _duration_ms(result: AnalysisResult) -> int | None:
    ends = [
        t[-1]["timestamp_end"]
        for entry in result["channels"].values()
        for t in (entry.get("transitions") or {}).values()
        if t
    ]
    return max(ends) if ends else None


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

    def __init__(self, fmt: str, channel: int | None, smoothing: Smoothing | None = None) -> None:
        self._fmt = fmt
        self._channel = channel
        self._smoothing = smoothing
        self._header = True
        self.out: TextIO = sys.stdout

    def check(self, inputs: list[Input]) -> list[Input]:
        if self._fmt in ("textgrid", "srt", "vtt") and len(inputs) > 1:
            raise UsageError(
                f"a {self._fmt} file holds one input, not {len(inputs)}: use --output-dir DIR for one file per input"
            )
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
            text = render(self._fmt, item.name, result, header=self._header, smoothing=self._smoothing)
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

    def __init__(self, root: Path, fmt: str, channel: int | None, smoothing: Smoothing | None = None) -> None:
        self._root = root
        self._fmt = fmt
        self._channel = channel
        self._smoothing = smoothing

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
            write_atomically(self.target(item), render(self._fmt, item.name, result, smoothing=self._smoothing))
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
    from ..segments import Smoothing

    smoothing = Smoothing(min_duration_ms=args.min_duration, min_gap_ms=args.min_gap, pad_ms=args.pad)
    output: StreamOutput | DirectoryOutput
    if args.output_dir:
        output = DirectoryOutput(Path(args.output_dir), args.format, args.channel, smoothing)
    else:
        output = StreamOutput(args.format, args.channel, smoothing)
    inputs = output.check(inputs)
    plots = plot_targets(Path(args.plot), inputs) if args.plot else {}

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
                if plots:
                    await _plot(result, item, plots[item.path])
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
            include_transitions=args.transitions or args.format in ("audacity", *SEGMENT_FORMATS) or bool(args.plot),
            include_raw_values=args.raw,
            volume_threshold=args.volume_threshold,
            progress=progress,
        )
    finally:
        progress.close()
    return result, expected.check(progress.frames) if expected else None


def plot_targets(plot: Path, inputs: list[Input]) -> dict[Path, Path]:
    """``--plot`` file per input: ``plot`` itself for one input; for several, the input's
    relative path (without its extension, ``/`` as ``.``) inserted before the extension.

    Raises:
        UsageError: an extension that is not drawn, or two inputs with one plot path.
    """
    if plot.suffix.lower() not in (".png", ".svg", ".pdf", ".html"):
        raise UsageError(f"--plot {plot}: use a .png, .svg, .pdf or .html file")
    if len(inputs) == 1:
        return {inputs[0].path: plot}
    out: dict[Path, Path] = {}
    seen: dict[Path, Input] = {}
    for item in inputs:
        middle = ".".join(item.relative.with_suffix("").parts)
        target = plot.with_name(f"{plot.stem}.{middle}{plot.suffix}")
        if target in seen:
            raise UsageError(f"{seen[target].name} and {item.name} would both be drawn into {target}")
        seen[target] = item
        out[item.path] = target
    return out


async def _plot(result: AnalysisResult, item: Input, target: Path) -> None:
    """Draw ``result`` into ``target`` in a worker thread (matplotlib or plotly block),
    written to a temporary file and renamed like the outputs."""
    import anyio

    from .. import plot

    audio = None if item.path.suffix.lower() in RAW_SUFFIXES else item.path

    def draw() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.part{target.suffix}")
        try:
            plot.save(result, tmp, audio=audio, title=f"{item.name}")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    await anyio.to_thread.run_sync(draw)
