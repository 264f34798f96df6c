import numpy as np
import pytest

from deeptone_async import AudioFormat, AudioFormatError, ParameterError
from deeptone_async.audio import BytesDecoder, to_float32


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        ("int8", -128, 127),
        ("int16", -32768, 32767),
        ("int32", -(2**31), 2**31 - 1),
        ("uint8", 0, 255),
        ("uint16", 0, 65535),
        ("uint32", 0, 2**32 - 1),
    ],
)
def test_integer_pcm_maps_full_range_to_unit_scale(dtype: str, low: int, high: int) -> None:
    x = np.array([low, high], dtype=dtype)
    y = to_float32(x)
    assert y.shape == (2, 1)
    assert y[0, 0] == pytest.approx(-1.0)
    assert y[1, 0] == pytest.approx(1.0, abs=1e-2)


def test_unsigned_midpoint_is_zero() -> None:
    assert to_float32(np.array([128], np.uint8))[0, 0] == 0.0
    assert to_float32(np.array([32768], np.uint16))[0, 0] == 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_is_taken_as_is(dtype: str) -> None:
    x = np.array([0.25, -0.5], dtype=dtype)
    np.testing.assert_array_equal(to_float32(x)[:, 0], [0.25, -0.5])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected(bad: float) -> None:
    with pytest.raises(AudioFormatError, match="NaN or infinite"):
        to_float32(np.array([0.0, bad], np.float32))


@pytest.mark.parametrize("dtype", ["int64", "complex64", "bool", "float16"])
def test_unsupported_dtype_is_named(dtype: str) -> None:
    with pytest.raises(AudioFormatError, match=dtype):
        to_float32(np.zeros(4, dtype=dtype))


def test_interleaved_channels() -> None:
    y = to_float32(np.array([1, 2, 3, 4], np.int16), channels=2)
    assert y.shape == (2, 2)
    with pytest.raises(AudioFormatError):
        to_float32(np.array([1, 2, 3], np.int16), channels=2)


def test_odd_byte_is_carried_into_the_next_chunk() -> None:
    samples = np.arange(-500, 500, 7, dtype=np.int16)
    data = samples.astype("<i2").tobytes()
    dec = BytesDecoder(AudioFormat())
    parts = [dec.decode(data[:3]), dec.decode(data[3:10]), dec.decode(data[10:])]
    assert dec.pending == 0
    got = np.concatenate(parts)[:, 0]
    np.testing.assert_array_equal(got, samples / 32768.0)


def test_audio_format_validates() -> None:
    with pytest.raises(ParameterError):
        AudioFormat(sample_rate=0)
    with pytest.raises(ParameterError):
        AudioFormat(dtype="int64")
