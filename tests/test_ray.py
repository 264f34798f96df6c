"""deeptone_async.batch on a real local Ray cluster (``ray.init(num_cpus=2)``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, noise, tone
from test_batch import await_file, rebuild

from deeptone_async import Deeptone, batch

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = [
    pytest.mark.timeout(300),
    # Ray's own deprecations (its DataContext reads deprecated settings of its own)
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
]


#: a file whose name holds this kills the Ray worker process that analyses it (see ``cluster``)
KILLER = "kills-its-worker"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    def crash_on_killer_files() -> None:
        """Runs in every Ray worker process: analysing a ``KILLER`` file ends the process at
        once, as a segfault in a native decoder or the kernel's OOM killer would."""
        import os as os_

        from deeptone_async.batch import _work

        run = _work.Worker.run

        def crashing(self: _work.Worker, files: list[str]) -> _work.ChunkResult:
            if any("kills-its-worker" in name for name in files):
                os_._exit(3)
            return run(self, files)

        _work.Worker.run = crashing  # type: ignore[method-assign]

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": crash_on_killer_files})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def archive(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 short files (1-3 s of speech, tones or noise) and one that is not audio."""
    root = tmp_path_factory.mktemp("ray") / "in"
    root.mkdir()
    for i in range(30):
        n = int((1 + (i % 5) * 0.5) * SR)
        x = [np.resize(speech[i * SR // 3 :], n), tone(n / SR, 150 + 40 * i, 0.2), noise(n / SR, 0.05, seed=i)][i % 3]
        sf.write(root / f"r{i:02d}.wav", x, SR, subtype="PCM_16")
    (root / "r99.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt nonsense")
    return root


def test_ray_results_equal_process_file_with_an_error_row_and_resume(
    cluster: None, archive: Path, engine: Deeptone, tmp_path: Path
) -> None:
    options = batch.BatchOptions(models=("vad", "speech"), include_raw_values=True)
    out = tmp_path / "out"
    report = batch.analyse([archive], out, options=options, ray=True)
    assert (report.analysed, report.failed) == (30, 1)
    assert report.failures[0].file == str(archive / "r99.wav") and report.failures[0].error_type == "DecodeError"
    files = pq.read_table(out / "files").to_pylist()
    assert len({r["worker"] for r in files}) == 2  # two actors, each with its own engine
    got = rebuild(out)
    assert sorted(got) == sorted(str(p) for p in archive.glob("r[0-8]*.wav"))
    for name in sorted(got)[::3]:
        want = await_file(engine, name, options)
        assert got[name] == {c: e["time_series"] for c, e in want["channels"].items()}

    # interrupted: two chunks' parts written, their files never committed
    rows = pq.read_table(out / "results").num_rows
    for part in sorted((out / "files").glob("part-*.parquet"))[:2]:
        part.unlink()
    again = batch.analyse([archive], out, options=options, ray=True, resume=True)
    assert again.analysed + again.failed + again.skipped == 31 and again.analysed > 0
    assert pq.read_table(out / "results").num_rows == rows
    assert rebuild(out) == got


def test_ray_jsonl_documents_equal_process_file(cluster: None, archive: Path, engine: Deeptone, tmp_path: Path) -> None:
    import json

    options = batch.BatchOptions(models=("vad",), include_summary=True, include_transitions=True)
    out = tmp_path / "run.jsonl"
    report = batch.analyse([archive], out, options=options, ray=True)
    assert (report.analysed, report.failed) == (30, 1)
    docs = {d["file"]: d for d in map(json.loads, out.read_text().splitlines())}
    assert len(docs) == 31 and docs[str(archive / "r99.wav")]["error"]["type"] == "DecodeError"
    name = str(archive / "r07.wav")
    import anyio

    async def want() -> dict:
        return dict(await engine.process_file(name, ["vad"], include_summary=True, include_transitions=True))

    assert docs[name]["channels"] == anyio.run(want)["channels"]


def test_a_file_that_kills_every_ray_worker_is_an_error_row_and_the_others_are_analysed_once(
    cluster: None, speech: np.ndarray, tmp_path: Path
) -> None:
    """Ray retries a chunk on a new actor a few times, not forever; the chunk's other files
    are analysed on their own, and the file that kills every worker becomes an error row."""
    root = tmp_path / "in"
    root.mkdir()
    for i in range(15):  # 16 equal files on one actor: chunks of two (eight per worker)
        sf.write(root / f"a{i:02d}.wav", np.resize(speech[i * SR // 2 :], SR // 2), SR, subtype="PCM_16")
    sf.write(root / f"a06-{KILLER}.wav", speech[: SR // 2], SR, subtype="PCM_16")
    out = tmp_path / "out"
    report = batch.analyse([root], out, options=batch.BatchOptions(models=("vad",)), ray=True, workers=1)
    assert (report.analysed, report.failed) == (15, 1)
    (failure,) = report.failures
    assert failure.file.endswith(f"a06-{KILLER}.wav") and failure.error_type == "WorkerCrashed"
    files = pq.read_table(out / "files").to_pylist()
    assert sorted(Path(r["file"]).name for r in files) == sorted(p.name for p in root.iterdir())  # each once
    assert sorted(rebuild(out)) == sorted(str(root / f"a{i:02d}.wav") for i in range(15))
