"""What ``deeptone-async file`` reads: inputs found in directories, and truncated files."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["RAW_SUFFIXES", "Input", "Truncation", "audio_suffixes", "expand", "truncation"]

#: libsndfile's format names whose files usually carry another extension (or several).
_FORMAT_SUFFIXES = {
    "AIFF": (".aiff", ".aif", ".aifc"),
    "AU": (".au", ".snd"),
    "IRCAM": (".sf",),
    "MAT4": (".mat",),
    "MAT5": (".mat",),
    "MPC2K": (".mpc",),
    "NIST": (".nist", ".sph"),
    "OGG": (".ogg", ".oga", ".opus"),
    "SVX": (".svx", ".8svx", ".iff"),
    "WAVEX": (".wav",),
}
#: Headerless PCM, read by :class:`~deeptone_async.sources.FileSource` itself.
RAW_SUFFIXES = (".raw", ".pcm")


@lru_cache(maxsize=1)
def audio_suffixes() -> frozenset[str]:
    """Extensions of the files a directory search picks up: every format this libsndfile
    reads (MP3 only where it is 1.1 or newer), and ``.raw``/``.pcm``."""
    import soundfile as sf

    out = set(RAW_SUFFIXES)
    for name in sf.available_formats():
        if name != "RAW":  # libsndfile's own RAW needs a format given; ours is 16 kHz int16
            out.update(_FORMAT_SUFFIXES.get(name, ("." + name.lower(),)))
    return frozenset(out)


@dataclass(frozen=True)
class Input:
    """One file to analyse.

    Attributes:
        path: the file, as given or as found under a directory argument.
        relative: its path under ``--output-dir`` before the format's extension: relative to
            the directory it was found in, or its name when given directly.
    """

    path: Path
    relative: Path

    @property
    def name(self) -> str:
        return str(self.path)


def expand(arguments: list[str]) -> tuple[list[Input], list[str]]:
    """The inputs named by ``arguments``, and a warning for each directory without audio.

    A directory is searched recursively for files with an audio extension
    (:func:`audio_suffixes`), skipping hidden files and directories, and sorted by path. A
    file argument is taken whatever its extension, and a path that does not exist is kept
    too: analysing it reports the error in its turn.
    """
    inputs: list[Input] = []
    warnings: list[str] = []
    for arg in arguments:
        path = Path(arg)
        if not path.is_dir():
            inputs.append(Input(path, Path(path.name)))
            continue
        found: list[Path] = []

        def unreadable(exc: OSError) -> None:
            warnings.append(f"{exc.filename}: skipped, {exc.strerror or exc}")

        for root, dirs, files in os.walk(path, onerror=unreadable):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(root, f) for f in files if not f.startswith(".") and Path(f).suffix.lower() in audio_suffixes()]
        if not found:
            warnings.append(f"{arg}: no audio files in this directory (extensions: {', '.join(sorted(audio_suffixes()))})")
        inputs += [Input(p, p.relative_to(path)) for p in sorted(found)]
    return inputs, warnings


@dataclass(frozen=True)
class Truncation:
    """How much audio a file's header promises: ``frames`` at ``sample_rate``."""

    frames: int
    sample_rate: int

    def check(self, decoded: int) -> str | None:
        """A warning when fewer than the promised frames were decoded."""
        if decoded >= self.frames:
            return None
        rate = self.sample_rate
        return (
            f"truncated: read {decoded / rate:.2f} s ({decoded} frames) of the {self.frames / rate:.2f} s "
            f"its header declares; the results cover what was read"
        )


# libsndfile's log of a header whose data chunk is longer than the file: "data : 160000 (should be 96001)"
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
_UNKNOWN_LENGTH = 0xFFFFFFF0  # streamed WAVs write 0xFFFFFFFF (or near it) when the length is unknown


def truncation(path: Path) -> Truncation | None:
    """The frames a file's header declares, to compare with the frames decoded.

    libsndfile reads the frames present in a WAV or AIFF whose data chunk is cut short and
    reports only those as the file's length; its log keeps the length the header declared,
    which this reads. For other formats its frame count is the header's. ``None`` for
    headerless PCM and files that do not open (analysing them reports that).
    """
    if path.suffix.lower() in RAW_SUFFIXES:
        return None
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - the analysis reports it, with the engine's error type
        return None
    frames = int(info.frames)
    log = info.extra_info or ""
    m = _SHORT_CHUNK.search(log)
    if m:
        declared, present = int(m[1]), int(m[2])
        align = _BLOCK_ALIGN.search(log)
        per_frame = int(align[1]) if align else (present // frames if frames else 0)
        if per_frame and present < declared < _UNKNOWN_LENGTH:
            frames = declared // per_frame
    return Truncation(frames, int(info.samplerate))
