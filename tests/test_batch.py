"""deeptone_async.batch and ``deeptone-async batch`` on a local process pool."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, noise, tone

from deeptone_async import Deeptone, ParameterError, UnknownModelError, batch
from deeptone_async.cli import main

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def make_archive(root: Path, speech: np.ndarray, count: int = 8) -> list[Path]:
    """``count`` short files of speech, tones and noise (mono and stereo, 16 and 8 kHz, WAV
    and FLAC) under ``root`` and ``root/sub``, plus one that is not audio."""
    (root / "sub").mkdir(parents=True)
    paths = []
    for i in range(count):
        n = int((1.5 + 0.7 * i) * SR)
        parts = [speech[:n], tone(n / SR, 200 + 80 * i, 0.2), noise(n / SR, 0.05, seed=i)]
        x = np.resize(parts[i % 3], n)
        path = root / ("sub" if i % 2 else "") / f"f{i}.{'flac' if i % 4 == 1 else 'wav'}"
        if i % 4 == 2:
            x = np.stack([x, np.resize(speech, n) * 0.5], axis=1)
        rate = 8000 if i % 4 == 3 else SR
        sf.write(path, x[::2] if rate == 8000 else x, rate)
        paths.append(path)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    return paths


def rebuild(folder: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{file: {channel: time_series}}`` from a Parquet output's results table, with the
    raw values as ``process_file`` gives them."""
    table = pq.read_table(folder / "results").to_pylist()
    raw_cols = [k for k in table[0] if k.startswith("raw_")] if table else []
    series: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for row in table:
        item = series[row["file"]][str(row["channel"])].setdefault(row["timestamp_ms"], {"timestamp": row["timestamp_ms"], "results": {}})
        item["results"][row["model"]] = {"result": row["result"], "confidence": row["confidence"]}
        raws = {c[4:]: row[c] for c in raw_cols if row[c] is not None}
        if raws:
            item.setdefault("raw", {})[row["model"]] = raws
    return {f: {c: [ts[t] for t in sorted(ts)] for c, ts in chans.items()} for f, chans in series.items()}


@pytest.fixture(scope="module")
def archive(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive") / "in"
    make_archive(root, speech)
    return root


def test_parquet_results_equal_process_file_and_bad_files_are_error_rows(archive: Path, engine: Deeptone, tmp_path: Path) -> None:
    options = batch.BatchOptions(models=("vad", "gender"), include_raw_values=True, include_transitions=True, output_period=512)
    missing = str(tmp_path / "gone.wav")
    report = batch.analyse([archive, missing], tmp_path / "out", options=options, workers=2)
    assert (report.analysed, report.failed, report.ok) == (8, 2, False)
    assert {(Path(r.file).name, r.error_type) for r in report.failures} == {("broken.wav", "DecodeError"), ("gone.wav", "FileNotFoundError")}

    files = {r["file"]: r for r in pq.read_table(tmp_path / "out" / "files").to_pylist()}
    assert len(files) == 10 and files[missing]["status"] == "error" and files[missing]["part"] is None
    got = rebuild(tmp_path / "out")
    assert len(got) == 8
    for name, channels in got.items():
        want = await_file(engine, name, options)
        assert files[name]["status"] == "ok" and files[name]["channels"] == len(want["channels"])
        assert files[name]["duration_s"] == pytest.approx(sf.info(name).duration)
        assert channels == {c: e["time_series"] for c, e in want["channels"].items()}  # identical, numbers too
        summary = [r for r in pq.read_table(tmp_path / "out" / "summary").to_pylist() if r["file"] == name]
        for c, entry in want["channels"].items():
            assert {(r["model"], r["label"] + "_fraction"): r["fraction"] for r in summary if str(r["channel"]) == c} == {
                (m, k): v for m, shares in entry["summary"].items() for k, v in shares.items()
            }
    transitions = pq.read_table(tmp_path / "out" / "transitions").to_pylist()
    assert {r["model"] for r in transitions} == {"vad", "gender"}
    # the schema is the same in every part: raw columns for every label of the run's models
    schema = pq.read_schema(next((tmp_path / "out" / "results").glob("part-*.parquet")))
    assert schema.names == ["file", "channel", "timestamp_ms", "model", "result", "confidence",
                            "raw_speech", "raw_no_speech", "raw_male", "raw_female"]


def await_file(engine: Deeptone, name: str, options: batch.BatchOptions) -> dict[str, Any]:
    import anyio

    async def go() -> dict[str, Any]:
        return dict(await engine.process_file(
            name, list(options.models or ()), options.output_period, include_summary=True,
            include_raw_values=options.include_raw_values,
        ))

    return anyio.run(go)


def test_cli_exit_status_errors_resume_and_jsonl(archive: Path, engine: Deeptone, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.jsonl"
    code = main(["batch", str(archive), "-o", str(out), "-m", "vad", "--summary", "-j", "2", "--progress", "always"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"deeptone-async: {archive / 'broken.wav'}: DecodeError: " in err
    assert "8 files analysed, 1 failed; 0.01 h of audio" in err
    assert "files 9/9, 1 failed" in err and " h [" in err  # the progress bar: hours of audio, files, ETA
    docs = {d["file"]: d for d in map(json.loads, out.read_text().splitlines())}
    assert docs[str(archive / "broken.wav")]["error"]["type"] == "DecodeError"
    name = str(archive / "f0.wav")
    want = await_file(engine, name, batch.BatchOptions(models=("vad",)))
    assert docs[name]["channels"] == want["channels"]

    # an interrupted run: the last document torn in the middle, one file never reached
    lines = out.read_text().splitlines()
    keep = [x for x in lines if json.loads(x)["file"] != name]
    out.write_text("".join(x + "\n" for x in keep) + lines[0][: len(lines[0]) // 2])
    code = main(["batch", str(archive), "-o", str(out), "-m", "vad", "--summary", "-j", "1", "--resume"])
    err = capsys.readouterr().err
    assert code == 1  # the broken file is still in the output
    assert "1 files analysed, 0 failed, 8 skipped (already in the output; 1 of them had failed)" in err
    docs2 = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(d["file"] for d in docs2) == sorted(docs)  # each file once, the torn line gone
    assert next(d for d in docs2 if d["file"] == name)["channels"] == want["channels"]

    # a second run into the same output needs --resume; other options are refused
    assert main(["batch", str(archive), "-o", str(out), "-m", "vad"]) == 1
    assert "pass --resume" in capsys.readouterr().err


def test_parquet_resume_removes_parts_of_an_interrupted_chunk(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = batch.BatchOptions(models=("vad",))
    first = batch.analyse([archive], out, options=options, workers=2)
    rows = pq.read_table(out / "results").num_rows
    # interrupted after a worker wrote its parts but before the driver marked its files done
    parts = sorted((out / "files").glob("part-*.parquet"))
    lost = pq.read_table(parts[0]).to_pylist()
    parts[0].unlink()
    (out / "results" / ".part-x.parquet.tmp").write_bytes(b"half a part")
    report = batch.analyse([archive], out, options=options, workers=1, resume=True)
    assert report.analysed + (report.failed) == len(lost) and report.skipped == 9 - len(lost)
    assert pq.read_table(out / "results").num_rows == rows  # no row twice
    assert not list((out / "results").glob(".*"))
    assert sorted(r["file"] for r in pq.read_table(out / "files").to_pylist()) == sorted(batch.resolve_inputs([str(archive)])[0])
    assert first.failed == 1

    with pytest.raises(ParameterError, match="other options .*output_period"):
        batch.analyse([archive], out, options=batch.BatchOptions(models=("vad",), output_period=2048), resume=True)
    with pytest.raises(ParameterError, match="pass --resume"):
        batch.analyse([archive], out, options=options)
    with pytest.raises(UnknownModelError):
        batch.analyse([archive], tmp_path / "other", options=batch.BatchOptions(models=("nosuchmodel",)))
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_inputs_from_globs_manifests_and_folders(archive: Path, tmp_path: Path) -> None:
    names, warnings = batch.resolve_inputs([str(archive / "**" / "f*.flac"), str(tmp_path / "*.none")])
    assert names == [str(archive / "sub" / "f1.flac"), str(archive / "sub" / "f5.flac")]
    assert warnings == [f"{tmp_path / '*.none'}: no file matches this pattern"]
    (tmp_path / "list.txt").write_text(f"# calls\n{archive / 'f0.wav'}\n\n{archive / 'f0.wav'}\n")
    rel = Path("..") / archive.name / "sub" / "f1.flac"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "list.csv").write_text(f"speaker,path\nann,{archive.parent / rel.relative_to('..')}\nbob,s3://bucket/x.wav\n")
    names, _ = batch.resolve_inputs([str(archive / "f0.wav")], [tmp_path / "list.txt", tmp_path / "m" / "list.csv"])
    assert names == [str(archive / "f0.wav"), str(archive / "sub" / "f1.flac"), "s3://bucket/x.wav"]
    names, _ = batch.resolve_inputs([str(archive)])
    assert len(names) == 9 and names == sorted(names, key=lambda n: Path(n).relative_to(archive))


def test_chunks_balance_audio_between_workers() -> None:
    names = [f"f{i}" for i in range(500)]
    chunks = batch.chunk_files(names, [3.0 + (i * 37) % 58 for i in range(500)], workers=2)
    assert [n for c in chunks for n in c] == names  # every file once, in order
    assert 16 <= len(chunks) <= 40 and max(map(len, chunks)) <= 32
    long = batch.chunk_files(names[:20], [600.0] * 20, workers=2)
    assert [len(c) for c in long] == [2] * 10  # 10-minute files: 5 chunks a worker, not 2 of 10 files


def worker_pids() -> list[int]:
    """This process's pool workers (spawned children)."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == os.getpid() and b"spawn_main" in cmd:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def longer(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 files of 30 s (speech, tones and noise)."""
    root = tmp_path_factory.mktemp("longer")
    for i in range(16):
        n = 30 * SR
        x = [np.resize(speech, n), tone(30, 300 + 20 * i, 0.2), noise(30, 0.05, seed=i)][i % 3]
        sf.write(root / f"l{i:02d}.flac", x, SR)
    return root


def assert_each_row_once(out: Path, files: int) -> None:
    table = pq.read_table(out / "results").to_pylist()
    keys = [(r["file"], r["channel"], r["timestamp_ms"], r["model"]) for r in table]
    assert len(keys) == len(set(keys))
    assert len({k[0] for k in keys}) == files
    marked = {r["part"] for r in pq.read_table(out / "files").to_pylist()}
    assert {p.stem[5:] for p in (out / "results").glob("part-*.parquet")} <= marked  # no orphaned part


def test_a_worker_killed_mid_run_is_replaced_and_its_files_are_analysed_once(longer: Path, tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    out = tmp_path / "out"
    reports: list[batch.BatchReport] = []
    run = threading.Thread(target=lambda: reports.append(batch.analyse([longer], out, workers=2)))
    run.start()
    deadline = time.monotonic() + 60
    while not (pids := worker_pids()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pids and run.is_alive()
    os.kill(pids[0], signal.SIGKILL)  # as the kernel's OOM killer would
    run.join(120)
    (report,) = reports
    assert (report.analysed, report.failed) == (16, 0)
    assert_each_row_once(out, 16)


def test_ctrl_c_stops_the_run_and_resume_finishes_it(longer: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "deeptone_async", "batch", str(longer), "-o", str(out), "-j", "2", "--progress", "never"]
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while not list((out / "files").glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    done = len(pq.read_table(out / "files"))
    assert 0 < done < 16
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{16 - done} files analysed, 0 failed, {done} skipped" in resumed.stderr
    assert_each_row_once(out, 16)


def test_public_names_are_exported_and_importing_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    for name in batch.__all__:
        assert hasattr(batch, name)
    public = {n for n, v in vars(batch).items() if not n.startswith("_") and not isinstance(v, type(batch))}
    assert public <= set(batch.__all__)
    code = "import sys, deeptone_async.batch; print(sorted({'numpy', 'pyarrow', 'ray', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_a_file_with_more_rows_than_a_worker_holds_is_written_out_as_it_is_analysed(
    archive: Path, speech: np.ndarray, engine: Deeptone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory per worker stays bounded whatever a file's length: past ``SPILL_ROWS`` rows a
    file's results go into a part of its own as they are made; short files still share one."""
    from deeptone_async.batch import _work
    from deeptone_async.batch._run import _raw_labels

    monkeypatch.setattr(_work, "SPILL_ROWS", 40)
    spilled: list[str] = []
    opened = _work._Spill._open
    monkeypatch.setattr(_work._Spill, "_open", lambda self: (spilled.append(self.name), opened(self))[1])
    long = tmp_path / "long.wav"
    sf.write(long, np.resize(speech, 30 * SR), SR)  # 59 periods of 512 ms x 2 models: 118 rows
    short = [str(p) for p in sorted(archive.glob("f[02].wav"))]  # 3 and 4 periods
    options = batch.BatchOptions(models=("vad", "gender"), include_raw_values=True, include_transitions=True, output_period=512)
    out = tmp_path / "out"
    worker = _work.Worker(_work.Job(options, "parquet", str(out), _raw_labels(options)))
    result = worker.run([short[0], str(long), str(archive / "broken.wav"), short[1]])

    assert spilled == [str(long)]
    parts = [r.part for r in result.records]
    assert parts[1] is not None and parts[2] is None and parts[0] == parts[3] != parts[1]
    assert len(list((out / "results").glob("part-*.parquet"))) == 2 and not list((out / "results").glob(".*"))
    got = rebuild(out)
    for name in (str(long), *short):
        want = await_file(engine, name, options)
        assert got[name] == {c: e["time_series"] for c, e in want["channels"].items()}
    transitions = pq.read_table(out / "transitions").to_pylist()
    assert {r["file"] for r in transitions} == {str(long), *short}
