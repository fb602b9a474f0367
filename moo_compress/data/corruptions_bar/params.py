"""THE parameter table of CIFAR-10-C-bar: ten held-out corruptions, five severities each.

CIFAR-10-C-bar (Mintun, Kirillov & Xie, "On Interaction Between Augmentations and Corruptions in
Natural Corruption Robustness", NeurIPS 2021) gives each corruption a *level* on a 0..10 scale per
severity; a corruption turns its level into concrete parameters as ``level * top / 10`` (:func:`scaled`).
The levels are those of ``imagenet_c_bar/cifar10_c_bar.csv`` in facebookresearch/augmentation-corruption
at commit c7d90e3467fd3dd4ef3753dc02d5ab575cc0b476 (:data:`SOURCE`), in that file's order; the concrete
values below are for 32x32 images. Pixel values are 0..255.

===============================  ===========================  ===============================================
corruption                       levels for severities 1..5   what the level sets (32x32), severities 1..5
===============================  ===========================  ===============================================
blue_noise_sample                .7, 1.4, 2.1, 3.5, 4.2       black where unit-std blue noise <= .3 l - 2.5:
                                                              -2.29, -2.08, -1.87, -1.45, -1.24
checkerboard_cutout              1, 2, 3, 4, 5                fraction l / 10 of one colour of a rotated
                                                              checkerboard (squares U[3.2, 8) px) set to 128
inverse_sparkles                 1, 1.5, 2.5, 4.5, 5          amount 100 - 6.5 l: 93.5, 90.25, 83.75, 70.75,
                                                              67.5 (image seen through a 50-200-ray starburst
                                                              of radius 8 on white)
pinch_and_twirl                  5.5, 6, 6.5, 8.5, 10         3x3 cells of 10 px: twirl +-l pi / 20 rad
                                                              (.86 .. 1.57), pinch .04 l + .1 (.32 .. .5)
ripple                           5.5, 6, 6.5, 7.5, 8          sine warp of amplitude .08 l px: .44, .48, .52,
                                                              .6, .64; wavelengths U[3.2, 9.6) px
brownish_noise                   2.5, 4, 5.5, 6.5, 7          + 6.4 l x unit-std 1 / (f^2 + 1) noise per
                                                              channel: 16, 25.6, 35.2, 41.6, 44.8
circular_motion_blur             2.8, 3.6, 4.4, 5.2, 6        21 rotations over +-1.5 l degrees (4.2, 5.4,
                                                              6.6, 7.8, 9), weights exp(-2 t^2)
lines                            .5, 1, 1.5, 2, 2.5           int(3.2 l) = 1, 3, 4, 6, 8 anti-aliased grey
                                                              (128) lines of half-length 32 px
sparkles                         .7, 3.5, 5.6, 6.3, 7         5 white starbursts of radius .32 l px: .224,
                                                              1.12, 1.792, 2.016, 2.24
transverse_chromatic_abberation  1, 2, 5, 9, 10               channels zoomed by 1, 1 + s / 2, 1 + s in random
                                                              order, s = .05 l: .05, .1, .25, .45, .5
===============================  ===========================  ===============================================

Every corruption strengthens with severity. ``abberation`` is the reference's spelling, kept because the
name is also the file name of a release.
"""

from __future__ import annotations

from dataclasses import dataclass

from moo_compress.fileio import stable_hash

__all__ = [
    "SOURCE",
    "IMAGE_SIZE",
    "BarCorruptionSpec",
    "SPECS",
    "PARAMS",
    "BAR_CORRUPTIONS",
    "GENERATOR_VERSION",
    "scaled",
    "bar_params_fingerprint",
]

SOURCE = ("facebookresearch/augmentation-corruption imagenet_c_bar/cifar10_c_bar.csv "
          "@ c7d90e3467fd3dd4ef3753dc02d5ab575cc0b476")

# The definitions scale sizes by the image side; this suite is defined for CIFAR's 32x32 images only.
IMAGE_SIZE = 32

# Bump when an algorithm changes in a way that changes generated images (cached sets are keyed on it).
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class BarCorruptionSpec:
    """One CIFAR-10-C-bar corruption: its level per severity and what the level controls.

    Attributes:
        name: Corruption name (``ripple``), also the ``.npy`` file name of a release.
        levels: The reference's level (0..10 scale) of each severity 1..5.
        meaning: What the level sets, in words.
    """

    name: str
    levels: tuple[float, float, float, float, float]
    meaning: str

    def level(self, severity: int) -> float:
        """The level of ``severity`` (1..5)."""
        return self.levels[severity - 1]


SPECS: tuple[BarCorruptionSpec, ...] = (
    BarCorruptionSpec("blue_noise_sample", (0.7, 1.4, 2.1, 3.5, 4.2), "noise threshold .3 l - 2.5"),
    BarCorruptionSpec("checkerboard_cutout", (1.0, 2.0, 3.0, 4.0, 5.0), "fraction l / 10 of squares cut out"),
    BarCorruptionSpec("inverse_sparkles", (1.0, 1.5, 2.5, 4.5, 5.0), "starburst amount 100 - 6.5 l"),
    BarCorruptionSpec("pinch_and_twirl", (5.5, 6.0, 6.5, 8.5, 10.0), "twirl l pi / 20 rad, pinch .04 l + .1"),
    BarCorruptionSpec("ripple", (5.5, 6.0, 6.5, 7.5, 8.0), "warp amplitude .08 l px"),
    BarCorruptionSpec("brownish_noise", (2.5, 4.0, 5.5, 6.5, 7.0), "noise intensity 6.4 l"),
    BarCorruptionSpec("circular_motion_blur", (2.8, 3.6, 4.4, 5.2, 6.0), "rotation range +-1.5 l degrees"),
    BarCorruptionSpec("lines", (0.5, 1.0, 1.5, 2.0, 2.5), "int(3.2 l) lines"),
    BarCorruptionSpec("sparkles", (0.7, 3.5, 5.6, 6.3, 7.0), "starburst radius .32 l px"),
    BarCorruptionSpec("transverse_chromatic_abberation", (1.0, 2.0, 5.0, 9.0, 10.0), "channel zoom .05 l"),
)

PARAMS: dict[str, BarCorruptionSpec] = {spec.name: spec for spec in SPECS}
BAR_CORRUPTIONS: tuple[str, ...] = tuple(spec.name for spec in SPECS)


def scaled(level: float, top: float) -> float:
    """``level * top / 10``: a level of the 0..10 scale as a fraction of ``top``, in the reference's order.

    The order of the operations is the reference's, so thresholds and counts derived from the result
    (``int(density * 32)`` lines) come out the same.
    """
    return float(level) * top / 10.0


def bar_params_fingerprint() -> str:
    """A digest of the generator version and the whole table (part of generated-set keys)."""
    return stable_hash([GENERATOR_VERSION, IMAGE_SIZE, [[s.name, list(s.levels)] for s in SPECS]])
