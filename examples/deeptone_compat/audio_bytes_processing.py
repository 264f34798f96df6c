"""DeepTone's "Audio Bytes Processing" example.

Changed from DeepTone's page: the import lines (``deeptone`` -> ``deeptone_async.sync``,
``deeptone.deeptone`` -> ``deeptone_async.labels``) and the path, which comes from the
command line. The license key is accepted and ignored.

    python examples/deeptone_compat/audio_bytes_processing.py speech.wav
"""

import sys

from scipy.io import wavfile

from deeptone_async.labels import GENDER_FEMALE, GENDER_MALE, GENDER_NO_SPEECH, GENDER_SILENCE, GENDER_UNKNOWN
from deeptone_async.sync import Deeptone

# Read in some audio bytes
_, audio_bytes = wavfile.read(sys.argv[1] if len(sys.argv) > 1 else "PATH_TO_AUDIO_FILE")
# Initialise Deeptone
engine = Deeptone(license_key="...")
output = engine.process_audio_bytes(
    data=audio_bytes,
    models=[engine.models.Gender],
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
    res = ts_result["results"]["gender"]
    print(f'Timestamp: {ts}ms\tresult: {res["result"]}\t' f'confidence: {res["confidence"]}')
print("\nRaw model outputs:")
for ts_result in output["time_series"]:
    ts = ts_result["timestamp"]
    raw = ts_result["raw"]["gender"]
    print(f"Timestamp: {ts}ms\traw results: {GENDER_MALE}: " f"{raw[GENDER_MALE]}, {GENDER_FEMALE}: {raw[GENDER_FEMALE]}")
summary = output["summary"]["gender"]
male = summary[f"{GENDER_MALE}_fraction"] * 100
female = summary[f"{GENDER_FEMALE}_fraction"] * 100
no_speech = summary[f"{GENDER_NO_SPEECH}_fraction"] * 100
unknown = summary[f"{GENDER_UNKNOWN}_fraction"] * 100
silence = summary[f"{GENDER_SILENCE}_fraction"] * 100
print(f"\nSummary: male: {male}%, female: {female}%, no_speech: {no_speech}%, unknown: {unknown}%, silence: {silence}%")
print("\nTransitions:")
for ts_result in output["transitions"]["gender"]:
    ts = ts_result["timestamp_start"]
    print(f"Timestamp: {ts}ms\tresult: {ts_result['result']}\t" f'confidence: {ts_result["confidence"]}')
