"""AudioEvent (issue 15): DeepTone's audio-event labels, independent raw scores, the multi-label
decision rule, through the engine. Corpus tests skip when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA, SR, noise, tone
from onnx_models import constant_model

from deeptone_async import Deeptone
from deeptone_async.errors import ModelError
from deeptone_async.multilabel import MultiLabel
from deeptone_async.spec import ModelSpec

LABELS = ("pos_human_sounds", "neg_human_sounds", "nat_human_sounds", "speech", "music", "noise")
HUMAN = set(LABELS[:3])


@pytest.fixture(scope="module")
def ae_engine() -> Deeptone:
    return Deeptone()


def _spec(engine: Deeptone) -> ModelSpec:
    return engine.models.AudioEvent


def _thresholds(spec: ModelSpec) -> dict[str, float]:
    assert spec.multi_label is not None
    return dict(zip(spec.labels, spec.multi_label.thresholds))


async def _analyse(engine: Deeptone, x: np.ndarray, period: int = 64) -> dict:
    return await engine.process_audio_bytes(x, [engine.models.AudioEvent], output_period=period,
                                            include_raw_values=True, include_summary=True, include_transitions=True)


def test_handle_labels_and_listing(ae_engine: Deeptone, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(ae_engine)
    assert spec.key == "audio-event" and spec.labels == LABELS
    assert spec.output_labels == (*LABELS, "silence")  # no unknown, no no_speech: not a voice model
    assert 1000 <= spec.receptive_field_ms <= 1100
    assert spec.multi_label is not None and all(0 < t < 1 for t in spec.multi_label.thresholds)
    assert spec.onnx.stat().st_size <= 5_000_000  # issue 15's size budget
    assert spec.card is not None and spec.card.is_file()
    from deeptone_async.cli import main

    assert main(["models"]) == 0
    assert "AudioEvent (key 'audio-event')" in capsys.readouterr().out


async def test_raw_values_are_independent_scores(ae_engine: Deeptone) -> None:
    x = np.concatenate([tone(3.0, 220.0) + tone(3.0, 330.0, 0.2) + tone(3.0, 495.0, 0.1), noise(3.0, 0.05)])
    out = await _analyse(ae_engine, x, period=512)
    raws = [r["raw"]["audio-event"] for r in out["time_series"]]
    assert raws and all(set(r) == set(LABELS) for r in raws)
    assert all(0.0 <= v <= 1.0 for r in raws for v in r.values())
    # one sigmoid per class: the scores do not form a distribution
    assert max(abs(sum(r.values()) - 1.0) for r in raws) > 0.1


async def test_silence_and_summary(ae_engine: Deeptone) -> None:
    out = await _analyse(ae_engine, np.zeros(3 * SR, np.float32), period=1024)
    assert {r["results"]["audio-event"]["result"] for r in out["time_series"]} == {"silence"}
    summary = out["summary"]["audio-event"]
    assert summary["silence_fraction"] == 1.0 and set(summary) == {f"{lab}_fraction" for lab in (*LABELS, "silence")}


async def test_speech_is_speech(ae_engine: Deeptone, speech: np.ndarray) -> None:
    out = await _analyse(ae_engine, speech, period=64)
    labels = [r["results"]["audio-event"]["result"] for r in out["time_series"]]
    voiced = [lab for lab in labels if lab != "silence"]
    assert voiced.count("speech") > 0.6 * len(voiced), labels


async def test_decision_rule_through_the_engine(tmp_path: Path) -> None:
    """A human sound above its threshold wins over speech; else speech over music over noise;
    raw values are the model's own scores (here they add up to 2.0)."""
    rule = MultiLabel.from_json({"thresholds": dict(zip(LABELS, (0.5, 0.5, 0.4, 0.5, 0.5, 0.5))),
                                 "background_labels": ["speech", "music", "noise"]}, LABELS, "T")
    cases = [((0.6, 0.1, 0.1, 0.9, 0.2, 0.1), "pos_human_sounds"),  # laughter over speech
             ((0.55, 0.1, 0.45, 0.9, 0.2, 0.1), "nat_human_sounds"),  # 0.45 / 0.4 beats 0.55 / 0.5
             ((0.1, 0.1, 0.1, 0.2, 0.8, 0.7), "music"),  # music over noise
             ((0.1, 0.1, 0.1, 0.3, 0.2, 0.4), "noise")]  # nothing above: the closest background label
    for i, (probs, want) in enumerate(cases):
        eng = Deeptone(load_bundled=False)
        spec = ModelSpec(name="Multi", key="multi", kind="logmel", labels=LABELS,
                         onnx=constant_model(tmp_path / f"m{i}.onnx", list(probs)), receptive_field_ms=64,
                         multi_label=rule)
        eng.register_model(spec)
        out = await eng.process_audio_bytes(noise(1.0, 0.1), [spec], output_period=256, include_raw_values=True)
        first = out["time_series"][0]
        assert first["results"]["multi"]["result"] == want
        assert first["results"]["multi"]["confidence"] == pytest.approx(probs[LABELS.index(want)], abs=1e-4)
        assert sum(first["raw"]["multi"].values()) == pytest.approx(sum(probs), abs=1e-3)


def test_bad_multi_label_specs_are_model_errors() -> None:
    with pytest.raises(ModelError, match="one threshold per label"):
        MultiLabel.from_json({"thresholds": {"a": 0.5}}, ("a", "b"), "T")
    with pytest.raises(ModelError, match="background_labels"):
        MultiLabel.from_json({"thresholds": {"a": 0.5, "b": 0.5}, "background_labels": ["c"]}, ("a", "b"), "T")
    with pytest.raises(ModelError, match=r"\(0, 1\]"):
        MultiLabel.from_json({"thresholds": {"a": 0.0, "b": 0.5}}, ("a", "b"), "T")


# -- corpus clips (skipped without ../shared/data) --------------------------------------------------


def _val_clip(corpus: str, label: str, index: int = 0) -> np.ndarray:
    import csv

    manifest = DATA / corpus / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is absent")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == label and r["split"] == "val"]
    x, sr = sf.read(DATA / corpus / rows[index]["file"], dtype="float32")
    assert sr == SR
    return x


@pytest.mark.parametrize(("corpus", "label", "want"), [
    ("vocalizations", "laugh", "pos_human_sounds"),
    ("vocalizations", "cough", "nat_human_sounds"),
    ("vocalizations", "sneeze", "nat_human_sounds"),
    ("vocalizations", "scream", "neg_human_sounds"),
    ("noise", "cry", "neg_human_sounds"),
])
async def test_validation_clips_score_their_class(ae_engine: Deeptone, corpus: str, label: str, want: str) -> None:
    th = _thresholds(_spec(ae_engine))
    out = await _analyse(ae_engine, _val_clip(corpus, label))
    scores = np.array([r["raw"]["audio-event"][want] for r in out["time_series"]])
    labels = [r["results"]["audio-event"]["result"] for r in out["time_series"]]
    assert scores.max() >= th[want] and want in labels
    assert want in {t["result"] for t in out["transitions"]["audio-event"]}


async def test_laughter_over_speech_scores_both(ae_engine: Deeptone, speech: np.ndarray) -> None:
    """Independent scores: laughter mixed over speech is laughter *and* speech at once."""
    th = _thresholds(_spec(ae_engine))
    laugh = _val_clip("vocalizations", "laugh")
    talk = speech.astype(np.float32) / 32768.0
    n = min(len(laugh), len(talk))
    x = talk[:n] * 0.5 + laugh[:n] * (0.5 * np.sqrt(np.mean(talk[:n] ** 2)) / max(np.sqrt(np.mean(laugh[:n] ** 2)), 1e-6))
    out = await _analyse(ae_engine, np.clip(x, -1, 1).astype(np.float32))
    raw = np.array([[r["raw"]["audio-event"][k] for k in ("pos_human_sounds", "speech")] for r in out["time_series"]])
    both = (raw[:, 0] >= th["pos_human_sounds"]) & (raw[:, 1] >= th["speech"])
    assert both.any(), raw.max(axis=0)


# -- examples/call_centre_flags.py ----------------------------------------------------------------


def _example():
    import importlib.util
    import sys

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("call_centre_flags", REPO / "examples" / "call_centre_flags.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_example_flags_from_transitions_merge_and_drop_blips() -> None:
    mod = _example()
    seg = [{"timestamp_start": 0, "timestamp_end": 1000, "result": "speech", "confidence": 0.9},
           {"timestamp_start": 1000, "timestamp_end": 1320, "result": "pos_human_sounds", "confidence": 0.8},
           {"timestamp_start": 1320, "timestamp_end": 1500, "result": "speech", "confidence": 0.9},
           {"timestamp_start": 1500, "timestamp_end": 1700, "result": "pos_human_sounds", "confidence": 0.6},
           {"timestamp_start": 5000, "timestamp_end": 5128, "result": "neg_human_sounds", "confidence": 0.9}]
    child = [{"timestamp_start": 0, "timestamp_end": 3000, "result": "child", "confidence": 0.9},
             {"timestamp_start": 3000, "timestamp_end": 3500, "result": "adult", "confidence": 0.9}]
    flags = mod.flags_from_transitions("call.wav", "0", {"audio-event": seg, "underage-speaker": child})
    assert [(f.flag, f.start_ms, f.end_ms) for f in flags] == [("child", 0, 3000), ("laughter", 1000, 1700)]
    assert flags[1].confidence == pytest.approx((0.8 * 320 + 0.6 * 200) / 520)
    assert "00:01.00 - 00:01.70" in str(flags[1])  # the 128 ms crying blip is dropped


def test_example_flags_laughter_in_a_call(tmp_path: Path, speech: np.ndarray) -> None:
    """The example, run as a user runs it, on speech with a laugh after it."""
    import re
    import subprocess
    import sys

    from conftest import REPO

    laugh = _val_clip("vocalizations", "laugh")
    talk = speech.astype(np.float32) / 32768.0
    x = np.concatenate([talk, np.zeros(SR // 2, np.float32), laugh / max(np.abs(laugh).max(), 1e-6) * 0.5, talk])
    path = tmp_path / "call.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "call_centre_flags.py"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    start_s = (len(talk) + SR // 2) / SR
    found = re.findall(r": laughter +(\d\d):(\d\d\.\d\d) - ", proc.stdout)
    assert found, proc.stdout
    assert any(abs(int(m) * 60 + float(s) - start_s) < 1.0 for m, s in found), found  # where the laugh starts


async def test_example_flags_a_child_on_the_line(ae_engine: Deeptone) -> None:
    """With UnderageSpeaker installed, a child's speech (speechocean val, ages 6-12) is flagged."""
    if "UnderageSpeaker" not in dir(ae_engine.models):
        pytest.skip("UnderageSpeaker is not in this install")
    import csv

    manifest = DATA / "speechocean" / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is absent")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r.get("age_band") == "child"][:3]
    x = np.concatenate([sf.read(DATA / "speechocean" / r["file"], dtype="float32")[0] for r in rows])
    mod = _example()
    out = await ae_engine.process_audio_bytes(x, [ae_engine.models.UnderageSpeaker, ae_engine.models.AudioEvent],
                                              include_transitions=True)
    flags = mod.flags_from_transitions("call", "0", out["transitions"])
    assert any(f.flag == "child" for f in flags), flags
