"""The CIFAR parameter table of the 19 corruptions (one entry per corruption, five severities each), and
the :class:`CorruptionSpec` format every parameter set's table uses.

The values are those of ``make_cifar_c.py`` (Hendrycks & Dietterich, ICLR 2019; the CIFAR recipe for
32-pixel images), restated in ``../shared/reference/cifar-c.md``. The Tiny-ImageNet-C (64 pixels) and
ImageNet-C (224 pixels) tables are in :mod:`~moo_compress.data.corruptions.params_tinyimagenet` and
:mod:`~moo_compress.data.corruptions.params_imagenet`, in the same format; which one applies to a batch is
decided in :mod:`~moo_compress.data.corruptions.param_sets`. Pixel values are in [0, 1] unless a row says
otherwise.

=================  ========  ==============================================================================
corruption         family    parameters for severities 1..5
=================  ========  ==============================================================================
gaussian_noise     noise     std c: .04, .06, .08, .09, .10
shot_noise         noise     photons c: 500, 250, 100, 75, 50  (Poisson(x c) / c)
impulse_noise      noise     amount c: .01, .02, .03, .05, .07  (fraction of values set to 0 or 1)
defocus_blur       blur      (disk radius, alias sigma): (.3,.4), (.4,.5), (.5,.6), (1,.2), (1.5,.1)
glass_blur         blur      (sigma, delta, iterations): (.05,1,1), (.25,1,1), (.4,1,1), (.25,1,2), (.4,1,2)
motion_blur        blur      (radius, sigma): (6,1), (6,1.5), (6,2), (8,2), (9,2.5); angle ~ U[-45, 45]
zoom_blur          blur      zoom factors np.arange(1, stop, .01), stop = 1.06, 1.11, 1.16, 1.21, 1.26
snow               weather   (loc, scale, zoom, threshold, radius, sigma, blend), see ``PARAMS``
frost              weather   (a, b): (1,.2), (1,.3), (.9,.4), (.85,.4), (.75,.45)  (a x + b frost, 0..255)
fog                weather   (strength, wibble decay): (.2,3), (.5,3), (.75,2.5), (1,2), (1.5,1.75)
brightness         weather   V += c: .05, .1, .15, .2, .3  (HSV)
contrast           digital   c: .75, .5, .4, .3, .15  ((x - mean) c + mean)
elastic_transform  digital   32 x (alpha, sigma, affine): (0,0,.08), (.05,.2,.07), (.08,.06,.06),
                             (.1,.04,.05), (.1,.03,.03)
pixelate           digital   c: .95, .9, .85, .75, .65  (BOX resize to int(32 c) and back)
jpeg_compression   digital   quality: 80, 65, 58, 50, 40
speckle_noise      noise     c: .06, .1, .12, .16, .2  (x + x N(0, c)); extra
gaussian_blur      blur      sigma: .4, .6, .7, .8, 1; extra
spatter            weather   (loc, scale, sigma, threshold, intensity, mode), see ``PARAMS``; extra
saturate           digital   (a, b): (.3,0), (.1,0), (1.5,0), (2,.1), (2.5,.2)  (S = S a + b); extra
=================  ========  ==============================================================================

Quirks kept on purpose: ``np.arange(1, 1.06, .01)`` and ``np.arange(1, 1.11, .01)`` include their stop
value through floating-point rounding (7 and 12 zoom factors), as in the reference. The parameters of
glass_blur, frost, elastic_transform, spatter and saturate do not strengthen monotonically with severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moo_compress.fileio import stable_hash

__all__ = [
    "SEVERITIES",
    "FAMILIES",
    "CorruptionSpec",
    "PARAMS",
    "SPECS",
    "BENCHMARK_CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "ALL_CORRUPTIONS",
    "CORRUPTION_FAMILIES",
    "GENERATOR_VERSION",
    "params_fingerprint",
    "respecify",
]

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
FAMILIES: tuple[str, ...] = ("noise", "blur", "weather", "digital")

# Bump when an algorithm changes in a way that changes generated images (cached sets are keyed on it).
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class CorruptionSpec:
    """One corruption: its family, whether it is one of the 15 benchmark corruptions, its parameters.

    Attributes:
        name: Corruption name (``gaussian_noise``), also the ``.npy`` file name of a release.
        family: ``noise``, ``blur``, ``weather`` or ``digital``.
        benchmark: True for the 15 benchmark corruptions, False for the 4 extra (validation) ones.
        params: The parameter of each severity 1..5 (a number or a tuple).
        meaning: What the parameters are, in the order of a tuple.
    """

    name: str
    family: str
    benchmark: bool
    params: tuple[Any, ...]
    meaning: str

    def param(self, severity: int) -> Any:
        """The parameter of ``severity`` (1..5)."""
        return self.params[severity - 1]


_S = 32  # CIFAR image size; elastic_transform scales its parameters by it

SPECS: tuple[CorruptionSpec, ...] = (
    CorruptionSpec("gaussian_noise", "noise", True, (0.04, 0.06, 0.08, 0.09, 0.10), "std of N(0, c)"),
    CorruptionSpec("shot_noise", "noise", True, (500, 250, 100, 75, 50), "Poisson rate scale c"),
    CorruptionSpec("impulse_noise", "noise", True, (0.01, 0.02, 0.03, 0.05, 0.07), "salt-and-pepper amount"),
    CorruptionSpec("defocus_blur", "blur", True,
                   ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)), "(disk radius, alias blur sigma)"),
    CorruptionSpec("glass_blur", "blur", True,
                   ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
                   "(gaussian sigma, max pixel shift delta, iterations)"),
    CorruptionSpec("motion_blur", "blur", True,
                   ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), "(kernel radius, sigma); angle ~ U[-45, 45]"),
    CorruptionSpec("zoom_blur", "blur", True,
                   ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
                   "zoom factors np.arange(start, stop, step)"),
    CorruptionSpec("snow", "weather", True,
                   ((0.1, 0.2, 1, 0.6, 8, 3, 0.95),
                    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
                   "(layer mean, layer std, zoom, threshold, motion radius, motion sigma, blend)"),
    CorruptionSpec("frost", "weather", True,
                   ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)), "(image weight a, frost weight b)"),
    CorruptionSpec("fog", "weather", True,
                   ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), "(fog strength, plasma wibble decay)"),
    CorruptionSpec("brightness", "weather", True, (0.05, 0.1, 0.15, 0.2, 0.3), "added to HSV value"),
    CorruptionSpec("contrast", "digital", True, (0.75, 0.5, 0.4, 0.3, 0.15), "contrast factor"),
    CorruptionSpec("elastic_transform", "digital", True,
                   ((_S * 0, _S * 0, _S * 0.08),
                    (_S * 0.05, _S * 0.2, _S * 0.07),
                    (_S * 0.08, _S * 0.06, _S * 0.06),
                    (_S * 0.1, _S * 0.04, _S * 0.05),
                    (_S * 0.1, _S * 0.03, _S * 0.03)),
                   "(displacement alpha, displacement smoothing sigma, affine jitter), in pixels"),
    CorruptionSpec("pixelate", "digital", True, (0.95, 0.9, 0.85, 0.75, 0.65), "downscale factor"),
    CorruptionSpec("jpeg_compression", "digital", True, (80, 65, 58, 50, 40), "JPEG quality"),
    CorruptionSpec("speckle_noise", "noise", False, (0.06, 0.1, 0.12, 0.16, 0.2), "std of the multiplicative N(0, c)"),
    CorruptionSpec("gaussian_blur", "blur", False, (0.4, 0.6, 0.7, 0.8, 1), "gaussian sigma"),
    CorruptionSpec("spatter", "weather", False,
                   ((0.62, 0.1, 0.7, 0.7, 0.5, 0),
                    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                    (0.65, 0.3, 1, 0.69, 0.5, 0),
                    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                    (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
                   "(layer mean, layer std, layer sigma, threshold, intensity, mode 0 water / 1 mud)"),
    CorruptionSpec("saturate", "digital", False,
                   ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)), "(saturation factor a, offset b)"),
)

PARAMS: dict[str, CorruptionSpec] = {spec.name: spec for spec in SPECS}
BENCHMARK_CORRUPTIONS: tuple[str, ...] = tuple(s.name for s in SPECS if s.benchmark)
EXTRA_CORRUPTIONS: tuple[str, ...] = tuple(s.name for s in SPECS if not s.benchmark)
ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
CORRUPTION_FAMILIES: dict[str, str] = {s.name: s.family for s in SPECS}


def params_fingerprint(specs: tuple[CorruptionSpec, ...] = SPECS) -> str:
    """A digest of the generator version and a whole parameter table (default: the CIFAR one)."""
    return stable_hash([GENERATOR_VERSION, [[s.name, s.family, s.benchmark, list(s.params)] for s in specs]])


def respecify(params: dict[str, tuple[Any, ...]]) -> tuple[CorruptionSpec, ...]:
    """Another recipe's table: the CIFAR specs (family, benchmark, meaning) with these parameters.

    Raises:
        ValueError: unless ``params`` names every corruption once, with five severities each.
    """
    if set(params) != set(PARAMS) or any(len(p) != len(SEVERITIES) for p in params.values()):
        raise ValueError(
            f"a parameter table needs the {len(PARAMS)} corruptions with {len(SEVERITIES)} severities each"
        )
    return tuple(CorruptionSpec(s.name, s.family, s.benchmark, tuple(params[s.name]), s.meaning) for s in SPECS)
