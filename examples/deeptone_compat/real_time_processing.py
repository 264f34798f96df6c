"""DeepTone's "Real Time Processing" example 1 (streaming bytes from an audio file).

Changed from DeepTone's page: the import line (``from deeptone import Deeptone`` ->
``from deeptone_async.sync import Deeptone``) and the path, which comes from the command line.
The license key is accepted and ignored.

    python examples/deeptone_compat/real_time_processing.py speech.wav
"""

import sys

from scipy.io import wavfile

from deeptone_async.sync import Deeptone


def input_generator(filepath, chunk_size=1024):
    print(f"Opening file {filepath}")
    rate, data = wavfile.read(filepath)
    print(f"Detected sample rate: {rate}")
    index = 0
    while index < len(data):
        yield data[index : min(len(data), index + chunk_size)]
        index += chunk_size
    return


# Initialise Deeptone
engine = Deeptone(license_key="...")
audio_generator = input_generator(sys.argv[1] if len(sys.argv) > 1 else "PATH_TO_AUDIO_FILE")
output = engine.process_stream(
    input_generator=audio_generator, models=[engine.models.Gender], output_period=1024, volume_threshold=0.005
)

# Inspect the result
for ts_result in output:
    ts = ts_result["timestamp"]
    res = ts_result["results"]["gender"]
    print(f'Timestamp: {ts}ms\tresult: {res["result"]}' f' with confidence {res["confidence"]}')
