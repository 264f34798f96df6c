"""``POST /analyse``: analyse an uploaded file, DeepTone's ``process_file`` over HTTP.

The upload (a multipart form with one file field, or the raw request body) is written to
a temporary file while its size is counted, analysed with :meth:`Deeptone.process_file`
and deleted, whatever happens. Bodies over ``max_upload_bytes`` get 413 as soon as the
count passes the limit (at once when ``Content-Length`` announces it).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message

from ..engine import DEFAULT_VOLUME_THRESHOLD, Deeptone
from ..errors import (
    AudioFormatError,
    DecodeError,
    ModelError,
    ParameterError,
    UnknownModelError,
    VoiceSignatureError,
)
from ..sources.file import FileSource
from ._protocol import parse_bool, parse_float, parse_int, parse_models, parse_signatures
from ._settings import ServerSettings

__all__ = ["analyse_upload", "error_response"]

_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_CONTENT_SUFFIXES = {
    "audio/wav": ".wav",
    "audio/wave": ".wav",
    "audio/x-wav": ".wav",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/l16": ".raw",
    "audio/pcm": ".raw",
}
_COPY_BLOCK = 1 << 20


class UploadTooLarge(Exception):
    """The request body passed ``max_upload_bytes``."""


class UploadTooSlow(Exception):
    """The request body paused for longer than ``body_timeout_s``."""


def error_response(status: int, error: str) -> JSONResponse:
    return JSONResponse({"message_type": "error", "error": error}, status_code=status)


def _suffix(name: str | None, content_type: str | None) -> str:
    """A safe file suffix for libsndfile: from the file name, else the content type."""
    if name:
        suffix = Path(name).suffix
        if _SUFFIX.match(suffix):
            return suffix.lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_SUFFIXES.get(ctype, "")


async def _check_duration(path: Path, engine: Deeptone, max_seconds: float) -> None:
    """Read the upload's header; refuse it before analysis if it is outside the engine's
    limits or declares more than ``max_seconds`` of audio.

    Raises:
        DecodeError: not audio; AudioFormatError: outside ``engine.limits``;
        UploadTooLarge: too long.
    """
    source = FileSource(path)
    fmt = await source.open()
    engine.limits.check_format(fmt, repr(str(path)))
    seconds = (source.frames_total or 0) / fmt.sample_rate
    if seconds > max_seconds:
        raise UploadTooLarge(f"holds {seconds:.0f} s of audio, more than the limit of {max_seconds:g} s")


def _upload_name(filename: str | None) -> str:
    """How error messages name an upload: its client-side file name (no directories), quoted."""
    base = Path(filename).name if filename else ""
    return repr(base[:100]) if base else "the upload"


def _public(message: str, path: Path, name: str) -> str:
    """``message`` with the temporary file's path or name (with or without the suffix that
    was added) replaced by ``name``."""
    stem = path.name.split(".")[0]
    for secret in (str(path), str(path.with_name(stem)), path.name, stem):
        message = message.replace(f"'{secret}'", name).replace(secret, name)
    return message


def _temp_file() -> str:
    fd, name = tempfile.mkstemp(prefix="deeptone-upload-")
    os.close(fd)
    return name


def _limited(receive: Callable[[], Awaitable[Message]], limit: int, timeout_s: float) -> Callable[[], Awaitable[Message]]:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        with anyio.move_on_after(timeout_s) as scope:
            message = await receive()
        if scope.cancelled_caught:
            raise UploadTooSlow
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge
        return message

    return counted


async def _save_upload(upload: UploadFile, dest: Path) -> None:
    async with await anyio.open_file(dest, "wb") as out:
        while block := await upload.read(_COPY_BLOCK):
            await out.write(block)


async def _save_body(request: Request, dest: Path) -> None:
    async with await anyio.open_file(dest, "wb") as out:
        async for block in request.stream():
            await out.write(block)


def _analysis_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    known = {
        "models",
        "output_period",
        "volume_threshold",
        "include_raw_values",
        "include_summary",
        "include_transitions",
        "channel",
        "filename",
        "voice_signatures",
    }
    unknown = sorted(set(q) - known)
    if unknown:
        raise ParameterError(f"unknown query parameter(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    channel = q.get("channel")
    volume = parse_float("volume_threshold", q.get("volume_threshold"), DEFAULT_VOLUME_THRESHOLD)
    return {
        "models": parse_models(q.get("models")),
        "output_period": parse_int("output_period", q.get("output_period"), 1024),
        "channel": None if channel is None else parse_int("channel", channel, 0),
        "include_summary": parse_bool("include_summary", q.get("include_summary")),
        "include_transitions": parse_bool("include_transitions", q.get("include_transitions")),
        "include_raw_values": parse_bool("include_raw_values", q.get("include_raw_values")),
        "volume_threshold": volume,
        "voice_signatures": parse_signatures(q.get("voice_signatures")),
    }


async def analyse_upload(request: Request, engine: Deeptone, settings: ServerSettings) -> JSONResponse:
    """Save the upload to a temporary file, analyse it, delete it; JSON response.

    Status codes: 200 with the ``process_file`` result; 400 bad parameters or an empty
    or malformed upload; 408 a body that paused longer than ``body_timeout_s``; 413 more
    bytes than ``max_upload_bytes`` or more audio than ``max_upload_seconds``; 415 not
    decodable audio, or audio outside the engine's limits (sample rate, channels, float
    range); 500 a model failure.
    """
    max_bytes = settings.max_upload_bytes
    try:
        args = _analysis_args(request)
    except ParameterError as exc:
        return error_response(400, str(exc))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return error_response(413, f"the upload of {declared} bytes exceeds the limit of {max_bytes} bytes")
    limited = Request(request.scope, _limited(request.receive, max_bytes, settings.body_timeout_s))
    ctype = request.headers.get("content-type", "")
    path = Path(await anyio.to_thread.run_sync(_temp_file))
    name = _upload_name(request.query_params.get("filename"))
    try:
        try:
            if ctype.startswith("multipart/form-data"):
                async with limited.form(max_files=1, max_fields=16) as form:
                    uploads = [v for v in form.values() if isinstance(v, UploadFile)]
                    if not uploads:
                        return error_response(400, "the multipart form holds no file")
                    suffix = _suffix(uploads[0].filename, uploads[0].content_type)
                    name = _upload_name(uploads[0].filename)
                    await _save_upload(uploads[0], path)
            else:
                suffix = _suffix(request.query_params.get("filename"), ctype)
                await _save_body(limited, path)
        except UploadTooLarge:
            return error_response(413, f"the upload exceeds the limit of {max_bytes} bytes")
        except UploadTooSlow:
            return error_response(408, f"the upload paused for more than {settings.body_timeout_s:g} s")
        if (await anyio.Path(path).stat()).st_size == 0:
            return error_response(400, "the upload is empty")
        if suffix:  # libsndfile and the raw reader go by the suffix
            path = Path(await anyio.Path(path).rename(path.with_name(path.name + suffix)))
        # messages name the upload, never the server's temporary path
        try:
            await _check_duration(path, engine, settings.max_upload_seconds)
            result = await engine.process_file(path, **args)
        except UploadTooLarge as exc:
            return error_response(413, f"{name} {exc}")
        except (ParameterError, UnknownModelError, VoiceSignatureError) as exc:
            return error_response(400, _public(str(exc), path, name))
        except AudioFormatError as exc:
            return error_response(415, f"{name} cannot be analysed: {_public(str(exc), path, name)}")
        except DecodeError as exc:
            return error_response(415, f"{name} is not audio this server can decode: {_public(exc.reason, path, name)}")
        except ModelError as exc:
            return error_response(500, f"analysis failed: {_public(str(exc), path, name)}")
        return JSONResponse(dict(result))
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.Path(path).unlink(missing_ok=True)
