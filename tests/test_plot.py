"""The timeline picture: a real image of the expected size, legends naming the labels."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import anyio
import numpy as np
import pytest
from matplotlib.image import imread

from deeptone_async import Deeptone, ParameterError, plot


@pytest.fixture(scope="module")
def analysed(speech_wav: Path) -> dict:
    engine = Deeptone()
    return anyio.run(functools.partial(engine.process_file, speech_wav, ["vad", "gender"], include_transitions=True, include_summary=True))


def legend_texts(fig) -> list[list[str]]:
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend()]


def test_the_png_is_an_image_of_the_expected_size_with_a_legend_per_model(analysed: dict, speech_wav: Path) -> None:
    fig = plot.timeline(analysed, audio=speech_wav, width=8, dpi=100)
    png = plot.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(io.BytesIO(png))
    assert image.shape[1] == 800 and image.shape[0] == round(fig.get_figheight() * 100)
    assert image[..., :3].std() > 0.1  # not blank
    vad, gender = legend_texts(fig)
    assert set(vad) == {"speech", "no_speech", "silence", "confidence"}
    assert {"male", "female", "confidence"} <= set(gender)
    assert len(fig.axes) == 3  # loudness, vad, gender


def test_long_results_are_binned_and_say_so() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(["speech", "no_speech"], size=120_000)  # about 2 h of 64 ms frames
    tr = [{"timestamp_start": i * 64, "timestamp_end": (i + 1) * 64, "result": str(x), "confidence": 0.7}
          for i, x in enumerate(labels)]
    result = {"channels": {"0": {"transitions": {"vad": tr}}}}
    (track,) = plot.tracks(result, max_bands=500)
    assert track.binned and len(track.labels) == 500 and len(track.conf) <= 500
    fig = plot.timeline(result, max_bands=500)
    assert "500 bins" in fig._suptitle.get_text() and fig.axes[-1].get_xlabel() == "time (min:s)"


def test_bins_show_the_label_covering_most_of_each() -> None:
    tr = [{"timestamp_start": 0, "timestamp_end": 900, "result": "speech", "confidence": 1.0},
          {"timestamp_start": 900, "timestamp_end": 1000, "result": "silence", "confidence": 1.0},
          {"timestamp_start": 1000, "timestamp_end": 1100, "result": "speech", "confidence": 1.0},
          {"timestamp_start": 1100, "timestamp_end": 2000, "result": "silence", "confidence": 1.0}]
    (track,) = plot.tracks({"channels": {"0": {"transitions": {"vad": tr}}}}, max_bands=2)
    assert track.labels == ["speech", "silence"]


def test_svg_and_html_files(analysed: dict, tmp_path: Path) -> None:
    svg = plot.save(analysed, tmp_path / "t.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    html = plot.save(analysed, tmp_path / "t.html", include_plotlyjs="cdn").read_text()
    assert "plotly" in html and '"name":"speech"' in html and '"name":"female"' in html
    with pytest.raises(ParameterError, match=".png, .svg"):
        plot.save(analysed, tmp_path / "t.gif")


def test_results_show_the_timeline_and_summary_in_jupyter(analysed: dict) -> None:
    png = analysed._repr_png_()
    assert png is not None and png[:4] == b"\x89PNG"
    html = analysed._repr_html_()
    assert html.startswith('<img src="data:image/png;base64,') and "<table" in html and "speech" in html
