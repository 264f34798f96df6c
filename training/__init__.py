"""Training, evaluation and model cards of the bundled deeptone-async models.

Shared parts (each runnable module as ``python -m training.<module>``; ``training/README.md``
has the commands):

* :mod:`training.data`       -- manifests, decoding + npz cache, energy frame truth, label maps
* :mod:`training.augment`    -- the one augmentation chain (rooms, noise/music/babble, EQ,
  clipping, levels, telephone and codecs) with per-task label policies
* :mod:`training.sampler`, :mod:`training.chain_rows` -- crops and cached chain log-mel rows
* :mod:`training.nets`       -- the causal, valid TCN every log-mel model uses
* :mod:`training.train`      -- the log-mel trainer (Speech, SpeechRT, Gender, UnderageSpeaker)
* :mod:`training.export`     -- ONNX export, streaming-equivalence and onnxruntime checks, speed
* :mod:`training.evaluate`, :mod:`training.robustness` -- card figures; the robustness table
* :mod:`training.cards`, :mod:`training.robustness_card` -- cards from the JSON results

Recipes of their own over those parts: ``affect*`` (Arousal, Emotions), ``audio_event`` and
``event_mixing`` (AudioEvent), ``speaker_embedding`` and ``diarization`` (SpeakerMap),
``underage`` (UnderageSpeaker's evaluation), ``silero_seq`` (the Vad's graphs).
The data root is ``$DEEPTONE_DATA`` (default ``<repo>/../shared/data``).
"""

import os as _os

# Data workers and the trainer share few cores: multi-threaded BLAS inside numpy (logmel's
# mel matmul) only oversubscribes them, so keep it single-threaded unless the user says otherwise.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
