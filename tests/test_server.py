"""The streaming server's protocol, end to end over loopback with a real uvicorn server.

Each test starts the app with :func:`running_server` on a free port in its own event
loop and talks to it with the ``websockets`` client, as any DeepTone cloud client would.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import numpy as np
import pytest
from conftest import noise, tone
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from deeptone_async import Deeptone
from deeptone_async.server import RunningServer, ServerSettings, running_server


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x * 32768), -32768, 32767).astype("<i2").tobytes()


def signal(seconds: float = 3.2) -> np.ndarray:
    """A tone, then noise, then near silence: different VAD confidences and labels."""
    third = seconds / 3
    return np.concatenate([tone(third), noise(third, amp=0.2), noise(seconds - 2 * third, amp=0.001, seed=1)])


def connect_to(srv: RunningServer, query: str = "", **kwargs: Any) -> Any:
    url = srv.ws_url + (f"?{query}" if query else "")
    return connect(url, compression=None, **kwargs)


async def stream_all(ws: ClientConnection, data: bytes, chunk: int = 2047) -> list[dict[str, Any]]:
    """Send ``data`` in odd-sized chunks, then the end frame; return every message."""
    for lo in range(0, len(data), chunk):
        await ws.send(data[lo : lo + chunk])
    await ws.send(b"")
    return [json.loads(m) async for m in ws]


async def refused(srv: RunningServer, query: str = "", send: Any = None, **kwargs: Any) -> tuple[int, str]:
    """Open a stream that the server must refuse; return (close code, error message)."""
    messages = []
    async with connect_to(srv, query, **kwargs) as ws:
        if send is not None:
            await ws.send(send)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                messages.append(json.loads(await ws.recv()))
    assert len(messages) == 1 and messages[0]["message_type"] == "error", messages
    rcvd = info.value.rcvd
    assert rcvd is not None
    return rcvd.code, messages[0]["error"]


@pytest.mark.parametrize("batching", [True, False])
async def test_one_message_per_output_period_in_deeptone_shape(engine: Deeptone, batching: bool) -> None:
    audio = signal(3.2)
    expected = [r async for r in engine.process_stream(pcm16(audio), ["vad"], output_period=512, include_raw_values=True)]
    settings = ServerSettings(batching=batching)
    async with running_server(engine=engine, settings=settings) as srv:
        async with connect_to(srv, "models=vad&output_period=512&include_raw_values=true") as ws:
            messages = await stream_all(ws, pcm16(audio))
            assert ws.close_code == 1000
        assert srv.deeptone is not None and srv.deeptone.slots.active == 0
    assert len(messages) == 7  # 3.2 s: six whole periods of 512 ms and the final partial one
    for i, msg in enumerate(messages):
        assert set(msg) == {"message_type", "results"} and msg["message_type"] == "results"
        (entry,) = msg["results"]["channels"].values()
        assert list(msg["results"]["channels"]) == ["0"]
        assert entry["timestamp"] == 512 * i
        assert set(entry["results"]["vad"]) == {"result", "confidence"}
        assert set(entry["raw"]["vad"]) == {"speech", "no_speech"}
    assert [m["results"]["channels"]["0"] for m in messages] == expected
    assert {m["results"]["channels"]["0"]["results"]["vad"]["result"] for m in messages} >= {"silence"}


async def test_raw_values_only_when_asked_and_every_model_by_default(engine: Deeptone) -> None:
    async with running_server(engine=engine) as srv:
        async with connect_to(srv, "output_period=1024") as ws:
            messages = await stream_all(ws, pcm16(signal(2.0)))
    keys = {spec.key for spec in engine.models}
    for msg in messages:
        entry = msg["results"]["channels"]["0"]
        assert "raw" not in entry
        assert set(entry["results"]) == keys


async def test_other_sample_rates_are_resampled(engine: Deeptone) -> None:
    rate = 8_000
    t = np.arange(2 * rate) / rate
    audio = 0.3 * np.sin(2 * np.pi * 300 * t)
    async with running_server(engine=engine) as srv:
        async with connect_to(srv, f"models=vad&output_period=256&sample_rate={rate}") as ws:
            messages = await stream_all(ws, pcm16(audio))
    assert [m["results"]["channels"]["0"]["timestamp"] for m in messages] == [256 * i for i in range(8)]


async def test_a_text_frame_gets_an_error_and_close_1003(engine: Deeptone) -> None:
    async with running_server(engine=engine) as srv:
        code, error = await refused(srv, "models=vad", send='{"audio": "base64..."}')
        assert code == 1003 and "binary" in error
        assert srv.deeptone is not None and srv.deeptone.slots.active == 0


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("models=nope", "unknown model 'nope'"),
        ("models=vad&output_period=100", "multiple of 64"),
        ("output_period=abc", "output_period must be an integer"),
        ("output_period=0", "multiple of 64"),
        ("sample_rate=0", "sample_rate"),
        ("sample_rate=fast", "sample_rate must be an integer"),
        ("volume_threshold=2", "volume_threshold"),
        ("include_raw_values=maybe", "include_raw_values must be true or false"),
        ("output_perod=512", "unknown query parameter(s) output_perod"),
    ],
)
async def test_bad_parameters_get_an_error_and_close_1008(engine: Deeptone, query: str, words: str) -> None:
    async with running_server(engine=engine) as srv:
        code, error = await refused(srv, query)
    assert code == 1008
    assert words in error


async def test_api_key(engine: Deeptone) -> None:
    settings = ServerSettings(api_key="s3cret-key-42")
    async with running_server(engine=engine, settings=settings) as srv:
        code, error = await refused(srv, "models=vad")
        assert code == 1008 and "API key" in error
        code, _ = await refused(srv, "models=vad", additional_headers={"X-Api-Key": "wrong"})
        assert code == 1008
        async with connect_to(srv, "models=vad", additional_headers={"X-Api-Key": "s3cret-key-42"}) as ws:
            messages = await stream_all(ws, pcm16(signal(1.0)))
        assert len(messages) == 1 and messages[0]["message_type"] == "results"


async def test_message_size_limit_closes_1009(engine: Deeptone) -> None:
    settings = ServerSettings(max_message_bytes=4096)
    async with running_server(engine=engine, settings=settings) as srv:
        code, error = await refused(srv, "models=vad", send=b"\0" * 5000)
    assert code == 1009 and "5000 bytes" in error


async def test_idle_timeout_closes_1008(engine: Deeptone) -> None:
    settings = ServerSettings(idle_timeout_s=0.3)
    async with running_server(engine=engine, settings=settings) as srv:
        with anyio.fail_after(5):
            code, error = await refused(srv, "models=vad", send=b"\0" * 2048)
    assert code == 1008 and "idle" in error


async def test_stream_duration_limit_closes_1008(engine: Deeptone) -> None:
    settings = ServerSettings(max_stream_seconds=0.5)
    async with running_server(engine=engine, settings=settings) as srv:
        async with connect_to(srv, "models=vad&output_period=64") as ws:
            messages = []
            with anyio.fail_after(5), pytest.raises(ConnectionClosed) as info:
                while True:  # real-time audio, results read as they come
                    await ws.send(b"\0\1" * 1024)
                    with anyio.move_on_after(0.064):
                        messages.append(json.loads(await ws.recv()))
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    assert messages[-1]["message_type"] == "error" and "limit of 0.5 s" in messages[-1]["error"]
    assert messages[0]["message_type"] == "results"


async def test_connection_limit_closes_1008(engine: Deeptone) -> None:
    settings = ServerSettings(max_connections=2)
    async with running_server(engine=engine, settings=settings) as srv:
        async with connect_to(srv, "models=vad") as a, connect_to(srv, "models=vad") as b:
            await a.send(b"\0" * 64)
            await b.send(b"\0" * 64)
            code, error = await refused(srv, "models=vad")
            assert code == 1008 and "limit of 2 connections" in error
        with anyio.fail_after(5):
            while srv.deeptone is not None and srv.deeptone.slots.active:
                await anyio.sleep(0.01)
        async with connect_to(srv, "models=vad") as c:  # slots are given back
            assert len(await stream_all(c, pcm16(signal(1.0)))) == 1


async def test_odd_byte_counts_are_carried_over(engine: Deeptone) -> None:
    data = pcm16(signal(2.0))
    async with running_server(engine=engine) as srv:
        async with connect_to(srv, "models=vad&output_period=256&include_raw_values=1") as ws:
            odd = await stream_all(ws, data, chunk=333)
        async with connect_to(srv, "models=vad&output_period=256&include_raw_values=1") as ws:
            whole = await stream_all(ws, data, chunk=len(data))
    assert odd == whole and len(odd) == 8


async def test_health(engine: Deeptone) -> None:
    import httpx

    async with running_server(engine=engine) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            body = (await http.get("/health")).json()
            async with connect_to(srv, "models=vad") as ws:
                await ws.send(b"\0" * 2048)
                with anyio.fail_after(5):
                    while (await http.get("/health")).json()["active_connections"] != 1:
                        await anyio.sleep(0.01)
    assert body["status"] == "ok"
    assert body["models"] == [spec.key for spec in engine.models] and "vad" in body["models"]
    assert body["active_connections"] == 0
    assert set(body["batching"]) >= {"batches", "mean_batch"}
