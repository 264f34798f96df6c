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
