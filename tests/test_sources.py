from __future__ import annotations

import socket
import threading
from contextlib import aclosing
from pathlib import Path

import anyio
import numpy as np
import pytest
import soundfile as sf
from conftest import SR

from deeptone_async import AudioFormat, Deeptone, SourceError
from deeptone_async.sources import ArraySource, FileSource, IterableSource, TcpSource, as_source
from deeptone_async.testing import check_source


async def test_sources_follow_the_protocol(speech_wav: Path, speech: np.ndarray, tmp_path: Path) -> None:
    raw = tmp_path / "speech.raw"
    raw.write_bytes(speech.astype("<i2").tobytes())
    for src in [
        FileSource(speech_wav),
        FileSource(raw),
        ArraySource(speech),
        IterableSource([speech.tobytes()]),
        as_source(speech.tobytes()),
    ]:
        n = await check_source(src)
        assert n == len(speech), type(src).__name__


async def test_raw_pcm_file_equals_wav(engine: Deeptone, speech_wav: Path, speech: np.ndarray, tmp_path: Path) -> None:
    raw = tmp_path / "speech.pcm"
    raw.write_bytes(speech.astype("<i2").tobytes())
    a = await engine.process_file(raw, ["vad"])
    b = await engine.process_file(speech_wav, ["vad"])
    assert a == b


async def test_sync_generator_is_run_off_the_loop(engine: Deeptone, speech: np.ndarray) -> None:
    import threading
    import time

    main = threading.get_ident()
    threads = set()

    def gen():
        for i in range(0, len(speech), 4096):
            threads.add(threading.get_ident())
            time.sleep(0.001)  # a blocking read
            yield speech[i : i + 4096].tobytes()

    out = [r async for r in engine.process_stream(gen(), ["vad"])]
    assert len(out) == -(-len(speech) // SR)
    assert main not in threads


async def test_tcp_client_source(engine: Deeptone, speech: np.ndarray) -> None:
    data = speech.astype("<i2").tobytes()

    async def serve(stream) -> None:
        async with stream:
            for i in range(0, len(data), 999):  # odd-sized sends
                await stream.send(data[i : i + 999])

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        got = [r async for r in engine.process_stream(TcpSource("127.0.0.1", port), ["vad"])]
        tg.cancel_scope.cancel()
    ref = await engine.process_audio_bytes(speech, ["vad"])
    assert got == ref["time_series"]


async def test_tcp_server_source(engine: Deeptone, speech: np.ndarray) -> None:
    data = speech.astype("<i2").tobytes()
    src = TcpSource("127.0.0.1", 0, listen=True)
    await src.open()
    assert src.port > 0

    async def client() -> None:
        async with await anyio.connect_tcp("127.0.0.1", src.port) as s:
            await s.send(data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(client)
        got = [r async for r in engine.process_stream(src, ["vad"])]
    ref = await engine.process_audio_bytes(speech, ["vad"])
    assert got == ref["time_series"]


async def test_tcp_connection_refused_is_a_source_error(engine: Deeptone) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    with pytest.raises(SourceError, match="cannot connect"):
        async for _ in engine.process_stream(TcpSource("127.0.0.1", port), ["vad"]):
            pass


async def test_file_source_reports_progress(speech_wav: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    src = FileSource(speech_wav, block_frames=8000, progress=lambda d, t: seen.append((d, t)))
    fmt = await src.open()
    assert fmt == AudioFormat(SR, 1, "float32")
    async for _ in src:
        pass
    total = sf.info(str(speech_wav)).frames
    assert seen[-1] == (total, total) and len(seen) == -(-total // 8000)


async def test_missing_sounddevice_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from deeptone_async.sources import MicrophoneSource

    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "sounddevice":
            raise ImportError("No module named 'sounddevice'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("importlib.import_module", lambda name: fake_import(name))
    monkeypatch.delitem(__import__("sys").modules, "sounddevice", raising=False)
    with pytest.raises(ImportError, match=r"deeptone-async\[mic\]"):
        async for _ in MicrophoneSource():
            pass


def _flood(sock: socket.socket, sent: list[int], limit: int = 256 << 20) -> None:
    """Send zeros as fast as the peer takes them (until ``limit`` or 2 s blocked)."""
    sock.settimeout(2.0)
    piece = bytes(1 << 16)
    try:
        while sent[0] < limit:
            sock.sendall(piece)
            sent[0] += len(piece)
    except OSError:
        pass
    finally:
        sock.close()


@pytest.mark.parametrize("listen", [True, False])
async def test_tcp_source_holds_a_fast_sender_back(listen: bool) -> None:
    # a client that sends faster than the consumer reads is held back by TCP flow control:
    # the source reads nothing ahead of the consumer but one chunk (and the kernel's buffers)
    sent = [0]
    if listen:
        src = TcpSource("127.0.0.1", 0, listen=True)
        await src.open()
        sender = threading.Thread(target=lambda: _flood(socket.create_connection(("127.0.0.1", src.port)), sent))
        listener = None
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        src = TcpSource("127.0.0.1", listener.getsockname()[1])
        sender = threading.Thread(target=lambda: _flood(listener.accept()[0], sent))
    sender.start()
    await anyio.sleep(0.5)  # the sender is already sending when the source first reads
    got = 0
    async with aclosing(src.__aiter__()) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:  # a slow consumer from the start
            got += len(chunk)
            if got >= 1 << 20:
                break
            await anyio.sleep(0.005)
        await anyio.sleep(1.5)  # the sender blocks meanwhile
        ahead = sent[0] - got
    await anyio.to_thread.run_sync(sender.join)
    if listener is not None:
        listener.close()
    assert sent[0] < 256 << 20, "the sender was never held back"
    assert ahead < 32 << 20, f"{ahead / 2**20:.0f} MiB were read ahead of the consumer"
