"""GET /metrics (prometheus-client) on the streaming server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import soundfile as sf

from deeptone_async import Deeptone, ServerError
from deeptone_async.client import stream_to_server
from deeptone_async.server import create_app, running_server
from deeptone_async.sources import FileSource

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from deeptone_async.server._metrics import MetricsApp  # noqa: E402


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_streams_results_audio_lag_and_errors(engine: Deeptone, speech_wav: Path) -> None:
    app = MetricsApp(create_app(engine))
    async with running_server(app) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        results = [r async for r in stream_to_server(srv.ws_url, FileSource(speech_wav), models=["vad"], output_period=512)]
        with pytest.raises(ServerError) as bad:
            async for _ in stream_to_server(srv.ws_url, FileSource(speech_wav), models=["nosuchmodel"]):
                pass
        assert bad.value.code == 1008
        health = await http.get("/health")  # the app behind the wrapper is unchanged
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert (await http.post("/analyse", content=b"not audio")).status_code >= 400
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    m = scrape(response.text)
    assert m[("deeptone_results_total", ())] == len(results) > 5
    assert m[("deeptone_streams_total", ())] == 2
    assert m[("deeptone_active_streams", ())] == 0
    assert m[("deeptone_audio_seconds_total", ())] == pytest.approx(sf.info(speech_wav).duration, abs=0.01)
    assert m[("deeptone_result_lag_seconds_count", ())] == len(results)
    assert 0 < m[("deeptone_result_lag_seconds_sum", ())] / len(results) < 5
    assert m[("deeptone_errors_total", (("type", "policy"),))] == 1
    assert m[("deeptone_http_requests_total", (("path", "/health"),))] == 1
    assert any(k[0] == "deeptone_errors_total" and k[1][0][1].startswith("http_4") for k in m)
