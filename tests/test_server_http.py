"""``POST /analyse`` (process_file over HTTP) and the ``serve`` command."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import SR, noise, tone

from deeptone_async import Deeptone
from deeptone_async.server import ServerSettings, running_server


def wav_bytes(x: np.ndarray, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("deeptone-upload-*")}


AUDIO = np.concatenate([tone(1.0), noise(1.0, amp=0.001)])


async def test_analyse_multipart_and_raw_body_match_process_file(engine: Deeptone, tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(AUDIO))
    expected = await engine.process_file(path, ["vad"], 512, include_summary=True, include_transitions=True)
    before = leftovers()
    query = "models=vad&output_period=512&include_summary=true&include_transitions=true"
    async with running_server(engine=engine) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        multipart = await http.post(f"/analyse?{query}", files={"file": ("in.wav", path.read_bytes(), "audio/wav")})
        raw = await http.post(f"/analyse?{query}", content=path.read_bytes(), headers={"content-type": "audio/wav"})
        flac = await http.post(f"/process_file?{query}", content=wav_bytes(AUDIO, "FLAC"))  # format sniffed
        pcm = (np.clip(AUDIO, -1, 1) * 32767).astype("<i2").tobytes()
        headerless = await http.post(f"/analyse?{query}&filename=x.raw", content=pcm)
    for response in (multipart, raw, flac):
        assert response.status_code == 200, response.text
        assert response.json() == dict(expected)
    assert headerless.status_code == 200
    assert len(headerless.json()["channels"]["0"]["time_series"]) == 4
    assert leftovers() <= before  # every upload was deleted


async def test_analyse_errors(engine: Deeptone) -> None:
    before = leftovers()
    settings = ServerSettings(api_key="k", max_upload_bytes=50_000)
    key = {"X-Api-Key": "k"}
    small = wav_bytes(AUDIO[: SR // 2])
    async with running_server(engine=engine, settings=settings) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.post("/analyse", content=small)).status_code == 401
        assert (await http.post("/analyse", content=small, headers={"X-Api-Key": "x"})).status_code == 401
        assert (await http.post("/analyse", content=small, headers=key)).status_code == 200
        big = wav_bytes(AUDIO)  # 64 kB > 50 kB
        too_big = await http.post("/analyse", content=big, headers=key)
        assert too_big.status_code == 413 and "50000 bytes" in too_big.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while it streams
            for lo in range(0, len(big), 8192):
                yield big[lo : lo + 8192]

        streamed = await http.post("/analyse", content=chunks(), headers=key)
        assert streamed.status_code == 413
        multipart_big = await http.post("/analyse", files={"file": ("a.wav", big)}, headers=key)
        assert multipart_big.status_code == 413
        not_audio = await http.post("/analyse?filename=notes.txt", content=b"hello " * 100, headers=key)
        assert not_audio.status_code == 415 and "decode" in not_audio.json()["error"]
        assert (await http.post("/analyse?models=nope", content=small, headers=key)).status_code == 400
        assert (await http.post("/analyse?output_period=100", content=small, headers=key)).status_code == 400
        assert (await http.post("/analyse?bogus=1", content=small, headers=key)).status_code == 400
        assert (await http.post("/analyse", content=b"", headers=key)).status_code == 400
        assert (await http.get("/health")).status_code == 200  # open without a key
    assert leftovers() <= before


async def test_analyse_errors_name_the_upload_never_a_server_path(engine: Deeptone) -> None:
    stereo = wav_bytes(np.stack([AUDIO, AUDIO], axis=1))
    async with running_server(engine=engine) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        responses = {
            "multipart": await http.post("/analyse", files={"file": ("../../etc/notes.txt", b"hello " * 100)}),
            "raw body": await http.post("/analyse?filename=notes.txt", content=b"hello " * 100),
            "unnamed": await http.post("/analyse", content=b"RIFF" + b"\0" * 200),
            "no channel 5": await http.post("/analyse?channel=5&filename=call.wav", content=stereo),
        }
    messages = {k: r.json()["error"] for k, r in responses.items()}
    assert [r.status_code for r in responses.values()] == [415, 415, 415, 400], messages
    assert messages["multipart"].startswith("'notes.txt' is not audio") and "etc" not in messages["multipart"]
    assert messages["raw body"].startswith("'notes.txt' is not audio")
    assert messages["unnamed"].startswith("the upload is not audio")
    assert "channel 5 does not exist in 'call.wav'" in messages["no channel 5"]
    for message in messages.values():
        assert tempfile.gettempdir() not in message and "deeptone-upload" not in message, message


async def test_uploads_are_bounded_in_audio_seconds_and_body_pauses(engine: Deeptone) -> None:
    settings = ServerSettings(max_upload_seconds=1.5, body_timeout_s=0.5)
    long_low_rate = wav_bytes(np.zeros(8_000, np.float32))  # 0.5 s at 16 kHz ...
    as_4k = bytearray(long_low_rate)
    as_4k[24:28] = (4_000).to_bytes(4, "little")  # ... declared 4 kHz: 2 s of audio, same bytes
    as_4k[28:32] = (8_000).to_bytes(4, "little")

    async def trickle() -> AsyncIterator[bytes]:
        yield long_low_rate[:100]
        await anyio.sleep(2)
        yield long_low_rate[100:]

    async with running_server(engine=engine, settings=settings) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        short = await http.post("/analyse?filename=short.wav", content=long_low_rate)
        long = await http.post("/analyse?filename=long.wav", content=bytes(as_4k))
        slow = await http.post("/analyse?filename=slow.wav", content=trickle())
    assert short.status_code == 200
    assert long.status_code == 413 and long.json()["error"] == "'long.wav' holds 2 s of audio, more than the limit of 1.5 s"
    assert slow.status_code == 408 and "paused for more than 0.5 s" in slow.json()["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_serves_and_stops_gracefully(stop: signal.Signals) -> None:
    port = free_port()
    env = {**os.environ, "DEEPTONE_API_KEY": "from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deeptone_async", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30  # the engine loads nine models first (seconds on a busy machine)
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert health is not None and health.json()["status"] == "ok"
        denied = httpx.post(f"http://127.0.0.1:{port}/analyse", content=b"x")
        assert denied.status_code == 401  # the key came from $DEEPTONE_API_KEY
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=8)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err.decode()
    assert f"ws://127.0.0.1:{port}/stream" in out.decode() and f"the live page at http://127.0.0.1:{port}/" in out.decode()


def test_the_cli_does_not_import_the_server_extra() -> None:
    code = (
        "import sys, deeptone_async.cli as c, deeptone_async.server.cli as s; c.build_parser(); "
        "from deeptone_async.server import ServerSettings; ServerSettings(); "
        "assert not {'starlette', 'uvicorn', 'websockets'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


async def test_mounted_without_its_lifespan_streams_still_share_calls(engine: Deeptone) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from deeptone_async.client import stream_to_server
    from deeptone_async.server import create_app

    inner = create_app(engine)
    parent = Starlette(routes=[Mount("/dt", app=inner)])  # the lifespan is not passed on
    async with running_server(parent) as srv:
        async with stream_to_server(f"ws://127.0.0.1:{srv.port}/dt/stream", AUDIO, models="vad") as results:
            got = [r async for r in results]
        health = inner.state.deeptone.engine.batching_stats()
    assert len(got) == 2
    assert health is not None and health["blocks"] > 0  # the engine's batcher ran the stream, no lifespan needed
