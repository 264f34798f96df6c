import numpy as np

from deeptone_async import AudioFormat
from deeptone_async.framer import frames
from deeptone_async.gate import gate


async def _collect(chunks, fmt=None):
    async def gen():
        for c in chunks:
            yield c

    return [b async for b in frames(gen(), fmt or AudioFormat())]


async def test_frames_do_not_depend_on_chunking() -> None:
    x = (np.random.default_rng(0).standard_normal(5000) * 3000).astype(np.int16)
    a = await _collect([x])
    b = await _collect([x[:1], x[1:1500], x[1500:1501], x[1501:]])
    fa = np.concatenate([blk.samples for blk in a], axis=1)
    fb = np.concatenate([blk.samples for blk in b], axis=1)
    np.testing.assert_array_equal(fa, fb)
    assert fa.shape == (1, 5, 1024)  # 4 whole frames and a partial one
    valid = np.concatenate([blk.valid for blk in a])
    assert list(valid) == [1024, 1024, 1024, 1024, 5000 - 4096]
    assert [blk.start for blk in b] == sorted(blk.start for blk in b)


async def test_resampled_length_matches_duration() -> None:
    x = np.zeros(44100 * 2, np.float32)
    blocks = await _collect([x[:10000], x[10000:]], AudioFormat(44100, 1, "float32"))
    total = int(sum(blk.valid.sum() for blk in blocks))
    assert abs(total - 32000) <= 2


async def test_gate_marks_quiet_frames_and_ignores_padding() -> None:
    loud = np.full(1024 + 100, 0.1, np.float32)
    quiet = np.full(1024, 0.001, np.float32)

    async def gen():
        yield np.concatenate([quiet, loud])

    blocks = [b async for b in gate(frames(gen(), AudioFormat(dtype="float32")), 0.005)]
    silent = np.concatenate([b.silent[0] for b in blocks])
    assert list(silent) == [True, False, False]  # the 100-sample tail is loud, not diluted by padding


def test_frames_are_held_for_a_whole_period_and_released_at_the_end() -> None:
    from deeptone_async.framer import Framer

    framer = Framer(1, min_block_frames=4)
    sizes = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10 * 1024 + 300, 1)).astype(np.float32)
    for lo in range(0, len(x), 320):  # 20 ms pushes
        sizes += [b.n_frames for b in framer.push(x[lo : lo + 320])]
    tail = framer.flush()
    assert sizes == [4, 4]  # whole periods only while streaming
    assert [b.n_frames for b in tail] == [3] and list(tail[0].valid) == [1024, 1024, 300]
    got = np.concatenate([b.samples[0].reshape(-1) for b in framer.push(np.zeros((0, 1), np.float32))] + [np.zeros(0)])
    assert got.size == 0
    whole = Framer(1).push(x)
    assert sum(b.n_frames for b in whole) == 10


async def test_a_last_chunk_the_source_announces_goes_out_with_its_partial_frame_in_one_block() -> None:
    """A file or array that knows its last chunk (``at_end``) gets one block, hence one
    inference call, for a short input; the frames are the same as without the hint,
    at 16 kHz and through the resampler."""
    import pytest

    x = (np.random.default_rng(1).standard_normal(48_000) * 3000).astype(np.int16)  # 3 s: 46 frames and a partial

    async def run(chunks, fmt, hint):
        state = {"last": False}

        async def gen():
            for i, c in enumerate(chunks):
                state["last"] = i == len(chunks) - 1
                yield c

        return [b async for b in frames(gen(), fmt, at_end=(lambda: state["last"]) if hint else None)]

    for fmt, data in ((AudioFormat(), x), (AudioFormat(8000, 1, "int16"), x[:24_000])):
        for chunks in ([data], [data[:7000], data[7000:]]):
            plain, hinted = await run(chunks, fmt, False), await run(chunks, fmt, True)
            assert len(hinted) == len(chunks) < len(plain)  # the partial frame (and resampler tail) ride along
            np.testing.assert_array_equal(
                np.concatenate([b.samples for b in hinted], 1), np.concatenate([b.samples for b in plain], 1)
            )
            assert list(np.concatenate([b.valid for b in hinted])) == list(np.concatenate([b.valid for b in plain]))

    async def lies():
        yield x[:2000]
        yield x[2000:]

    with pytest.raises(RuntimeError, match="after the one its at_end"):
        [b async for b in frames(lies(), AudioFormat(), at_end=lambda: True)]
