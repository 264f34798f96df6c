"""Manifests, decoding, caching and frame-level ground truth.

A *corpus* is a folder ``<root>/<corpus>/`` holding ``manifest.csv`` and the audio it names
(any format soundfile reads; resampled to 16 kHz mono if needed). A user's own data can be
given as any manifest path with the same columns (``file`` relative to the manifest's folder,
``label``, ``split``; ``gender`` for gender models).

Decoded audio is cached as int16 in ``training/cache/<name>.npz`` (gitignored) so a second run
starts in seconds.
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from deeptone_async.features import FRAME_SAMPLES, HOP_SAMPLES, SAMPLE_RATE

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "training" / "cache"
ALL_CORPORA = ("librispeech", "commonvoice", "vctk", "ravdess", "emodb", "music", "noise")
SPEECH_CORPORA = ("librispeech", "commonvoice", "vctk", "ravdess", "emodb")
#: the corpora with speaker gender the Gender model trains on (second batch: speechocean, baved)
GENDER_CORPORA = (*SPEECH_CORPORA, "speechocean", "baved")
#: non-speech human and environmental sounds: every clip is ``other`` for the speech/music/other
#: models, whatever its label (an esc50 ``laughing`` or ``coughing`` clip is not speech)
NONSPEECH_CORPORA = ("vocalizations", "esc50")
#: the corpora of the speech/music/other models (Speech, SpeechRT) since issue 14
SMO_CORPORA = (*ALL_CORPORA, "speechocean", "baved", "emospeech", *NONSPEECH_CORPORA)
#: UnderageSpeaker: speechocean's children and adults + the adults of the other speech corpora
UNDERAGE_CORPORA = ("speechocean", "librispeech", "commonvoice", "vctk", "ravdess", "emodb", "baved")
UNDERAGE = ("child", "adult")

# Corpus label -> class of the speech/music/other models. Emotion labels are speech.
MUSIC_LABELS = {"music", "street_music"}  # UrbanSound8K street_music is buskers / car stereos
NONSPEECH_OTHER = {
    "cry", "air_conditioner", "jackhammer", "engine_idling", "children_playing", "dog_bark",
    "drilling", "siren", "gun_shot", "car_horn", "noise",
}


def data_root() -> Path:
    """``$DEEPTONE_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("DEEPTONE_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def smo_class(label: str, corpus: str = "") -> str:
    """speech / music / other for a corpus label (every clip of :data:`NONSPEECH_CORPORA` is
    ``other``)."""
    if corpus in NONSPEECH_CORPORA:
        return "other"
    if label in MUSIC_LABELS:
        return "music"
    if label in NONSPEECH_OTHER:
        return "other"
    return "speech"  # speech and every emotion label


def smo_usable(clip: Clip) -> bool:
    """Whether a clip has a reliable speech/music/other truth. emospeech's ``scream`` clips are
    left out: some are wordless screams, some shouted words ("help", "bacho"), unmarked."""
    return not (clip.corpus == "emospeech" and clip.label == "scream")


#: adult speakers by corpus: these corpora are read or acted by adults (librispeech, vctk,
#: ravdess, emodb); commonvoice and baved have an age column, speechocean an age band
_ADULT_CORPORA = {"librispeech", "vctk", "ravdess", "emodb"}
_CV_ADULT = {"twenties", "thirties", "fourties", "fifties", "sixties", "seventies", "eighties", "nineties"}


def underage_class(clip: Clip) -> str:
    """``child`` / ``adult`` for the UnderageSpeaker model, ``""`` when the clip is not trained on.

    Child: speechocean's ``age_band`` child (ages 6-12). Adult: speechocean's adults, every clip of
    librispeech / vctk / ravdess / emodb, commonvoice clips whose ``age`` is twenties or older,
    baved speakers tagged 18 or older. Left out: speechocean's teens (13-17, reported separately),
    commonvoice ``teens`` and clips without an age, baved speakers tagged under 18 (tags doubtful),
    non-speech clips and corpora without ages (emospeech).
    """
    if clip.cls != "speech":
        return ""
    if clip.corpus == "speechocean":
        return {"child": "child", "adult": "adult"}.get(clip.age_band, "")
    if clip.corpus in _ADULT_CORPORA:
        return "adult"
    if clip.corpus == "commonvoice":
        return "adult" if clip.age in _CV_ADULT else ""
    if clip.corpus == "baved":
        return "adult" if clip.age.isdigit() and int(clip.age) >= 18 else ""
    return ""


@dataclass
class Clip:
    corpus: str
    file: str
    label: str
    cls: str  # speech / music / other
    gender: str
    language: str
    speaker: str
    split: str
    license: str
    audio: np.ndarray  # int16
    hop_db: np.ndarray | None = None  # dBFS of every 256-sample hop
    ref_db: float = 0.0  # clip level: 95th percentile of 64 ms frame dB
    age: str = ""  # manifest ``age`` (years, or commonvoice's decade words), "" when absent
    age_band: str = ""  # manifest ``age_band`` (speechocean: child / teen / adult)

    def float_audio(self) -> np.ndarray:
        return self.audio.astype(np.float32) / 32768.0


def _decode(path: str) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_manifest(manifest: Path, name: str | None = None, workers: int = 2) -> list[Clip]:
    """Every clip of one manifest, decoded (cached as int16 npz keyed on the manifest)."""
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    name = name or manifest.parent.name
    key = hashlib.sha1(f"{manifest.resolve()}:{manifest.stat().st_mtime_ns}".encode()).hexdigest()[:10]
    cache = CACHE / f"{name}-{key}.npz"
    if cache.exists():
        z = np.load(cache)
        offs, flat = z["offsets"], z["audio"]
        audios = [flat[offs[i] : offs[i + 1]] for i in range(len(rows))]
    else:
        paths = [str(manifest.parent / r["file"]) for r in rows]
        with ProcessPoolExecutor(workers) as ex:
            audios = list(ex.map(_decode, paths, chunksize=32))
        CACHE.mkdir(parents=True, exist_ok=True)
        offs = np.concatenate([[0], np.cumsum([len(a) for a in audios])]).astype(np.int64)
        np.savez(cache, offsets=offs, audio=np.concatenate(audios) if audios else np.zeros(0, np.int16))
    clips = []
    for r, a in zip(rows, audios):
        c = Clip(
            corpus=name, file=r["file"], label=r.get("label", ""), cls=smo_class(r.get("label", ""), name),
            gender=r.get("gender", ""), language=r.get("language", ""), speaker=r.get("speaker", ""),
            split=r.get("split", ""), license=r.get("license", ""), audio=a,
            age=r.get("age", "") or "", age_band=r.get("age_band", "") or "",
        )
        annotate(c)
        clips.append(c)
    return clips


def load_corpora(corpora: list[str] | tuple[str, ...] | None = None, manifests: list[str] | None = None,
                 root: Path | None = None) -> list[Clip]:
    """Clips of the named corpora under the data root, plus any extra manifest files."""
    root = root or data_root()
    out: list[Clip] = []
    for c in corpora or ():
        out += load_manifest(root / c / "manifest.csv", c)
    for m in manifests or ():
        out += load_manifest(Path(m))
    return out


# ----------------------------------------------------------------------------------------
# Frame truth
# ----------------------------------------------------------------------------------------

#: a frame is *active* when its level is within ACTIVE_REL_DB of the clip's level ...
ACTIVE_REL_DB = 30.0
#: ... and above this absolute floor (dBFS, at the clip's original level)
ACTIVE_ABS_DB = -65.0


def hop_db(x: np.ndarray) -> np.ndarray:
    """dBFS of every 256-sample hop of float audio (mean square power)."""
    n = len(x) // HOP_SAMPLES
    p = (x[: n * HOP_SAMPLES].astype(np.float32).reshape(n, HOP_SAMPLES) ** 2).mean(axis=1)
    return (10 * np.log10(p + 1e-12)).astype(np.float32)


def frame_db_from_hops(hdb: np.ndarray) -> np.ndarray:
    """dBFS of 64 ms frames made of 4 consecutive hops (hop grid aligned to frame 0)."""
    n = len(hdb) // 4
    p = (10 ** (hdb[: n * 4].reshape(n, 4) / 10)).mean(axis=1)
    return (10 * np.log10(p + 1e-12)).astype(np.float32)


def annotate(c: Clip) -> None:
    c.hop_db = hop_db(c.float_audio())
    fdb = frame_db_from_hops(c.hop_db)
    c.ref_db = float(np.percentile(fdb, 95)) if len(fdb) else -100.0


def active_frames(frame_db: np.ndarray, ref_db: float) -> np.ndarray:
    """Energy truth: speech is present in a frame of a speech clip when the frame is within
    ACTIVE_REL_DB dB of the clip's 95th-percentile frame level and above ACTIVE_ABS_DB."""
    return (frame_db > ref_db - ACTIVE_REL_DB) & (frame_db > ACTIVE_ABS_DB)


def hangover(active: np.ndarray, frames: int) -> np.ndarray:
    """Causal hangover: frame j is on when any of frames j-frames .. j is active."""
    if frames <= 0:
        return active.copy()
    out = active.copy()
    for k in range(1, frames + 1):
        out[k:] |= active[:-k]
    return out


def split(clips: list[Clip], which: str) -> list[Clip]:
    return [c for c in clips if c.split == which]


def frames_of(n_samples: int) -> int:
    return n_samples // FRAME_SAMPLES


if __name__ == "__main__":  # decode + cache everything, print a summary
    import sys
    import time

    t = time.time()
    cl = load_corpora(sys.argv[1:] or ALL_CORPORA)
    print(f"{len(cl)} clips, {sum(len(c.audio) for c in cl) / SAMPLE_RATE / 3600:.2f} h in {time.time() - t:.0f}s")
    for name in sorted({c.corpus for c in cl}):
        cc = [c for c in cl if c.corpus == name]
        refs = np.array([c.ref_db for c in cc])
        print(name, len(cc), "ref dB p5/p50/p95", np.percentile(refs, [5, 50, 95]).round(1))
