"""Room reverberation from simulated impulse responses.

A room impulse response (RIR) here is the hybrid of Lehmann & Johansson (2010, "Diffuse
reverberation model for efficient image-source simulation of room impulse responses", IEEE
TASLP 18(6)): the early part is an image-source simulation of a shoebox room
(``pyroomacoustics``, Allen & Berkley 1979; wall absorption from Sabine's formula for the
drawn RT60), cut after reflections of order ``max_order`` (where the image sources are still
complete), and the late part is the diffuse field of statistical room acoustics: Gaussian noise
whose power decays by 60 dB in RT60 and whose total energy is the Sabine reverberant energy
``1 / (pi * R)`` with ``R = A / (1 - mean absorption)`` (Kuttruff, *Room Acoustics*, ch. 5), in
the same units as the simulated direct sound ``1 / (4 pi r)``. The image sources are exact
where they matter and the tail costs nothing, so a 1 s RT60 room takes milliseconds instead of
the seconds a full-order image-source run takes. Without ``pyroomacoustics`` (the ``train``
extra), :func:`diffuse_rir` gives the same tail after the direct sound, with no early
reflections.

Every function is deterministic given its arguments; randomness comes from the generator passed
in. Audio is float32 mono at 16 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from .levels import level_dbfs, set_level

SR = 16_000
C = 343.0  # speed of sound, m/s
K60 = 6 * np.log(10)  # energy decay constant: 60 dB in RT60


@dataclass(frozen=True)
class Room:
    """A shoebox room: ``dims`` (m), reverberation time ``rt60`` (s), ``source`` and ``mic``
    positions (m)."""

    dims: tuple[float, float, float]
    rt60: float
    source: tuple[float, float, float]
    mic: tuple[float, float, float]

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(np.subtract(self.source, self.mic)))

    @property
    def volume(self) -> float:
        return float(np.prod(self.dims))

    @property
    def surface(self) -> float:
        lx, ly, lz = self.dims
        return 2 * (lx * ly + lx * lz + ly * lz)

    def absorption(self) -> float:
        """Mean energy absorption coefficient by Sabine's formula (clipped to 0.01..0.99).

        Raises:
            ValueError: the room cannot reach its RT60 (absorption would exceed 0.99).
        """
        a = 0.161 * self.volume / (self.rt60 * self.surface)
        if a > 0.99:
            raise ValueError(f"a {self.dims} m room cannot have RT60 {self.rt60} s")
        return float(max(a, 0.01))


def draw_room(rng: np.random.Generator, rt60: tuple[float, float] = (0.2, 1.0),
              distance: tuple[float, float] = (0.5, 4.0)) -> Room:
    """A random room: 3-10 x 2.5-8 x 2.4-4 m, RT60 uniform in ``rt60``, source and microphone
    at least 0.5 m from every wall and ``distance`` apart (redrawn until they fit)."""
    while True:
        dims = (float(rng.uniform(3, 10)), float(rng.uniform(2.5, 8)), float(rng.uniform(2.4, 4)))
        lo, hi = np.full(3, 0.5), np.array(dims) - 0.5
        src = rng.uniform(lo, hi)
        mic = rng.uniform(lo, hi)
        d = float(np.linalg.norm(src - mic))
        t60 = float(rng.uniform(*rt60))
        room = Room(dims, t60, tuple(src.tolist()), tuple(mic.tolist()))  # type: ignore[arg-type]
        if distance[0] <= d <= distance[1] and 0.161 * room.volume / (t60 * room.surface) <= 0.99:
            return room


def _tail(room: Room, rng: np.random.Generator, start: float, n: int, sr: int,
          scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(diffuse-field tail, fade-in) for emission times from ``start`` s on (a 5 ms crossfade
    centred there), in the amplitude units of the direct sound ``scale``/(4 pi r)."""
    a = room.absorption()
    r_const = room.surface * a / (1 - a)
    e_rev = scale**2 / (np.pi * r_const)
    k = K60 / room.rt60
    t = np.arange(n) / sr
    t0 = room.distance / C
    power = np.where(t >= t0, e_rev * k * np.exp(-k * np.maximum(t - t0, 0)), 0.0) / sr
    fade = np.clip((t - start) / 0.005 + 0.5, 0, 1)  # 5 ms crossfade centred on start
    return (rng.standard_normal(n) * np.sqrt(power) * fade).astype(np.float64), fade


def _length(room: Room, sr: int) -> int:
    return int((room.distance / C + min(1.2 * room.rt60, 1.5)) * sr)


def _trim(h: np.ndarray, room: Room, direct: float, sr: int) -> np.ndarray:
    """The RIR from its direct sound on, scaled so that the direct sound (amplitude ``direct``
    in ``h``) is 1."""
    i = int(round(room.distance / C * sr))
    return (h[i:] / direct).astype(np.float32)


def ism_rir(room: Room, rng: np.random.Generator, max_order: int = 6, sr: int = SR) -> np.ndarray:
    """Hybrid RIR of ``room``: image sources up to ``max_order`` + the diffuse tail, starting at
    the direct sound, direct sound = 1.

    Raises:
        ImportError: pyroomacoustics is missing (``pip install deeptone-async[train]``).
    """
    try:
        import pyroomacoustics as pra
    except ImportError as e:
        raise ImportError("room simulation needs pyroomacoustics: pip install 'deeptone-async[train]'") from e
    a = room.absorption()
    shoebox = pra.ShoeBox(list(room.dims), fs=sr, materials=pra.Material(a), max_order=max_order)
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.mic))
    shoebox.compute_rir()
    early = np.asarray(shoebox.rir[0][0], np.float64)
    delay = pra.constants.get("frac_delay_length") // 2  # pra's fractional-delay filter offset
    early = early[delay:]
    # image sources of order <= max_order fill every direction until about max_order room widths
    t_mix = room.distance / C + max_order * min(room.dims) / C
    n = max(_length(room, sr), len(early))
    tail, fade = _tail(room, rng, t_mix, n, sr, scale=4 * np.pi)  # pra's direct sound is 1/r
    h = np.zeros(n)
    h[: min(n, len(early))] = early[:n]
    h = h * (1 - fade) + tail
    return _trim(h, room, 1.0 / room.distance, sr)


def diffuse_rir(room: Room, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Direct sound + the diffuse tail from 5 ms after it (no early reflections); needs no
    simulation package. Starts at the direct sound, direct sound = 1."""
    n = _length(room, sr)
    tail, _ = _tail(room, rng, room.distance / C + 0.005, n, sr)
    direct = 1.0 / (4 * np.pi * room.distance)
    tail[int(round(room.distance / C * sr))] += direct
    return _trim(tail, room, direct, sr)


def reverb(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` (which starts at its direct sound, so speech stays where it
    was), cut to ``len(x)`` and brought back to the active level of ``x``."""
    if not len(x):
        return x.astype(np.float32, copy=True)
    y = fftconvolve(x.astype(np.float64), rir.astype(np.float64))[: len(x)].astype(np.float32)
    return set_level(y, level_dbfs(x))


def rt60_of(rir: np.ndarray, sr: int = SR) -> float:
    """Reverberation time of an impulse response: Schroeder backward integration, line fitted
    from -5 to -25 dB (T20), extrapolated to 60 dB. NaN if the decay never reaches -25 dB."""
    e = np.cumsum((rir.astype(np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-30)
    i5, i25 = np.argmax(edc <= -5), np.argmax(edc <= -25)
    if edc[-1] > -25 or i25 <= i5:
        return float("nan")
    t = np.arange(i5, i25) / sr
    slope = np.polyfit(t, edc[i5:i25], 1)[0]
    return float(-60 / slope)
