"""Voice signatures: enrol known speakers so SpeakerMap names them.

:meth:`Deeptone.create_voice_signatures <deeptone_async.Deeptone.create_voice_signatures>`
turns 1-10 s of a speaker's audio into ``{"version": int, "data": base64}``; passing such
signatures as ``voice_signatures=`` to ``process_stream``, ``process_file`` or
``process_audio_bytes`` makes SpeakerMap report the speaker's id instead of a number.

A signature's ``data`` is the base64 of ``b"DTVS"``, the embedding's dimension (uint16),
the number of frames averaged (uint32) and the mean voice embedding (float32), all
little-endian; ``version`` is the SpeakerMap embedding's version (``embedding.json``).
Embeddings of different versions do not compare, so a signature of another version is
refused with :class:`~deeptone_async.errors.SignatureVersionError`.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .aggregator import SPEECH_DECISION
from .audio import Float32
from .errors import NotEnoughSpeechError, ParameterError, SignatureVersionError, VoiceSignatureError
from .features import FRAME_SAMPLES, SAMPLE_RATE
from .speaker_map import Clustering, is_speaker_map, with_known_speakers
from .spec import ModelSpec

if TYPE_CHECKING:
    from .engine import Deeptone

__all__ = [
    "MAX_SIGNATURES",
    "apply_signatures",
    "create_voice_signatures",
    "decode_signature",
    "encode_signature",
]

_MAGIC = b"DTVS"
_HEADER = struct.Struct("<4sHI")
#: Speech a signature needs, in ms.
MIN_SPEECH_MS = 1000
#: Audio accepted per speaker sample, in seconds (DeepTone's range).
MIN_AUDIO_S, MAX_AUDIO_S = 1.0, 10.0
#: Most signatures one call may name (each is one centroid in every stream's map).
MAX_SIGNATURES = 64
_FRAME_MS = FRAME_SAMPLES * 1000 // SAMPLE_RATE


def encode_signature(vector: Float32, frames: int, version: int) -> dict[str, Any]:
    """``{"version", "data"}`` for a mean embedding ``vector`` of ``frames`` frames."""
    vec = np.asarray(vector, "<f4")
    payload = _HEADER.pack(_MAGIC, vec.shape[0], int(frames)) + vec.tobytes()
    return {"version": int(version), "data": base64.b64encode(payload).decode("ascii")}


def decode_signature(speaker_id: str, signature: Any, spec: ModelSpec) -> tuple[Float32, int]:
    """The unit voice vector and frame count of ``signature``, checked against ``spec``.

    Raises:
        SignatureVersionError: made by another version of the embedding.
        VoiceSignatureError: not a ``{"version", "data"}`` dict, bad base64, wrong size.
    """
    if not isinstance(signature, Mapping) or "version" not in signature or "data" not in signature:
        raise VoiceSignatureError(f"the voice signature of {speaker_id!r} must be a {{'version', 'data'}} dict")
    expected = int(spec.extra["version"])
    if isinstance(signature["version"], bool) or signature["version"] != expected:
        raise SignatureVersionError(speaker_id, signature["version"], expected)
    try:
        raw = base64.b64decode(str(signature["data"]), validate=True)
        magic, dim, frames = _HEADER.unpack_from(raw)
    except (binascii.Error, ValueError, struct.error) as exc:
        raise VoiceSignatureError(f"the voice signature of {speaker_id!r} is not valid base64 signature data") from exc
    want = int(spec.extra["dim"])
    if magic != _MAGIC or dim != want or len(raw) != _HEADER.size + 4 * want:
        raise VoiceSignatureError(f"the voice signature of {speaker_id!r} is not a {want}-dimensional SpeakerMap signature")
    vec = np.frombuffer(raw, "<f4", offset=_HEADER.size).astype(np.float32)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise VoiceSignatureError(f"the voice signature of {speaker_id!r} holds no voice")
    return vec / norm, int(frames)


def _check_signatures(signatures: Any) -> Mapping[str, Any]:
    if not isinstance(signatures, Mapping):
        raise ParameterError(f"voice_signatures must be a {{speaker_id: signature}} dict, got {type(signatures).__name__}")
    if len(signatures) > MAX_SIGNATURES:
        raise ParameterError(f"at most {MAX_SIGNATURES} voice signatures per call, got {len(signatures)}")
    return signatures


def apply_signatures(specs: list[ModelSpec], voice_signatures: Mapping[str, Any] | None) -> list[ModelSpec]:
    """``specs`` with SpeakerMap's replaced by one that knows ``voice_signatures``' speakers.

    Raises:
        ParameterError: signatures without SpeakerMap among the models, too many, or a
            speaker id that clashes with SpeakerMap's own labels.
        SignatureVersionError, VoiceSignatureError: a signature that cannot be used.
    """
    if voice_signatures is None:
        return specs
    signatures = _check_signatures(voice_signatures)
    found = [i for i, s in enumerate(specs) if is_speaker_map(s)]
    if not found:
        raise ParameterError("voice_signatures name speakers for SpeakerMap; add engine.models.SpeakerMap to models")
    out = list(specs)
    for i in found:
        known = {sid: decode_signature(sid, sig, specs[i])[0] for sid, sig in signatures.items()}
        out[i] = with_known_speakers(specs[i], known)
    return out


def _sample_source(engine: Deeptone, speaker_id: str, audio: Any) -> Any:
    from .sources.file import FileSource
    from .sources.memory import ArraySource

    if isinstance(audio, (str, os.PathLike)):
        if not Path(audio).is_file():
            raise FileNotFoundError(f"speaker {speaker_id!r}: no such audio file: {audio}")
        return FileSource(audio, channel=0)
    if isinstance(audio, np.ndarray):
        if audio.ndim != 1:
            raise ParameterError(f"speaker {speaker_id!r}: audio must be a 1-D array of 16 kHz samples, got shape {audio.shape}")
        return ArraySource(audio, sample_rate=SAMPLE_RATE)
    raise ParameterError(f"speaker {speaker_id!r}: audio must be a numpy array (16 kHz) or a file path, got {type(audio).__name__}")


async def _embed_sample(engine: Deeptone, spec: ModelSpec, speaker_id: str, audio: Any) -> tuple[Float32, int]:
    """The mean embedding of a sample's speech frames and how many frames it averages."""
    from .engine import DEFAULT_VOLUME_THRESHOLD
    from .pipeline import Pipeline

    source = _sample_source(engine, speaker_id, audio)
    fmt = await source.open()
    _, plan = engine.plan([spec])
    pipeline = Pipeline(source, fmt, plan, DEFAULT_VOLUME_THRESHOLD, engine._limiter, engine.limits)
    embs, speech, total = [], [], 0
    try:
        async for block, outputs in pipeline.blocks():
            assert block.silent is not None and outputs.speech is not None
            embs.append(outputs.probs[spec.key][0])
            speech.append((outputs.speech[0] >= SPEECH_DECISION) & ~block.silent[0])
            total += int(block.valid.sum())
    finally:
        await pipeline.aclose()
    seconds = total / SAMPLE_RATE
    if seconds > MAX_AUDIO_S + 0.064:
        raise ParameterError(f"speaker {speaker_id!r}: give {MIN_AUDIO_S:g}-{MAX_AUDIO_S:g} s of audio, got {seconds:.1f} s")
    is_speech = np.concatenate(speech) if speech else np.zeros(0, bool)
    speech_ms = int(is_speech.sum()) * _FRAME_MS
    if seconds < MIN_AUDIO_S or speech_ms < MIN_SPEECH_MS:
        raise NotEnoughSpeechError(speaker_id, speech_ms, MIN_SPEECH_MS)
    emb = np.concatenate(embs)
    window = spec.context_frames + 1
    in_window = np.convolve(is_speech.astype(np.int64), np.ones(window, np.int64))[: is_speech.shape[0]]
    use = is_speech & (in_window >= Clustering.of(spec).min_window_speech)
    if use.sum() < 4:  # short speech: every speech frame rather than almost none
        use = is_speech
    mean = emb[use].astype(np.float64).sum(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), int(use.sum())


async def create_voice_signatures(
    engine: Deeptone, speaker_samples: Sequence[Mapping[str, Any]], voice_signatures: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The engine's :meth:`~deeptone_async.Deeptone.create_voice_signatures` (see there)."""
    spec = next((s for s in engine.models if is_speaker_map(s)), None)
    if spec is None:
        from .errors import UnknownModelError

        raise UnknownModelError("voice signatures need the SpeakerMap model, which this engine does not have")
    out: dict[str, dict[str, Any]] = {}
    existing = {}
    if voice_signatures is not None:
        for sid, sig in _check_signatures(voice_signatures).items():
            existing[sid] = decode_signature(sid, sig, spec)
            out[sid] = dict(sig)
    if isinstance(speaker_samples, (str, bytes, Mapping)) or not isinstance(speaker_samples, Sequence):
        raise ParameterError("speaker_samples must be a list of {'speaker_id': ..., 'audio': ...} dicts")
    for sample in speaker_samples:
        if not isinstance(sample, Mapping) or "speaker_id" not in sample or "audio" not in sample:
            raise ParameterError(f"each speaker sample is a {{'speaker_id', 'audio'}} dict, got {sample!r:.80}")
        sid = sample["speaker_id"]
        with_known_speakers(spec, {sid: np.zeros(1, np.float32)})  # the id must be usable: raises if not
        vec, frames = await _embed_sample(engine, spec, sid, sample["audio"])
        if sid in existing:  # adds to the speaker's signature: a mean weighted by frames
            old, old_frames = existing[sid]
            total = old.astype(np.float64) * old_frames + vec.astype(np.float64) * frames
            vec, frames = (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32), old_frames + frames
        existing[sid] = (vec, frames)
        out[sid] = encode_signature(vec, frames, int(spec.extra["version"]))
    if len(out) > MAX_SIGNATURES:
        raise ParameterError(f"at most {MAX_SIGNATURES} voice signatures, got {len(out)}")
    return out
