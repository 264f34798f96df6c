from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import SR

from deeptone_async import Deeptone
from deeptone_async.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents written one after the other (as jq reads them)."""
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end + (len(text[end:]) - len(text[end:].lstrip()))
    return docs


@pytest.fixture(scope="module")
def stereo_wav(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stereo") / "stereo.wav"
    sf.write(path, np.stack([speech, np.zeros_like(speech)], axis=1), SR, subtype="PCM_16")
    return path


@pytest.fixture
def folder(speech: np.ndarray, stereo_wav: Path, tmp_path: Path) -> Path:
    """in/a.wav, in/sub/b.flac, in/stereo.wav, plus files a search must skip."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / ".hidden").mkdir()
    sf.write(d / "a.wav", speech[: 2 * SR], SR, subtype="PCM_16")
    sf.write(d / "sub" / "b.flac", speech[SR : 3 * SR], SR)
    (d / "stereo.wav").write_bytes(stereo_wav.read_bytes())
    (d / "notes.txt").write_text("not audio")
    (d / ".x.wav").write_bytes(stereo_wav.read_bytes())
    (d / ".hidden" / "c.wav").write_bytes(stereo_wav.read_bytes())
    return d


# -- one file, every format ---------------------------------------------------------------


def test_file_json(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, out, err = run(capsys, "file", str(speech_wav), "--models", "vad", "--summary", "--transitions", "--raw")
    doc = json.loads(out)
    assert code == 0 and doc["file"] == str(speech_wav)
    assert set(doc["channels"]["0"]) == {"time_series", "summary", "transitions"}
    assert "raw" in doc["channels"]["0"]["time_series"][0]
    assert err.splitlines()[-1] == "deeptone-async: 1 file analysed, 0 failed"


def test_file_formats(capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path) -> None:
    _, out, _ = run(capsys, "file", str(speech_wav), str(speech_wav), "-m", "vad", "--format", "jsonl", "--summary")
    lines = [json.loads(x) for x in out.splitlines()]
    assert {x["file"] for x in lines} == {str(speech_wav)}
    assert sum("summary" in x for x in lines) == 2 and all(x["channel"] == "0" for x in lines)
    _, out, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["model"] == "vad" and rows[1]["timestamp"] == "1024" and rows[0]["file"] == str(speech_wav)
    target = tmp_path / "labels.txt"
    code, _, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "audacity", "--output", str(target))
    first = target.read_text().splitlines()[0].split("\t")
    assert code == 0 and float(first[0]) == 0.0 and first[2].startswith("vad: ")


def test_missing_file_exits_with_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "file", str(tmp_path / "missing.wav"))
    assert code == 1 and out == ""
    assert f"{tmp_path / 'missing.wav'}: FileNotFoundError: No such file or directory" in err
    assert err.splitlines()[-1] == "deeptone-async: 0 files analysed, 1 failed"


def test_bad_period_exits_with_an_error(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, _, err = run(capsys, "file", str(speech_wav), "--output-period", "100")
    assert code == 1 and "multiple of 64" in err and "analysed" not in err  # refused before any file


def test_an_output_that_cannot_be_opened_exits_with_an_error(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "file", str(speech_wav), "-m", "vad", "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert code == 1 and out == "" and err.startswith("deeptone-async: error: ") and "No such file or directory" in err


def test_unknown_model_exits_before_any_file(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, out, err = run(capsys, "file", str(speech_wav), str(speech_wav), "-m", "nosuchmodel")
    assert code == 1 and out == "" and err.count("nosuchmodel") == 1 and "available models" in err


# -- many files ---------------------------------------------------------------------------


def test_a_bad_file_is_reported_and_the_others_are_written(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, folder: Path, tmp_path: Path
) -> None:
    text = tmp_path / "text.wav"
    text.write_text("this is not audio")
    missing = tmp_path / "missing.wav"
    good2 = folder / "a.wav"
    code, out, err = run(capsys, "file", str(speech_wav), str(text), str(missing), str(good2), "-m", "vad", "--format", "jsonl")
    assert code == 1
    assert [f for f in dict.fromkeys(json.loads(x)["file"] for x in out.splitlines())] == [str(speech_wav), str(good2)]
    lines = err.splitlines()
    assert lines[0].startswith(f"deeptone-async: {text}: DecodeError: ") and "not recognised" in lines[0]
    assert lines[1] == f"deeptone-async: {missing}: FileNotFoundError: No such file or directory: {missing}"
    assert lines[-1] == "deeptone-async: 2 files analysed, 2 failed"


def test_json_is_one_document_per_file_whatever_their_number(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, folder: Path
) -> None:
    _, one, _ = run(capsys, "file", str(speech_wav), "-m", "vad")
    code, several, _ = run(capsys, "file", str(speech_wav), str(folder / "a.wav"), "-m", "vad")
    docs = documents(several)
    assert code == 0 and [d["file"] for d in docs] == [str(speech_wav), str(folder / "a.wav")]
    assert docs[0] == json.loads(one)  # the same document, alone or with others


def test_csv_rows_carry_file_and_channel_with_one_header(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, stereo_wav: Path
) -> None:
    code, out, _ = run(capsys, "file", str(speech_wav), str(stereo_wav), "-m", "vad", "--format", "csv")
    assert code == 0 and out.count("file,channel,timestamp") == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["file"], r["channel"]) for r in rows} == {(str(speech_wav), "0"), (str(stereo_wav), "0"), (str(stereo_wav), "1")}


def test_results_are_written_as_each_file_completes(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    target = tmp_path / "out.jsonl"
    original = Deeptone.process_file

    async def second_is_interrupted(self: Deeptone, path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(target.read_text() if target.exists() else "")
        if len(seen) == 2:
            raise KeyboardInterrupt
        return await original(self, path, *args, **kwargs)

    monkeypatch.setattr(Deeptone, "process_file", second_is_interrupted)
    code, _, _ = run(capsys, "file", str(speech_wav), str(folder / "a.wav"), "-m", "vad", "--format", "jsonl", "-o", str(target))
    assert code == 130
    assert seen[0] == "" and str(speech_wav) in seen[1]  # the first file was written before the second began
    assert {json.loads(x)["file"] for x in target.read_text().splitlines()} == {str(speech_wav)}


# -- directories and --output-dir ------------------------------------------------------------


def test_directories_are_searched_recursively_for_audio_files_in_order(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "file", str(folder), "-m", "vad", "--format", "jsonl")
    files = list(dict.fromkeys(json.loads(x)["file"] for x in out.splitlines()))
    assert code == 0 and files == [str(folder / "a.wav"), str(folder / "stereo.wav"), str(folder / "sub" / "b.flac")]
    assert err.splitlines()[-1] == "deeptone-async: 3 files analysed, 0 failed"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "file", str(empty))
    assert code == 2 and out == "" and f"{empty}: no audio files in this directory" in err and "no audio files to analyse" in err


def test_output_dir_mirrors_the_inputs_with_the_format_extension(
    capsys: pytest.CaptureFixture[str], folder: Path, speech_wav: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "results"
    code, out, _ = run(capsys, "file", str(folder), str(speech_wav), "-m", "vad", "--format", "csv", "--output-dir", str(out_dir))
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert code == 0 and out == "" and written == ["a.csv", "speech.csv", "stereo.csv", "sub/b.csv"]
    rows = list(csv.DictReader(io.StringIO((out_dir / "sub" / "b.csv").read_text())))
    assert rows and {r["file"] for r in rows} == {str(folder / "sub" / "b.flac")}
    code, _, _ = run(capsys, "file", str(folder), "-m", "vad", "--output-dir", str(out_dir))
    assert code == 0 and json.loads((out_dir / "sub" / "b.json").read_text())["file"] == str(folder / "sub" / "b.flac")


def test_skip_existing_resumes_an_interrupted_run(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "results"
    calls: list[str] = []
    original = Deeptone.process_file

    async def interrupted_at_the_third(self: Deeptone, path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(Path(path).name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return await original(self, path, *args, **kwargs)

    monkeypatch.setattr(Deeptone, "process_file", interrupted_at_the_third)
    code, _, _ = run(capsys, "file", str(folder), "-m", "vad", "--output-dir", str(out_dir))
    assert code == 130 and sorted(p.name for p in out_dir.rglob("*") if p.is_file()) == ["a.json", "stereo.json"]
    (out_dir / "sub").mkdir()
    (out_dir / "sub" / ".b.json.1234.part").write_text('{"file": ')  # a write cut short by a kill
    calls.clear()
    code, _, err = run(capsys, "file", str(folder), "-m", "vad", "--output-dir", str(out_dir), "--skip-existing")
    assert code == 0 and calls == ["b.flac"]
    assert err.splitlines()[-1] == "deeptone-async: 1 file analysed, 0 failed, 2 skipped (their output exists)"
    assert json.loads((out_dir / "sub" / "b.json").read_text())["file"] == str(folder / "sub" / "b.flac")


def test_outputs_are_renamed_into_place_so_an_interrupted_write_leaves_nothing(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deeptone_async.cli._files as files

    def killed(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed)
    out_dir = tmp_path / "results"
    code, _, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--output-dir", str(out_dir))
    assert code == 130 and list(out_dir.iterdir()) == []


def test_skip_existing_needs_output_dir(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, out, err = run(capsys, "file", str(speech_wav), "--skip-existing")
    assert code == 2 and out == "" and "--skip-existing needs --output-dir" in err


def test_two_inputs_with_one_output_path_are_refused(capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(speech_wav.read_bytes())
    (tmp_path / "b" / "x.wav").write_bytes(speech_wav.read_bytes())
    out_dir = tmp_path / "results"
    code, _, err = run(capsys, "file", str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav"), "-d", str(out_dir))
    assert code == 2 and not out_dir.exists()
    assert f"{tmp_path / 'a' / 'x.wav'} and {tmp_path / 'b' / 'x.wav'} would both be written to {out_dir / 'x.json'}" in err


# -- Audacity labels ----------------------------------------------------------------------------


def test_audacity_labels_one_file_per_input_and_channel(capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "labels"
    code, _, _ = run(capsys, "file", str(folder), "-m", "vad", "--format", "audacity", "--output-dir", str(out_dir))
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert code == 0 and written == ["a.txt", "stereo.ch0.txt", "stereo.ch1.txt", "sub/b.txt"]
    for path in out_dir.rglob("*.txt"):  # each track is one stream: its segments follow each other from 0
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        assert float(rows[0][0]) == 0.0 and all(float(a[1]) == float(b[0]) for a, b in zip(rows, rows[1:]))
    assert "vad: silence" in (out_dir / "stereo.ch1.txt").read_text()  # channel 1 is digital silence
    assert "vad: speech" in (out_dir / "stereo.ch0.txt").read_text()


def test_audacity_refuses_several_streams_in_one_track(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, stereo_wav: Path, tmp_path: Path
) -> None:
    target = tmp_path / "labels.txt"
    code, _, err = run(capsys, "file", str(speech_wav), str(speech_wav), "--format", "audacity", "-o", str(target))
    assert code == 2 and "--output-dir" in err and not target.exists()
    code, out, err = run(capsys, "file", str(stereo_wav), "--format", "audacity")
    assert code == 2 and out == "" and "2 channels" in err and "--channel" in err and "--output-dir" in err
    code, out, _ = run(capsys, "file", str(stereo_wav), "-m", "vad", "--format", "audacity", "--channel", "1")
    assert code == 0 and {line.split("\t")[2] for line in out.splitlines()} == {"vad: silence"}


# -- warnings, help, devices ----------------------------------------------------------------


def test_a_truncated_file_is_analysed_with_a_warning_saying_how_much_was_read(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path
) -> None:
    data = speech_wav.read_bytes()
    frames = sf.info(str(speech_wav)).frames
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 2 * 2 * SR + 1])  # 2 s and a torn sample of the data chunk
    code, out, err = run(capsys, "file", str(cut), "-m", "vad", "--format", "jsonl")
    assert code == 0 and len(out.splitlines()) == 2
    assert (
        f"deeptone-async: warning: {cut}: truncated: read 2.00 s ({2 * SR} frames) of the {frames / SR:.2f} s its header declares"
        in err
    )
    _, _, err = run(capsys, "file", str(speech_wav), "-m", "vad")
    assert "warning" not in err


@pytest.mark.parametrize("command", ["file", "mic", "serve", "models", "demo"])
def test_help_shows_defaults_the_models_and_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    from deeptone_async.registry import bundled_specs

    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert "models: " + ", ".join(s.key for s in bundled_specs()) in out  # vad, arousal, ...
    assert f"example:\n  deeptone-async {command}" in out
    defaults = {"file": "(default: 1024)", "mic": "(default: 16000)", "serve": "(default: 8765)"}
    assert defaults.get(command, "") in out


def test_help_lists_the_models_of_the_registry_without_loading_them() -> None:
    from deeptone_async.cli._parser import DEFAULT_VOLUME_THRESHOLD, bundled_models
    from deeptone_async.engine import DEFAULT_VOLUME_THRESHOLD as ENGINE_DEFAULT
    from deeptone_async.registry import bundled_specs

    assert [s.key for s in bundled_models()] == [s.key for s in bundled_specs()]
    assert DEFAULT_VOLUME_THRESHOLD == ENGINE_DEFAULT


def test_import_and_help_load_no_heavy_module() -> None:
    heavy = {"numpy", "onnxruntime", "scipy", "soundfile", "sounddevice", "tqdm", "anyio", "aiofiles", "soxr"}
    code = (
        "import sys, contextlib, io, deeptone_async, deeptone_async.cli as c\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): c.main(['file', '--help'])\n"
        f"print(sorted({heavy!r} & {{m.split('.')[0] for m in sys.modules}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"
    code = "import sys; from deeptone_async import Deeptone; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "False"  # the log-mel transform imports it at its first call


def test_mic_with_an_unknown_device_fails_before_listening_and_lists_the_devices(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import sounddevice
    except (ImportError, OSError):
        pytest.skip("sounddevice or PortAudio is missing")
    code, out, err = run(capsys, "mic", "--device", "nosuchdev", "--duration", "1")
    assert code == 1 and out == "" and "listening" not in err
    assert "no input device matches 'nosuchdev'" in err and "the input devices are:" in err
    inputs = [d["name"] for d in sounddevice.query_devices() if d["max_input_channels"] > 0]
    assert all(name in err for name in inputs)


# -- models and demo ----------------------------------------------------------------------------


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0 and "Vad (key 'vad')" in out and "speech, no_speech, silence" in out and "receptive field" in out


def test_demo_fits_a_100_column_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    lines = out.splitlines()
    assert code == 0 and max(len(line) for line in lines) <= 100 and len(lines) < 30
    assert "one character per 256 ms" in out
    vad = next(line for line in lines if line.startswith("vad ")).split()[1]  # the first is the timeline
    assert len(vad) == 79 and set(vad) <= set("s-.")  # 20.1 s in 256 ms cells
    assert vad.startswith("s") and "." in vad and "-" in vad
    assert lines[lines.index(next(line for line in lines if line.startswith("vad "))) - 1].split()[:4] == ["0", "s", "5", "s"]
    summary = lines[lines.index("Summary: each label's letter and share of the time") + 1 :]
    vad = next(line for line in summary if line.startswith("vad "))
    assert "s speech " in vad and ". silence " in vad and "%" in vad


# -- segment formats and plots (issue 18) -------------------------------------------------------


def test_segment_formats_write_files_that_parse_back(capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path) -> None:
    import webvtt
    from praatio import textgrid

    from deeptone_async.segments import segments

    want = [(s.start_ms / 1000, s.end_ms / 1000) for s in segments(_vad_result(speech_wav))]
    code, out, _ = run(capsys, "file", str(speech_wav), str(speech_wav), "-m", "vad", "--format", "rttm")
    lines = [line.split() for line in out.splitlines()]
    assert code == 0 and len(lines) == 2 * len(want) and {x[1] for x in lines} == {"speech"}
    assert [(float(x[3]), round(float(x[3]) + float(x[4]), 3)) for x in lines[: len(want)]] == want
    for fmt in ("textgrid", "srt", "vtt"):
        code, _, err = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", fmt, "--output-dir", str(tmp_path / fmt))
        assert code == 0, err
    suffix = {"textgrid": ".TextGrid", "srt": ".srt", "vtt": ".vtt"}
    paths = {fmt: tmp_path / fmt / f"speech{suffix[fmt]}" for fmt in suffix}
    grid = textgrid.openTextgrid(str(paths["textgrid"]), includeEmptyIntervals=False)
    assert [(e.start, e.end) for e in grid.getTier("vad").entries] == want
    assert len(list(webvtt.from_srt(str(paths["srt"])))) == len(webvtt.read(str(paths["vtt"])).captions) == len(want)


def _vad_result(path: Path) -> Any:
    import anyio

    return anyio.run(lambda: Deeptone().process_file(path, ["vad"], include_transitions=True))


def test_segment_options_change_the_segments(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    _, default, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "rttm")
    _, bridged, _ = run(capsys, "file", str(speech_wav), "-m", "vad", "--format", "rttm", "--min-gap", "3000", "--pad", "0")
    assert len(default.splitlines()) == 2 and len(bridged.splitlines()) == 1  # the 1.5 s pause bridged


def test_one_file_formats_refuse_several_files_without_output_dir(capsys: pytest.CaptureFixture[str], speech_wav: Path) -> None:
    code, _, err = run(capsys, "file", str(speech_wav), str(speech_wav), "--format", "textgrid")
    assert code == 2 and "--output-dir" in err


def test_plot_writes_one_picture_per_file(capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    code, _, err = run(capsys, "file", str(folder / "a.wav"), "-m", "vad", "--plot", str(tmp_path / "one.png"), "--output", str(tmp_path / "x.json"))
    assert code == 0, err
    image = imread(tmp_path / "one.png")
    assert image.shape[1] == 1200 and image.shape[0] > 200  # 12 in at 100 dpi
    code, _, err = run(capsys, "file", str(folder), "-m", "vad", "--plot", str(tmp_path / "p.svg"), "--output", str(tmp_path / "y.json"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("p.*.svg")) == ["p.a.svg", "p.stereo.svg", "p.sub.b.svg"]
    code, _, err = run(capsys, "file", str(folder / "a.wav"), "--plot", str(tmp_path / "p.gif"))
    assert code == 2 and ".png, .svg" in err
