"""Training pipeline for the bundled deeptone-async models (Speech, SpeechRT, Gender).

Modules (each runnable as ``python -m training.<module>``):

* :mod:`training.data`      -- manifest reading, decoding + in-memory/npz cache, frame truth
* :mod:`training.augment`   -- noise/music mixing, gain, telephone band, codec, reverb
* :mod:`training.nets`      -- the causal, valid TCN used by all three models
* :mod:`training.train`     -- training loop + ONNX export (``--model speech|speech_rt|gender``)
* :mod:`training.export`    -- ONNX export, streaming-equivalence and onnxruntime checks, speed
* :mod:`training.evaluate`  -- the one evaluation script; every number in the model cards

The data root is ``$DEEPTONE_DATA`` (default ``<repo>/../shared/data``).
"""

import os as _os

# Data workers and the trainer share few cores: multi-threaded BLAS inside numpy (logmel's
# mel matmul) only oversubscribes them, so keep it single-threaded unless the user says otherwise.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
