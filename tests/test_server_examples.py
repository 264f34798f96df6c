"""The integration examples, run as their users run them (subprocesses) against real components.

* ``examples/bot_mic.py`` listens to the JACK dummy ``loopback`` device while speech is
  played into it, and streams it to a server running in this test;
* ``examples/asgi_mount.py`` serves an app with the server mounted at ``/voice``;
* ``examples/custom_sinks.py`` writes JSON Lines and counts speech, in-process and through
  a server, with the same output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import soundfile as sf
from anyio.abc import Process
from conftest import SR
from loopback import Player, loopback_device

from deeptone_async import Deeptone
from deeptone_async.client import stream_to_server
from deeptone_async.server import running_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


async def read_until(process: Process, marker: str, timeout: float = 8.0) -> str:
    """Stdout of ``process`` up to and including the first line holding ``marker``."""
    assert process.stdout is not None
    out = b""
    with anyio.fail_after(timeout):
        while marker.encode() not in out:
            out += await process.stdout.receive()
    return out.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.mic
async def test_bot_reacts_to_speech_on_the_microphone(engine: Deeptone, speech: np.ndarray) -> None:
    if not loopback_device():
        pytest.skip("no JACK 'loopback' device (scripts/test.sh starts jackd)")
    talk = speech[: int(2.5 * SR)].astype(np.float32) / 32768
    # 1.5 s of silence first: on a loaded machine the bot can take a while to open the device
    audio = np.concatenate([np.zeros(3 * SR // 2, np.float32), talk, np.zeros(3 * SR, np.float32)])
    player = Player(audio)
    async with running_server(engine=engine) as srv:
        cmd = [sys.executable, str(EXAMPLES / "bot_mic.py"), "--url", srv.url, "--device", "loopback"]
        cmd += ["--seconds", "5.5", "--output-period", "256"]
        async with await anyio.open_process(cmd, env=ENV) as bot:
            try:
                out = await read_until(bot, "listening")
                player.stream.start()  # the bot is about to open the device
                out += await read_until(bot, "done:", timeout=12)
            finally:
                player.stream.close()
            assert await bot.wait() == 0
        deeptone = srv.deeptone
        assert deeptone is not None and deeptone.slots.total == 1
    lines = out.splitlines()
    started = [i for i, line in enumerate(lines) if "someone started talking" in line]
    assert started, out
    assert any("quiet now" in line for line in lines[started[0] + 1 :]), out
    assert "0 frames dropped" in out


async def test_asgi_mount_example_serves_the_parent_app_and_the_stream(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, str(EXAMPLES / "asgi_mount.py"), "--port", str(port)]
    async with await anyio.open_process(cmd, env=ENV) as app:
        try:
            await read_until(app, "serving", timeout=9)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as http:
                with anyio.fail_after(8):
                    while True:
                        try:
                            home = await http.get("/")
                            break
                        except httpx.TransportError:
                            await anyio.sleep(0.05)
                assert home.json()["voice analytics"] == f"{base}/voice/stream"
                tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(2 * SR) / SR)).astype(np.float32)
                url = f"ws://127.0.0.1:{port}/voice/stream"
                async with stream_to_server(url, tone, models="vad", output_period=512) as results:
                    got = [r async for r in results]
                health = (await http.get("/voice/health")).json()
        finally:
            app.send_signal(signal.SIGINT)
            with anyio.fail_after(8):
                code = await app.wait()
    assert [r["timestamp"] for r in got] == [0, 512, 1024, 1536]
    assert health["total_connections"] == 1
    assert health["batching"] is not None and health["batching"]["blocks"] > 0  # the lifespan ran
    assert code == 0


async def test_custom_sinks_example_in_process_and_through_a_server(
    engine: Deeptone, speech_wav: Path, tmp_path: Path
) -> None:
    local_out, remote_out = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    script = str(EXAMPLES / "custom_sinks.py")
    local = await anyio.run_process([sys.executable, script, str(speech_wav), "--out", str(local_out)], env=ENV)
    async with running_server(engine=engine) as srv:
        cmd = [sys.executable, script, str(speech_wav), "--out", str(remote_out), "--url", srv.url]
        async with await anyio.open_process(cmd, env=ENV) as proc:
            out = await read_until(proc, "lines in", timeout=9)
            assert await proc.wait() == 0
    lines = [json.loads(line) for line in local_out.read_text().splitlines()]
    assert remote_out.read_text() == local_out.read_text()
    duration = sf.info(str(speech_wav)).duration
    assert len(lines) == int(np.ceil(duration / 0.512))
    assert lines[0]["t"] == 0 and lines[1]["t"] == 0.512 and {"vad", "t"} == set(lines[0])
    speech_s = 0.512 * sum(line["vad"] == "speech" for line in lines)
    summary = local.stdout.decode().strip().splitlines()[-1]
    assert summary.startswith(f"speech: {speech_s:.2f} s of") and speech_s > 1.0
    assert out.strip().splitlines()[-1] == summary.replace(str(local_out), str(remote_out))
