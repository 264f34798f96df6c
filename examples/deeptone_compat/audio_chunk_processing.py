"""DeepTone's "Audio Chunk Processing" example.

Changed from DeepTone's page: the import line (``deeptone`` -> ``deeptone_async.sync``), the
path, which comes from the command line, and the two lines the page lost in its formatting
(``from scipy.io import wavfile`` and ``wavfile.read(...)``; ``data=audio_bytes``). The
license key is accepted and ignored.

    python examples/deeptone_compat/audio_chunk_processing.py speech.wav
"""

import sys

from scipy.io import wavfile

from deeptone_async.sync import Deeptone

# Read in some audio bytes
_, audio_bytes = wavfile.read(sys.argv[1] if len(sys.argv) > 1 else "PATH_TO_AUDIO_FILE")
# Initialise Deeptone
engine = Deeptone(license_key="...")
output = engine.process_audio_chunk(
    data=audio_bytes,
    models=[engine.models.Speech, engine.models.Gender],
    include_raw_values=True,
)

# Inspect the result
results_processed = output["results"]
results_raw = output["raw"]
print("\nChunk results:")
for model_name in results_processed.keys():
    result = results_processed[model_name]["result"]
    confidence = results_processed[model_name]["confidence"]
    print(f"Model: {model_name}, result: '{result}' with {confidence} confidence")
print("\nRaw chunk results:")
for model_name in results_raw.keys():
    results = results_raw[model_name]
    report_str = f"Model: {model_name}, raw results: "
    for label in results.keys():
        report_str += f"'{label}' with {results[label]} confidence, "
    print(report_str.rstrip(", "))
