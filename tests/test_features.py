import numpy as np

from deeptone_async.features import FRAME_SAMPLES, N_MELS, SILENCE_FLOOR, SUBFRAMES, LogMelExtractor, logmel


def test_streaming_equals_whole() -> None:
    x = np.random.default_rng(1).standard_normal(FRAME_SAMPLES * 7).astype(np.float32) * 0.1
    whole = logmel(x)
    ext = LogMelExtractor()
    parts = [ext(x[: FRAME_SAMPLES * 2].reshape(2, -1)), ext(x[FRAME_SAMPLES * 2 :].reshape(5, -1))]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-5)
    assert whole.shape == (7 * SUBFRAMES, N_MELS)


def test_long_blocks_are_computed_in_pieces_with_the_same_rows() -> None:
    # blocks longer than LogMelExtractor.PIECE_FRAMES are split inside the extractor
    n = 3 * LogMelExtractor.PIECE_FRAMES + 5
    x = np.random.default_rng(2).standard_normal(FRAME_SAMPLES * n).astype(np.float32) * 0.1
    whole = logmel(x)
    ext = LogMelExtractor()
    cuts = [0, 3, 3 + 2 * LogMelExtractor.PIECE_FRAMES + 1, n]
    parts = [ext(x[a * FRAME_SAMPLES : b * FRAME_SAMPLES].reshape(b - a, -1)) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_rows_use_only_past_audio() -> None:
    x = np.random.default_rng(2).standard_normal(FRAME_SAMPLES * 4).astype(np.float32)
    y = x.copy()
    y[FRAME_SAMPLES * 2 :] = 0.0  # change the future
    np.testing.assert_array_equal(logmel(x)[: 2 * SUBFRAMES], logmel(y)[: 2 * SUBFRAMES])


def test_digital_silence_is_the_floor() -> None:
    np.testing.assert_allclose(logmel(np.zeros(FRAME_SAMPLES, np.float32)), SILENCE_FLOOR)


def test_louder_tone_has_more_energy() -> None:
    t = np.arange(FRAME_SAMPLES) / 16000
    quiet = logmel((0.01 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    loud = logmel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert loud.max() > quiet.max() + 5


def test_features_of_many_streams_at_once_equal_each_streams_own() -> None:
    """Live frames of many streams get their features in one set of array operations; the
    rows, and each stream's carried history, must be exactly those of its own extractor."""
    from deeptone_async.features import LogMelExtractor, stream_features

    rng = np.random.default_rng(7)
    for streams, n in [(2, 1), (40, 1), (5, 3), (3, 16), (2, 40)]:
        shared = [LogMelExtractor() for _ in range(streams)]
        own = [LogMelExtractor() for _ in range(streams)]
        for _ in range(3):  # consecutive calls: the history carried between them counts
            x = (rng.standard_normal((streams, n, 1024)) * 0.2).astype(np.float32)
            got = stream_features(shared, x)
            want = np.stack([ex(f) for ex, f in zip(own, x)])
            assert got.shape == (streams, 4 * n, 64)
            assert np.array_equal(got, want)
