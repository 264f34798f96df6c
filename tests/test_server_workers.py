"""``deeptone-async serve --workers N`` and draining on SIGTERM, in real processes."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("uvicorn")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
                found.append(int(entry.name))
    return found


def await_health(url: str, proc: subprocess.Popen[str]) -> None:
    """Wait (up to 90 s: engines load in every worker) for ``url``'s /health to answer 200;
    fails the test, with what the server printed when it has exited, if it never does."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout is not None and proc.poll() is not None else ""
    pytest.fail(f"the server did not start: {out}")


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    args = getattr(request, "param", [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "deeptone_async", "serve", "--port", str(port), "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"127.0.0.1:{port}"
    try:
        await_health(url, proc)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def pcm(speech_wav: Path) -> bytes:
    x, _ = sf.read(speech_wav, dtype="int16")
    return np.asarray(x, "<i2").tobytes()


def results_until_close(ws: object) -> tuple[list[dict], int | None]:
    out = []
    try:
        while True:
            out.append(json.loads(ws.recv(timeout=30)))  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return out, exc.rcvd.code if exc.rcvd else None


@pytest.mark.parametrize("server", [["--workers", "2", "--drain-timeout", "30"]], indirect=True)
def test_two_workers_each_serve_streams_and_drain_on_sigterm(server: tuple[subprocess.Popen[str], str], speech_wav: Path) -> None:
    proc, url = server
    assert len(children(proc.pid)) == 2  # two worker processes, each with its own engine
    audio = pcm(speech_wav)
    # streams are answered (by whichever worker accepts them)
    for _ in range(3):
        with connect(f"ws://{url}/stream?models=vad") as ws:
            ws.send(audio)
            ws.send(b"")
            got, code = results_until_close(ws)
        assert code == 1000 and len(got) == -(-len(audio) // 2 // 16384) and got[0]["message_type"] == "results"

    # /metrics sums every worker's counters, whichever worker answers the scrape
    if importlib.util.find_spec("prometheus_client") is not None:
        for _ in range(4):
            text = httpx.get(f"http://{url}/metrics", timeout=5).text
            assert "deeptone_streams_total 3.0" in text and "deeptone_active_streams 0.0" in text

    # open streams, half their audio sent; then SIGTERM to the supervisor
    with contextlib.ExitStack() as stack:
        open_streams = [stack.enter_context(connect(f"ws://{url}/stream?models=vad")) for _ in range(4)]
        for ws in open_streams:
            ws.send(audio[: len(audio) // 2])
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        for _ in range(4):  # whichever worker answers, it drains
            health = httpx.get(f"http://{url}/health", timeout=5)
            assert health.status_code == 503 and health.json()["status"] == "draining"
        with connect(f"ws://{url}/stream?models=vad") as late:
            refused, code = results_until_close(late)
        assert code == 1012 and refused[0]["message_type"] == "error" and "draining" in refused[0]["error"]
        assert proc.poll() is None  # still serving the open streams
        for ws in open_streams:  # they finish normally, every result delivered
            ws.send(audio[len(audio) // 2 :])
            ws.send(b"")
            got, code = results_until_close(ws)
            assert code == 1000 and len(got) == -(-len(audio) // 2 // 16384)
    assert proc.wait(20) == 0
    assert children(proc.pid) == []


@pytest.mark.parametrize("server", [["--drain-timeout", "1.5"]], indirect=True)
def test_a_stream_still_open_when_the_drain_times_out_is_closed_with_1012(server: tuple[subprocess.Popen[str], str], speech_wav: Path) -> None:
    proc, url = server
    with connect(f"ws://{url}/stream?models=vad") as ws:
        ws.send(pcm(speech_wav)[:64000])
        time.sleep(0.3)
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        got, code = results_until_close(ws)  # never ends its audio
    assert code == 1012 and 1.0 < time.monotonic() - start < 10
    assert got and got[0]["message_type"] == "results"
    assert proc.wait(20) == 0


def test_ctrl_c_in_a_terminal_stops_every_worker_at_once(speech_wav: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "deeptone_async", "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        await_health(f"127.0.0.1:{port}", proc)
        assert len(children(proc.pid)) == 2
        with connect(f"ws://127.0.0.1:{port}/stream?models=vad") as ws:
            ws.send(pcm(speech_wav)[:32000])
            start = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
            _, code = results_until_close(ws)
        assert code == 1012  # closed now, not after a drain
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - start < 15, err
    assert "Traceback" not in err
