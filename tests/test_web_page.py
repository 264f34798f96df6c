"""The live page at ``/``: served from the package, and used in a real headless Chromium.

The browser tests run ``deeptone-async serve`` in a subprocess and drive Debian's
``chromium`` through ``chromium-driver`` (selenium). Chromium's fake microphone plays a WAV
made with espeak-ng (``--use-file-for-fake-audio-capture``), so the page's whole path runs:
getUserMedia -> AudioWorklet -> 16 kHz PCM -> ``/stream`` -> labels on the page. They skip
when chromium, chromium-driver or espeak-ng is missing.

``DEEPTONE_SCREENSHOTS=docs`` saves the README's screenshots there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import SR, espeak

from deeptone_async import Deeptone
from deeptone_async.server import running_server

TEXT = (
    "Good morning. This is a short test of the live page. The weather is lovely today, "
    "and we are going for a long walk along the river before lunch."
)


async def test_page_is_served_from_the_package(engine: Deeptone) -> None:
    async with running_server(engine=engine) as srv, httpx.AsyncClient(base_url=srv.url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Use microphone" in page.text and "Analyse a file" in page.text
        # only the page's own origin: no framework or font is fetched from elsewhere
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text
        for name, kind in [("app.js", "text/javascript"), ("worklet.js", "text/javascript"), ("style.css", "text/css")]:
            r = await client.get(f"/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert "registerProcessor" in (await client.get("/static/worklet.js")).text
        for bad in ["/static/nothing.js", "/static/..%2f_page.py", "/static/%2e%2e%2f__init__.py"]:
            assert (await client.get(bad)).status_code == 404, bad



async def test_page_works_when_the_app_is_mounted(engine: Deeptone) -> None:
    """Its URLs are relative: under a prefix, the page finds its script, /health and /stream there."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from deeptone_async.server import create_app

    inner = create_app(engine)
    app = Starlette(routes=[Mount("/voice", inner)], lifespan=inner.state.deeptone.lifespan)
    async with running_server(app) as srv, httpx.AsyncClient(base_url=srv.url) as client:
        page = await client.get("/voice/")
        assert page.status_code == 200 and 'src="static/app.js"' in page.text
        assert (await client.get("/voice/static/app.js")).status_code == 200
        assert (await client.get("/voice/health")).json()["status"] == "ok"
        app_js = (await client.get("/voice/static/app.js")).text
        assert 'new URL("stream", BASE)' in app_js and 'new URL("analyse", BASE)' in app_js

# ------------------------------------------------------------------ the real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver (the tests skip without them, or without selenium)."""
    pytest.importorskip("selenium", reason="selenium is not installed (it is in the test extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    return chromium, driver_path


@pytest.fixture(scope="module")
def server_url(browser_paths: tuple[str, str]) -> Iterator[str]:
    """``deeptone-async serve`` on a free port, as a user starts it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deeptone_async", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"deeptone-async serve did not start: {err[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _speech(path: Path, voice: str, lead_s: float = 0.5) -> Path:
    """espeak-ng speech with ``lead_s`` of silence before it, 16 kHz mono 16-bit."""
    raw = espeak(TEXT, path.with_suffix(".raw.wav"), voice=voice)
    x, _ = sf.read(raw, dtype="int16")
    sf.write(path, np.concatenate([np.zeros(int(lead_s * SR), np.int16), x]), SR, subtype="PCM_16")
    return path


def _browser(fake_audio: Path, profile: Path, paths: tuple[str, str]) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = paths

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1100,720",
    ]:
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def _wait(driver: Any, condition: Any, timeout: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        logs = driver.execute_script("return document.getElementById('status').textContent")
        pytest.fail(f"timed out waiting for {what}; page status: {logs!r}")


def _shot(driver: Any, name: str) -> None:
    where = os.environ.get("DEEPTONE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(where) / name))


def _open_page(driver: Any, url: str, query: str = "") -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/" + query)
    _wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", 20, "the model list")


@pytest.mark.parametrize("query", ["", "?native_rate"], ids=["browser-resamples", "worklet-resamples"])
def test_microphone_shows_speech_and_gender_live(
    server_url: str, browser_paths: tuple[str, str], tmp_path: Path, query: str
) -> None:
    from selenium.webdriver.common.by import By

    wav = _speech(tmp_path / "female.wav", "en+f3")
    driver = _browser(wav, tmp_path / "profile", browser_paths)
    try:
        _open_page(driver, server_url, query)
        # vad and gender are chosen by default; add speech for a third row
        driver.find_element(By.ID, "model-speech").click()
        driver.find_element(By.ID, "mic").click()
        _wait(driver, lambda d: "listening" in d.find_element(By.ID, "status").text, 20, "the microphone stream")
        status = driver.find_element(By.ID, "status").text
        # the AudioContext runs at 16 kHz, or at the device's rate with the worklet resampling
        assert status.startswith("listening (16000 Hz") == (query == ""), status

        # sample what the page shows every 100 ms while the (looping) speech file plays
        seen: Counter[tuple[str, str, str]] = Counter()
        last_gender = ""
        first_speech: float | None = None
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            labels = driver.execute_script(
                "return ['vad', 'gender', 'speech'].map(m => (document.getElementById('label-' + m) || {}).textContent || '')"
            )
            if labels[0] == "speech" and first_speech is None:
                first_speech = time.monotonic()
            # the gender model looks 3 s back: until then its view still holds the stream's start
            if first_speech is None or time.monotonic() - first_speech < 3.0:
                time.sleep(0.1)
                continue
            seen[tuple(labels)] += 1
            if labels[0] == "speech":
                last_gender = labels[1]
            if sum(n for (v, g, _), n in seen.items() if v == "speech" and g == "female") >= 25:
                break
            time.sleep(0.1)
        vad_speech = {k: n for k, n in seen.items() if k[0] == "speech"}
        assert first_speech is not None and vad_speech, f"the page never showed speech: {seen}"
        genders = Counter({g: 0 for g in ("female", "male")})
        for (_, g, _), n in vad_speech.items():
            genders[g] += n
        assert genders["female"] >= 25 and genders["female"] > 3 * genders["male"], genders
        assert last_gender == "female", seen
        assert any(s == "speech" for (_, _, s) in vad_speech), seen
        # the timeline has one row per chosen model and has been drawn
        rows = driver.execute_script("return [...document.querySelectorAll('#current tr')].map(r => r.dataset.model)")
        assert sorted(rows) == ["gender", "speech", "vad"]
        assert driver.execute_script("return document.getElementById('live').height") > 0
        if not query:
            _shot(driver, "page_live.png")

        driver.find_element(By.ID, "stop").click()
        _wait(driver, lambda d: d.find_element(By.ID, "status").text == "stopped", 10, "the stream's normal close")
        assert driver.find_element(By.ID, "mic").is_enabled()
    finally:
        driver.quit()


def test_file_upload_shows_the_timeline(server_url: str, browser_paths: tuple[str, str], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    male = _speech(tmp_path / "male.wav", "en+m3", lead_s=1.0)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.int16), SR, subtype="PCM_16")
    driver = _browser(silent, tmp_path / "profile", browser_paths)
    try:
        _open_page(driver, server_url)
        driver.find_element(By.ID, "model-arousal").click()
        driver.find_element(By.ID, "file").send_keys(str(male))
        driver.find_element(By.ID, "analyse").click()
        _wait(driver, lambda d: d.find_element(By.ID, "file-status").text.endswith("done"), 30, "the analysis")
        assert driver.find_element(By.ID, "file-label-0-vad").text == "speech"
        assert driver.find_element(By.ID, "file-label-0-gender").text == "male"
        summary = driver.find_element(By.ID, "file-summary").text
        assert "silence" in summary  # the second of silence before the speech
        rows = driver.execute_script("return [...document.querySelectorAll('#file-summary tr')].map(r => r.dataset.model)")
        assert sorted(rows) == ["arousal", "gender", "vad"]
        _shot(driver, "page_file.png")

        # a file that is not audio: the server's 415 message is shown, not a stack trace
        junk = tmp_path / "notes.wav"
        junk.write_bytes(b"this is not audio" * 10)
        driver.find_element(By.ID, "file").clear()
        driver.find_element(By.ID, "file").send_keys(str(junk))
        driver.find_element(By.ID, "analyse").click()
        _wait(driver, lambda d: "notes.wav" in d.find_element(By.ID, "file-status").text and
              d.find_element(By.ID, "file-status").get_attribute("class") == "error", 20, "the error")
    finally:
        driver.quit()
