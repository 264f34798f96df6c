"""DeepTone's "Audio Bytes Processing" example.

Changed from DeepTone's page: the import lines (``deeptone`` -> ``deeptone_async.sync``,
``deeptone.deeptone`` -> ``deeptone_async.labels``), the path comes from the command line,
and the model is Vad with its labels (Gender is not trained yet). The license key is
accepted and ignored.

    python examples/deeptone_compat/audio_bytes_processing.py speech.wav
"""

import sys

from scipy.io import wavfile

from deeptone_async.labels import VAD_NO_SPEECH, VAD_SILENCE, VAD_SPEECH
from deeptone_async.sync import Deeptone

# Read in some audio bytes
_, audio_bytes = wavfile.read(sys.argv[1] if len(sys.argv) > 1 else "PATH_TO_AUDIO_FILE")
# Initialise Deeptone
engine = Deeptone(license_key="...")
output = engine.process_audio_bytes(
    data=audio_bytes,
    models=[engine.models.Vad],
    output_period=1024,
    include_summary=True,
    include_transitions=True,
    include_raw_values=True,
    volume_threshold=0.005,
)

# Inspect the result
print(output)
print("Time series:")
for ts_result in output["time_series"]:
    ts = ts_result["timestamp"]
    res = ts_result["results"]["vad"]
    print(f'Timestamp: {ts}ms\tresult: {res["result"]}\t' f'confidence: {res["confidence"]}')
print("\nRaw model outputs:")
for ts_result in output["time_series"]:
    ts = ts_result["timestamp"]
    raw = ts_result["raw"]["vad"]
    print(f"Timestamp: {ts}ms\traw results: {VAD_SPEECH}: " f"{raw[VAD_SPEECH]}, {VAD_NO_SPEECH}: {raw[VAD_NO_SPEECH]}")
summary = output["summary"]["vad"]
speech = summary[f"{VAD_SPEECH}_fraction"] * 100
no_speech = summary[f"{VAD_NO_SPEECH}_fraction"] * 100
silence = summary[f"{VAD_SILENCE}_fraction"] * 100
print(f"\nSummary: speech: {speech}%, no_speech: {no_speech}%, silence: {silence}%")
print("\nTransitions:")
for ts_result in output["transitions"]["vad"]:
    ts = ts_result["timestamp_start"]
    print(f"Timestamp: {ts}ms\tresult: {ts_result['result']}\t" f'confidence: {ts_result["confidence"]}')
