"""Spectral-noise corruptions: blue_noise_sample (black where blue noise dips) and brownish_noise.

Both draw a noise field the published way: a centred amplitude spectrum (``|f|`` for blue noise,
``1 / (|f|^2 + 1)`` for brownish) times random phases, whose left half holds ``U[0, 2 pi)`` phases and
whose right half repeats them reversed in both axes; the spectrum is rolled by half the size, the real
part of its inverse FFT taken and scaled to unit standard deviation. The phases are not Hermitian, so the
real part is what makes the field real, as in the reference.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import fft

from moo_compress.data.corruptions_bar.base import Params, register
from moo_compress.data.corruptions_bar.params import IMAGE_SIZE, scaled

__all__ = ["spectral_noise", "blue_amplitude", "brown_amplitude"]

_HALF = IMAGE_SIZE // 2


@cache
def _frequency_radius() -> np.ndarray:
    """Distance of every ``[y, x]`` of the unrolled spectrum from its centre ``(16, 16)``."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    return np.sqrt((x - IMAGE_SIZE / 2) ** 2 + (y - IMAGE_SIZE / 2) ** 2)


def blue_amplitude() -> np.ndarray:
    """The blue-noise amplitude spectrum: the distance from the centre."""
    return _frequency_radius()


def brown_amplitude() -> np.ndarray:
    """The brownish amplitude spectrum: ``1 / (distance^2 + 1)``."""
    return 1 / (_frequency_radius() ** 2 + 1)


def spectral_noise(phases: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """Unit-std noise fields from half-width phases.

    Args:
        phases: ``(..., 32, 16)`` phases in [0, 2 pi), one set per field.
        amplitude: ``(32, 32)`` centred amplitude spectrum.

    Returns:
        ``(..., 32, 32)`` real fields, each scaled to standard deviation 1.
    """
    phases = np.concatenate((phases, phases[..., ::-1, ::-1]), axis=-1)
    spectrum = amplitude * (np.cos(phases) + np.sin(phases) * 1j)
    spectrum = np.roll(spectrum, (_HALF, _HALF), axis=(-2, -1))
    noise = np.real(fft.ifft2(spectrum, axes=(-2, -1)))
    return noise / np.std(noise, axis=(-2, -1), keepdims=True)


def _sample_blue(rng: np.random.Generator, count: int, level: float) -> Params:
    return {"phases": rng.uniform(0, 2 * np.pi, size=(count, IMAGE_SIZE, _HALF))}


def _blue_noise_sample(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Pixels where one blue-noise field is at or below the threshold turn black (all channels)."""
    threshold = scaled(level, 3.0) - 2.5
    keep = spectral_noise(params["phases"], blue_amplitude()) > threshold
    return images * keep[..., None]


def _sample_brownish(rng: np.random.Generator, count: int, level: float) -> Params:
    return {"phases": rng.uniform(0, 2 * np.pi, size=(count, 3, IMAGE_SIZE, _HALF))}


def _brownish_noise(images: np.ndarray, params: Params, level: float) -> np.ndarray:
    """Adds ``intensity`` times an independent brownish field to each channel."""
    intensity = scaled(level, 64)
    noise = spectral_noise(params["phases"], brown_amplitude())  # (N, 3, 32, 32)
    return images + intensity * np.moveaxis(noise, 1, -1)


register("blue_noise_sample", sample=_sample_blue, apply=_blue_noise_sample)
register("brownish_noise", sample=_sample_brownish, apply=_brownish_noise)
