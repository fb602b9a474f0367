"""The Tiny-ImageNet-C parameter table (64-pixel images), in the format of :mod:`.params`.

The values are those of ``make_tinyimagenet_c.py`` (Hendrycks & Dietterich, ICLR 2019; hendrycks/robustness,
``ImageNet-C/create_c``), which corrupts ImageNet validation images resized to 64 x 64. The algorithms
are the CIFAR ones; only the numbers differ, plus three size-dependent settings of the recipe: frost
textures are resized by 0.3 (CIFAR: 0.2) before the 64 x 64 crop, fog's plasma fractal is 64 x 64, and
elastic_transform's parameters are multiples of the image size 64.

=================  ========  ==============================================================================
corruption         family    parameters for severities 1..5
=================  ========  ==============================================================================
gaussian_noise     noise     std c: .04, .08, .12, .15, .18
shot_noise         noise     photons c: 250, 100, 50, 30, 15  (Poisson(x c) / c)
impulse_noise      noise     amount c: .01, .02, .05, .08, .14  (fraction of values set to 0 or 1)
defocus_blur       blur      (disk radius, alias sigma): (.5,.6), (1,.1), (1.5,.1), (2.5,.01), (3,.1)
glass_blur         blur      (sigma, delta, iterations): (.1,1,1), (.5,1,1), (.6,1,2), (.7,2,1), (.9,2,2)
motion_blur        blur      (radius, sigma): (10,1), (10,1.5), (10,2), (10,2.5), (12,3); angle ~ U[-45, 45]
zoom_blur          blur      zoom factors np.arange(1, stop, .01), stop = 1.06, 1.11, 1.16, 1.21, 1.26
snow               weather   (loc, scale, zoom, threshold, radius, sigma, blend), see ``SPECS``
frost              weather   (a, b): (1,.3), (.9,.4), (.8,.45), (.75,.5), (.7,.55)  (a x + b frost, 0..255)
fog                weather   (strength, wibble decay): (.4,3), (.7,3), (1,2.5), (1.5,2), (2,1.75)
brightness         weather   V += c: .1, .2, .3, .4, .5  (HSV)
contrast           digital   c: .4, .3, .2, .1, .05  ((x - mean) c + mean)
elastic_transform  digital   64 x (alpha, sigma, affine): (0,0,.08), (.05,.3,.06), (.1,.08,.06),
                             (.1,.03,.03), (.16,.03,.02)
pixelate           digital   c: .9, .8, .7, .6, .5  (BOX resize to int(64 c) and back)
jpeg_compression   digital   quality: 65, 58, 50, 40, 25
speckle_noise      noise     c: .15, .2, .25, .3, .35  (x + x N(0, c)); extra
gaussian_blur      blur      sigma: .5, .75, 1, 1.25, 1.5; extra
spatter            weather   (loc, scale, sigma, threshold, intensity, mode), see ``SPECS``; extra
saturate           digital   (a, b): (.3,0), (.1,0), (2,0), (5,.1), (30,.2)  (S = S a + b); extra
=================  ========  ==============================================================================

As in the CIFAR table, some sequences do not strengthen monotonically: elastic_transform's affine
jitter shrinks as its displacement grows, and saturate's factor goes .3, .1, 2, 5, 30.
"""

from __future__ import annotations

from moo_compress.data.corruptions.params import CorruptionSpec, respecify

__all__ = ["SIZE", "FROST_SCALE", "SPECS"]

#: The image size the recipe is written for.
SIZE = 64
#: Frost textures are resized by this factor before the random crop.
FROST_SCALE = 0.3

_S = SIZE  # elastic_transform scales its parameters by the image size

SPECS: tuple[CorruptionSpec, ...] = respecify({
    "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
    "shot_noise": (250, 100, 50, 30, 15),
    "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
    "defocus_blur": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "glass_blur": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "motion_blur": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.8),
             (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
    "frost": ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    "fog": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": ((_S * 0, _S * 0, _S * 0.08),
                          (_S * 0.05, _S * 0.3, _S * 0.06),
                          (_S * 0.1, _S * 0.08, _S * 0.06),
                          (_S * 0.1, _S * 0.03, _S * 0.03),
                          (_S * 0.16, _S * 0.03, _S * 0.02)),
    "pixelate": (0.9, 0.8, 0.7, 0.6, 0.5),
    "jpeg_compression": (65, 58, 50, 40, 25),
    "speckle_noise": (0.15, 0.2, 0.25, 0.3, 0.35),
    "gaussian_blur": (0.5, 0.75, 1, 1.25, 1.5),
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.6, 0),
                (0.65, 0.1, 0.8, 0.7, 0.6, 0),
                (0.65, 0.3, 1, 0.69, 0.6, 0),
                (0.65, 0.1, 0.7, 0.68, 0.6, 1),
                (0.65, 0.1, 0.5, 0.67, 0.6, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
})
